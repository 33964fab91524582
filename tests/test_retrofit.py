"""flatnet (a non-GAP network), CAM's refusal of it, and retrofitting a GAP head (chapter 7)."""
import json
import shutil

import pytest
import torch

from lib import data, hooks, models
from lib.attribution import GapHeadModel, cam, cam_all, gap_head, retrofit_gap_head, truncate
from lib.attribution.cam import NotGapModelError
from lib.errors import LayerNotFoundError, WeightsChecksumError


@pytest.fixture(scope="module")
def flatnet():
    return models.load("flatnet", device="cpu")


@pytest.fixture(scope="module")
def train_set(canvases):
    """Head-training images: test canvases the checks below do not use (the tests need no Debian data)."""
    return canvases[1000:1300]


@pytest.fixture(scope="module")
def retrofitted(flatnet, train_set):
    before = {k: v.clone() for k, v in flatnet.model.state_dict().items()}
    r = retrofit_gap_head(flatnet, "features.23", train_set.images, train_set.labels, width=32, steps=30, seed=0)
    return r, before


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------- flatnet
def test_flatnet_loads_with_checksum(flatnet, canvases):
    from lib.models.flatnet import WEIGHTS, FlatNet

    assert isinstance(flatnet.model, FlatNet) and not flatnet.model.training
    assert flatnet.classes == data.CLASSES and flatnet.input_size == 64
    assert flatnet.layer("default") == "features.23" and flatnet.layer("default") in models.list_layers(flatnet)
    assert models.verify_sha256(WEIGHTS) == WEIGHTS.with_name("flatnet.pt.sha256").read_text().split()[0]
    assert WEIGHTS.stat().st_size < 5 * 2**20
    assert "flatnet" in models.available()
    logits = flatnet(canvases.images[:4])
    assert logits.shape == (4, 10)


def test_flatnet_reaches_its_reported_accuracy(flatnet, canvases):
    from lib.models.flatnet import WEIGHTS
    from lib.models.train import accuracy

    reported = json.loads(WEIGHTS.with_suffix(".json").read_text())["test_accuracy"]
    assert abs(accuracy(flatnet, canvases) - reported) <= 0.002


def test_flatnet_wrong_checksum_raises(tmp_path):
    from lib.models.flatnet import WEIGHTS

    bad = tmp_path / "flatnet.pt"
    shutil.copy(WEIGHTS, bad)
    (tmp_path / "flatnet.pt.sha256").write_text("0" * 64 + "  flatnet.pt\n")
    with pytest.raises(WeightsChecksumError, match="sha256"):
        models.load("flatnet", device="cpu", weights_path=bad)
    shutil.copy(WEIGHTS.with_name("flatnet.pt.sha256"), tmp_path / "flatnet.pt.sha256")
    models.load("flatnet", device="cpu", weights_path=bad)           # the intact copy loads
    raw = bytearray(bad.read_bytes())
    raw[-100] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(WeightsChecksumError):
        models.load("flatnet", device="cpu", weights_path=bad)


def test_cam_on_flatnet_raises_and_suggests_grad_cam(flatnet):
    with pytest.raises(NotGapModelError, match="Grad-CAM"):
        cam(flatnet, torch.rand(2, 3, 64, 64))
    with pytest.raises(NotGapModelError, match="Grad-CAM"):
        gap_head(flatnet.model)
    assert hooks.count_hooks(flatnet.model) == 0


# ---------------------------------------------------------------------------- CAM's identity, all classes
def test_gapnet_every_class_score_is_mean_cam_plus_bias(gapnet, canvases):
    """y^c = (1/Z) sum_xy M_c(x, y) + b^c for all 10 classes at once, not only the predicted one."""
    x = canvases.images[:3]
    with torch.no_grad():
        logits = gapnet(x)
    maps = cam_all(gapnet, x)                                            # image x class x 8 x 8
    assert maps.shape == (3, 10, 8, 8) and hooks.count_hooks(gapnet.model) == 0
    assert torch.allclose(maps.mean((2, 3)) + gapnet.model.fc.bias.detach(), logits, atol=1e-4)
    assert torch.allclose(maps[:, 7], cam(gapnet, x, target=7, upsample=False), atol=1e-5)


# ---------------------------------------------------------------------------- retrofitting
def test_retrofitted_has_a_gap_head_and_cam_is_exact(retrofitted, canvases):
    r, _ = retrofitted
    assert isinstance(r.model, GapHeadModel) and "retrofitted" in r.name
    assert gap_head(r.model) is r.model.fc
    assert r.layer("cam") == "head.1" and r.classes == data.CLASSES and r.input_size == 64
    x = canvases.images[:5]
    with torch.no_grad():
        logits = r(x)
    for target in (None, 4, [0, 1, 2, 3, 4]):
        m = cam(r, x, target=target, upsample=False)
        t = logits.argmax(1) if target is None else torch.as_tensor(target).expand(5)
        assert m.shape == (5, 8, 8)
        assert torch.allclose(m.mean((1, 2)) + r.model.fc.bias.detach()[t], logits[torch.arange(5), t], atol=1e-4)
    up = cam(r, x)
    assert up.shape == (5, 64, 64) and not up.requires_grad
    assert hooks.count_hooks(r.model) == 0


def test_retrofitted_cam_batch_equals_single_calls(retrofitted, canvases):
    r, _ = retrofitted
    x = canvases.images[:3]
    single = torch.cat([cam(r, x[i:i + 1], target=1) for i in range(3)])
    assert torch.allclose(cam(r, x, target=1), single, atol=1e-5)


