"""Receptive fields, top activations and maximally activating patches (chapter 3)."""
import copy
import gc

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from lib import features, hooks, models, plot, widgets  # noqa: E402
from lib.errors import LayerNotFoundError  # noqa: E402
from lib.features import ReceptiveFieldError  # noqa: E402


@pytest.fixture(scope="module")
def alexnet():
    import torchvision
    return torchvision.models.alexnet(weights=None).eval()


class _DilatedSumPool(nn.Module):
    """A linear stand-in for a dilated max-pool: the sum over the same (dilated) window."""

    def __init__(self, m: nn.MaxPool2d):
        super().__init__()
        self.m = m

    def forward(self, x):
        k, s, p, d = (nn.modules.utils._pair(v) for v in (self.m.kernel_size, self.m.stride or self.m.kernel_size,
                                                           self.m.padding, self.m.dilation))
        w = torch.ones(x.shape[1], 1, *k, dtype=x.dtype)
        return F.conv2d(x, w, None, s, p, d, groups=x.shape[1])


def _linear_stand_ins(model: nn.Module) -> dict[str, nn.Module]:
    """ReLU -> Identity, MaxPool2d -> AvgPool2d of the same geometry: every input pixel in the
    receptive field then reaches the unit (no argmax routing, no dead ReLU), so the support of the
    input gradient is exactly the (clipped) receptive field."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.ReLU):
            out[name] = nn.Identity()
        elif isinstance(m, nn.MaxPool2d):
            if m.dilation in (1, (1, 1)):
                out[name] = nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
            else:
                out[name] = _DilatedSumPool(m)
    return out


def _gradient_support(trunk: nn.Module, layer: str, units, size) -> torch.Tensor:
    """N x H x W bool: input pixels with a non-zero gradient for each unit (channel, y, x) of ``layer``."""
    h, w = size
    x = torch.randn(len(units), 3, h, w, dtype=torch.float64, requires_grad=True)
    with hooks.patch(trunk, _linear_stand_ins(trunk)), hooks.capture(trunk, layer) as rec:
        trunk(x)
        act = rec[layer]
        c, ys, xs = (torch.tensor(v) for v in zip(*units))
        (g,) = torch.autograd.grad(act[torch.arange(len(units)), c, ys, xs].sum(), x)
    return g.abs().sum(1) > 0


def _check_rf_against_gradient(model, trunk, layer, size, n_channels_hint=4, exact=True):
    """Compare receptive_field boxes with gradient supports for corner, edge and interior units.

    ``exact``: the support is the whole box. Dilated convolutions leave holes in it (gridding),
    so for them (``exact=False``) the box must be the bounding box of the support."""
    rf = features.receptive_field(model, layer)
    with torch.no_grad(), hooks.capture(trunk, layer, detach=True) as rec:
        trunk(torch.zeros(1, 3, *size, dtype=next(trunk.parameters()).dtype))
    _, c_all, mh, mw = rec[layer].shape
    cells = {(0, 0), (mh - 1, mw - 1), (0, mw - 1), (mh - 1, 0), (mh // 2, mw // 2), (min(1, mh - 1), mw // 3)}
    units = [(i % min(c_all, n_channels_hint), y, x) for i, (y, x) in enumerate(sorted(cells))]
    support = _gradient_support(trunk, layer, units, size)
    assert hooks.count_hooks(trunk) == 0 and not any(isinstance(m, nn.Identity) for m in trunk.modules())
    checked = []
    for (c, y, x), s in zip(units, support):
        x0, y0, x1, y1 = rf.box(y, x, size)
        expected = torch.zeros(size, dtype=torch.bool)
        expected[y0:y1, x0:x1] = True
        if not exact:
            assert not (s & ~expected).any(), f"{layer} unit {(c, y, x)}: gradient outside the RF box"
            if rf.span(y, x) != (x0, y0, x1, y1):
                continue  # clipped: padding may have taken the box's outer rows (holes at the border)
            rows, cols = s.any(1).nonzero()[:, 0], s.any(0).nonzero()[:, 0]
            s = torch.zeros_like(s)
            s[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
            checked.append(layer)
        assert torch.equal(s, expected), f"{layer} unit {(c, y, x)}: RF box {(x0, y0, x1, y1)} != gradient support"
    assert exact or checked, f"{layer}: no interior unit to compare the bounding box with; use a larger input"
    return rf


def _trunk_of(model: nn.Module, layer: str) -> nn.Module:
    """A float64 copy of ``model.features`` up to ``layer``, under the same names (``features.N``)."""
    holder = nn.Module()
    holder.features = copy.deepcopy(model.features[:int(layer.split(".")[1]) + 1]).double().eval()
    holder.forward = lambda x: holder.features(x)
    return holder


def test_rf_equals_gradient_support_gapnet(gapnet):
    sizes = {}
    for layer in ("features.2", "features.6", "features.12", "features.19", "features.26"):
        sizes[layer] = _check_rf_against_gradient(gapnet, _trunk_of(gapnet.model, layer), layer, (64, 64)).size
    assert sizes == {"features.2": (3, 3), "features.6": (6, 6), "features.12": (14, 14),
                     "features.19": (32, 32), "features.26": (68, 68)}
    assert hooks.count_hooks(gapnet.model) == 0


def test_rf_equals_gradient_support_torchvision_alexnet(alexnet):
    for layer in ("features.1", "features.2", "features.4", "features.7", "features.12"):
        trunk = _trunk_of(alexnet, layer)
        _check_rf_against_gradient(alexnet, trunk, layer, (80, 72))
    rf = features.receptive_field(alexnet, "features.12")
    assert (rf.size, rf.jump, rf.start) == ((195, 195), (32, 32), (-66, -66))   # AlexNet pool5: 195 px
    assert isinstance(trunk.features[1], nn.ReLU)                                # patches undone


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_rf_strides_paddings_dilations_and_same_padding():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, (3, 5), stride=(2, 1), padding=(1, 2)), nn.ReLU(),
        nn.Conv2d(4, 4, 3, dilation=2, padding=2), nn.BatchNorm2d(4),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(4, 4, 4, padding="same"), nn.ZeroPad2d((2, 0, 1, 3)),
        nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(4, 4, 3, padding="valid")),
        nn.MaxPool2d(2, stride=1, dilation=2), nn.Conv2d(4, 3, 1)).double().eval()
    _check_rf_against_gradient(net, net, "0", (45, 37))                      # stride, asymmetric kernel: exact
    for layer in ("2", "4", "5", "6", "7", "7.1", "8", "9"):                 # after the dilation: bounding box
        _check_rf_against_gradient(net, net, layer, (101, 93), exact=False)
    rf = features.receptive_field(net, "2")
    assert rf.size == (3 + 4 * 2, 5 + 4 * 1) and rf.jump == (2, 1) and rf.start == (-1 - 2 * 2, -2 - 2)


def test_rf_errors():
    gap = models.GapNet()
    with pytest.raises(LayerNotFoundError, match="features.9"):
        features.receptive_field(gap, "features.99")
    with pytest.raises(ReceptiveFieldError, match="Sequential"):
        features.receptive_field(gap, "pool")
    with pytest.raises(ReceptiveFieldError, match="whole image"):
        features.receptive_field(nn.Sequential(nn.Conv2d(3, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()), "2")
    import torchvision
    resnet = torchvision.models.resnet18(weights=None)
    assert features.receptive_field(resnet, "conv1").size == (7, 7)              # the first child: fine
    with pytest.raises(ReceptiveFieldError, match="branch"):
        features.receptive_field(resnet, "layer1.0.conv1")
    with pytest.raises(ReceptiveFieldError, match="branch"):
        features.receptive_field(nn.Sequential(nn.Conv2d(3, 3, 3), resnet.layer1), "1.0")
    with pytest.raises(ReceptiveFieldError, match="circular"):
        features.receptive_field(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, padding_mode="circular")), "0")


def _brute_force(acts, k):
    a = acts.flatten(2)                                                      # N x C x hw
    v, pos = a.max(2)                                                        # N x C
    order = torch.sort(v.T, dim=1, descending=True, stable=True).indices[:, :k]
    return order, v.T.gather(1, order), a.shape[1]


def test_top_activations_match_brute_force(gapnet, canvases):
    imgs = canvases.images[:23]
    tops = features.top_activations(gapnet, imgs, ["features.12", "features.26"], k=5, batch_size=6)
    all_acts = features.activations(gapnet, imgs, ["features.12", "features.26"])
    for layer, t in tops.items():
        acts = all_acts[layer]
        idx, vals, c_all = _brute_force(acts, 5)
        assert t.indices.shape == (c_all, 5) and t.positions.shape == (c_all, 5, 2)
        assert torch.equal(t.indices, idx) and torch.allclose(t.values, vals, atol=1e-5)
        got = acts[t.indices, torch.arange(c_all)[:, None], t.positions[..., 0], t.positions[..., 1]]
        assert torch.allclose(got, t.values, atol=1e-5)                      # the position holds the value
        assert len(set(t.indices[3].tolist())) == 5                          # one unit per image
    one = features.top_activations(gapnet, imgs, "features.12", channel=7, k=5, batch_size=100)
    assert one.indices.shape == (5,) and one.positions.shape == (5, 2) and one.channels == 7
    assert torch.equal(one.indices, tops["features.12"].indices[7])
    idx, pos, val = one                                                      # unpacks
    assert torch.equal(tops["features.12"].select(7).positions, pos)
    some = features.top_activations(gapnet, imgs, "features.12", channel=[7, 2], k=50)
    assert some.indices.shape == (2, 23) and some.channels == (7, 2)         # k capped at the image count
    assert hooks.count_hooks(gapnet.model) == 0 and not gapnet.model.training
    assert all(p.requires_grad for p in gapnet.model.parameters())


def test_patches_have_rf_size_and_pad_the_border(gapnet, canvases):
    imgs = canvases.images[:20]
    p = features.max_activating_patches(gapnet, imgs, "features.12", channel=3, k=4)
    assert p.shape == (4, 3, 14, 14)
    tops = features.top_activations(gapnet, imgs, "features.12", k=4)
    both = features.max_activating_patches(gapnet, imgs, "features.12", channel=[3, 5], tops=tops)
    assert both.shape == (2, 4, 3, 14, 14) and torch.equal(both[0], p)
    rf = features.receptive_field(gapnet, "features.12")                    # 14 px, jump 2, start -6
    crops = features.crop_patches(imgs, rf, torch.tensor([2, 2, 5]), torch.tensor([[0, 0], [10, 10], [31, 31]]),
                                  pad_value=0.25)
    assert torch.equal(crops[0, :, 6:, 6:], imgs[2, :, :8, :8]) and (crops[0, :, :6, :] == 0.25).all()
    assert torch.equal(crops[1], imgs[2, :, 14:28, 14:28])                   # interior: the plain crop
    assert torch.equal(crops[2, :, :8, :8], imgs[5, :, 56:, 56:]) and (crops[2, :, 8:, :] == 0.25).all()
    assert rf.box(31, 31, 64) == (56, 56, 64, 64) and rf.box(0, 0, (64, 48)) == (0, 0, 8, 8)
    assert rf.centers(torch.tensor([[0, 0], [10, 3], [31, 31]]), 64).tolist() == [[0, 0], [20, 6], [62, 62]]
    assert rf.center(10, 3) == (20.5, 6.5)
    with pytest.raises(ValueError, match="same images"):
        features.max_activating_patches(gapnet, imgs[:5], "features.12", tops=tops)


def test_cleanup_errors_and_repeats(gapnet, canvases):
    imgs, tiny = canvases.images[:4], torch.rand(1, 3, 16, 16)
    with pytest.raises(LayerNotFoundError, match="features"):
        features.top_activations(gapnet, imgs, "feature.12")
    with pytest.raises(IndexError, match="out of range"):
        features.top_activations(gapnet, imgs, "features.12", channel=64)
    assert hooks.count_hooks(gapnet.model) == 0
    gapnet.model.train()
    try:
        for i in range(100):
            if i == 10:
                gc.collect()
                n_objects = len(gc.get_objects())
            features.top_activations(gapnet, tiny, "features.2", k=2)
    finally:
        training = gapnet.model.training
        gapnet.model.eval()
    gc.collect()
    assert training and hooks.count_hooks(gapnet.model) == 0
    assert len(gc.get_objects()) < n_objects + 100                          # nothing piles up


def test_effective_receptive_field_lies_inside_the_rf(gapnet, canvases):
    erf = features.effective_receptive_field(gapnet, canvases.images[:8], "features.19", channel=5)
    rf = features.receptive_field(gapnet, "features.19")
    x0, y0, x1, y1 = rf.box(8, 8, 64)
    inside = torch.zeros(64, 64, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    assert erf.shape == (64, 64) and erf.sum() > 0 and (erf[~inside] == 0).all()
    assert hooks.count_hooks(gapnet.model) == 0


def test_patch_plots_and_widget(gapnet, canvases):
    imgs = canvases.images[:12]
    tops = features.top_activations(gapnet, imgs, ["features.5", "features.19"], k=3)
    fig = plot.show_patches(torch.rand(4, 3, 3, 10, 10), labels=list("abcd"), show=False)
    assert len(fig.axes) == 4 and fig.axes[0].get_ylabel() == "a"
    fig = plot.show_top_units(torch.rand(3, 3, 10, 10), imgs[:3], torch.tensor([[0, 0, 5, 5]] * 3), show=False)
    assert len(fig.axes) == 6 and len(fig.axes[3].patches) == 1
    fig = plot.show_maps_with_boxes([torch.rand(8, 8)], [(-2, -2, 10, 10)], titles=["m"], show=False)
    assert len(fig.axes[0].patches) == 1
    w = widgets.patch_explorer(gapnet, imgs, tops)
    layer, channel = w.children[0].children
    assert channel.max == 31
    layer.value = "features.19"
    assert channel.max == 127 and hooks.count_hooks(gapnet.model) == 0
    plt.close("all")
