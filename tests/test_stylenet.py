"""The feed-forward multi-style network (lib.models.stylenet)."""
import numpy as np
import pytest
import torch

from lib import data
from lib.models import stylenet as SN


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    n = SN.StyleNet()
    with torch.no_grad():   # distinct styles, so interpolation is a real test
        for m in n.modules():
            if isinstance(m, SN.CondInstanceNorm):
                m.gamma.normal_(1, 0.3)
                m.beta.normal_(0, 0.3)
    return n.eval()


def test_output_has_the_input_size_and_is_in_range(net):
    for shape in ((2, 3, 64, 64), (1, 3, 50, 70)):
        y = net(torch.rand(shape), style=1)
        assert y.shape == shape and 0 <= y.min() and y.max() <= 1


def test_interpolation_at_0_and_1_equals_the_single_styles(net):
    x = torch.rand(1, 3, 32, 32)
    a, b = net(x, 0), net(x, 2)
    assert not torch.allclose(a, b)
    assert torch.allclose(net(x, [1.0, 0.0, 0.0]), a, atol=1e-6)
    assert torch.allclose(net(x, [0.0, 0.0, 1.0]), b, atol=1e-6)
    assert torch.allclose(net(x, "truchet"), b, atol=1e-6)
    mid = net(x, [0.5, 0.0, 0.5])
    assert not torch.allclose(mid, a) and not torch.allclose(mid, b)


def test_bad_styles_say_what_exists(net):
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="starry_night"):
        net(x, "monet")
    with pytest.raises(ValueError, match="3 styles"):
        net(x, 7)
    with pytest.raises(ValueError, match="3 weights"):
        net(x, [0.5, 0.5])


def test_training_lowers_the_loss():
    photos = data.background_photos("train", short_side=64)[:3]
    _, record = SN.train(steps=40, batch_size=2, size=32, style_size=64, style_weight=5.0, style_warmup=0,
                         photos=photos, device="cpu", progress=False, curve_every=10)
    curve = [c[0] for c in record["loss_curve"]]   # mean total loss over steps 1-10, 11-20, ...
    assert len(curve) == 4 and curve[-1] < 0.7 * curve[0], curve
    assert record["skipped_steps"] == 0


def test_style_weight_ramps_up_over_the_warmup():
    photos = data.background_photos("train", short_side=64)[:2]
    run = lambda warmup: SN.train(steps=4, batch_size=1, size=32, style_size=64, style_warmup=warmup, photos=photos,
                                  device="cpu", progress=False, curve_every=1)[1]["loss_curve"]
    ramped, full = run(4), run(0)
    # step 1 (same weights, same crop): total = content + ramp * weight * style + tv, ramp 1/4 against 1
    (t_r, c_r, s_r), (t_f, c_f, s_f) = ramped[0], full[0]
    assert c_r == pytest.approx(c_f, rel=1e-3) and s_r == pytest.approx(s_f, rel=1e-3)
    assert t_f - t_r == pytest.approx(0.75 * 0.6 * s_f, rel=1e-2)


def test_committed_weights_load_when_present():
    if not SN.WEIGHTS.exists():
        pytest.skip("stylenet weights not trained yet")
    net = SN.load_stylenet("cpu")
    assert not net.training and net.styles == SN.STYLES


def test_stylenet_explorer_mixes_the_sliders(net, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lib import plot, widgets
    shown = []
    monkeypatch.setattr(plot, "show_images", lambda y, titles, **kw: shown.append((y, titles)))
    photo = torch.rand(1, 3, 24, 32)
    w = widgets.stylenet_explorer(net, photo)
    sliders = w.children[0].children
    assert [s.description for s in sliders] == list(net.styles)
    with torch.no_grad():
        assert torch.allclose(shown[-1][0], net(photo, net.styles[0]))       # default: the first style
        sliders[1].value = 1.0                                               # 1 + 1: normalised to 0.5 / 0.5
        assert torch.allclose(shown[-1][0], net(photo, [0.5, 0.5, 0.0]), atol=1e-6)
        assert "0.50" in shown[-1][1][0]
        for s in sliders:
            s.value = 0.0                                                    # all zero: the equal mix
        assert torch.allclose(shown[-1][0], net(photo, [1 / 3] * 3), atol=1e-6)
    plt.close("all")


def test_training_crops_skip_flat_regions():
    flat = np.zeros((64, 64, 3), np.uint8)                     # a uniform photo: every crop is flat
    textured = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    crops = SN._crops([flat, textured], 6, 16, torch.Generator().manual_seed(0))
    assert crops.shape == (6, 3, 16, 16)
    assert (crops.flatten(1).std(1) > SN.MIN_CROP_STD).all()