def test_trunk_frozen_and_original_untouched(flatnet, retrofitted):
    r, before = retrofitted
    after = flatnet.model.state_dict()
    assert _state_equal(after, before)                                   # the original's weights
    assert isinstance(flatnet.model.classifier, torch.nn.Sequential)     # its FC head is still there
    assert not flatnet.model.training and hooks.count_hooks(flatnet.model) == 0
    assert all(p.requires_grad for p in flatnet.model.parameters())
    trunk = r.model.trunk.state_dict()
    assert trunk.keys() == {k for k in before if k.startswith("features.")}   # the FC head was dropped
    assert all(torch.equal(trunk[k], before[k]) for k in trunk)          # fine-tuning left the trunk alone
    assert all(p.data_ptr() != q.data_ptr() for p in r.model.trunk.parameters() for q in flatnet.model.parameters())
    assert isinstance(r.model.trunk.classifier, torch.nn.Identity)
    assert all(p.requires_grad for p in r.model.parameters())            # frozen only while training
    assert len(r.model.train_losses) == 30 and r.model.train_losses[-1] < r.model.train_losses[0]


def test_retrofit_is_deterministic(flatnet, train_set):
    x, y = train_set.images[:64], train_set.labels[:64]
    a = retrofit_gap_head(flatnet, None, x, y, width=16, steps=8, seed=3)
    b = retrofit_gap_head(flatnet, None, x, y, width=16, steps=8, seed=3)
    c = retrofit_gap_head(flatnet, None, x, y, width=16, steps=8, seed=4)
    assert _state_equal(a.model.state_dict(), b.model.state_dict())
    assert not torch.equal(a.model.fc.weight, c.model.fc.weight)
    assert a.model.train_losses == b.model.train_losses


def test_retrofit_bad_input(flatnet, train_set):
    x, y = train_set.images[:20], train_set.labels[:20]
    with pytest.raises(LayerNotFoundError, match="features"):
        retrofit_gap_head(flatnet, "features.99", x, y, steps=1)
    with pytest.raises(ValueError, match="labels"):
        retrofit_gap_head(flatnet, None, x, y[:10], steps=1)
    with pytest.raises(ValueError, match="0..9"):
        retrofit_gap_head(flatnet, None, x, y + 10, steps=1)
    with pytest.raises(ValueError, match="conv"):
        retrofit_gap_head(flatnet, "classifier.1", x, y, steps=1)      # a vector, not feature maps
    assert hooks.count_hooks(flatnet.model) == 0


def test_retrofitted_forward_leaves_no_hook_even_on_error(retrofitted):
    r, _ = retrofitted
    with pytest.raises(RuntimeError):
        r(torch.rand(1, 5, 64, 64))                                      # wrong channel count
    assert hooks.count_hooks(r.model) == 0
    for _ in range(100):                                                 # small images: the trunk is a conv net
        r(torch.rand(1, 3, 16, 16))
    assert hooks.count_hooks(r.model) == 0


def test_truncate_drops_what_runs_after_the_layer():
    import torchvision

    net = torchvision.models.resnet18(weights=None).eval()
    t = truncate(net, "layer3", torch.rand(1, 3, 64, 64))
    assert isinstance(t.layer4, torch.nn.Identity) and isinstance(t.fc, torch.nn.Identity)
    assert isinstance(t.avgpool, torch.nn.Identity) and not isinstance(net.fc, torch.nn.Identity)
    assert isinstance(t.layer3, torch.nn.Sequential) and isinstance(t.conv1, torch.nn.Conv2d)


def test_retrofit_a_torchvision_network_without_gap_linear_head():
    """SqueezeNet ends in conv 1x1 -> ReLU -> GAP (no linear layer): CAM refuses it, the retrofit fixes it."""
    net = models.load("squeezenet1_1", weights=None, device="cpu")
    x, y = torch.rand(6, 3, 64, 64), torch.randint(0, 1000, (6,))
    with pytest.raises(NotGapModelError):
        cam(net, x[:1])
    r = retrofit_gap_head(net, "features.12", x, y, width=16, steps=3, batch_size=3)
    assert isinstance(r.model.trunk.classifier, torch.nn.Identity)
    assert "random weights" in r.name and r.layer("first_conv") == "trunk.features.0"
    m = cam(r, x[:2], target=[3, 999], upsample=False)
    with torch.no_grad():
        logits = r(x[:2])
    assert m.shape == (2, 3, 3)
    assert torch.allclose(m.mean((1, 2)) + r.model.fc.bias.detach()[[3, 999]], logits[[0, 1], [3, 999]], atol=1e-4)
    assert hooks.count_hooks(net.model) == 0 and isinstance(net.model.classifier, torch.nn.Sequential)


def test_cam_plots_and_explorer(gapnet, canvases):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lib import plot, widgets

    x, boxes = canvases.images[:3], canvases.boxes[:3]
    m = cam(gapnet, x)
    fig = plot.show_overlay_rows(x, {"CAM": m, "again": m}, titles={"CAM": ["a", "b", "c"]}, boxes=boxes, show=False)
    assert len(fig.axes) == 9
    fig2 = plot.show_cam(x[0], cam(gapnet, x[:1], upsample=False)[0], box=boxes[0], note="score", show=False)
    assert len(fig2.axes) == 4                                           # three panels and a colour bar
    plt.close("all")
    w = widgets.cam_explorer(gapnet, x, boxes=boxes)
    assert len(w.children) == 3 and hooks.count_hooks(gapnet.model) == 0   # controls, output, live note
    plt.close("all")
