"""Gram-matrix texture synthesis (lib.synthesis.texture)."""
import pytest
import torch

from lib import hooks, images, seed
from lib.data import DATA_DIR
from lib.synthesis import texture as T


@pytest.fixture(scope="module")
def hed():
    from lib import models
    return models.load("vgg16-hed", device="cpu")


@pytest.fixture(scope="module")
def starry():
    return images.load(DATA_DIR / "images" / "starry_night.jpg", size=48)


def test_gram_known_case_and_symmetry():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2).repeat(1, 2, 1, 1)
    f[:, 1] *= -1
    g = T.gram(f)
    assert g.shape == (1, 2, 2)
    assert torch.allclose(g, torch.tensor([[[7.5, -7.5], [-7.5, 7.5]]]))   # (1 + 4 + 9 + 16) / 4
    x = torch.randn(3, 5, 4, 6)
    assert torch.allclose(T.gram(x), T.gram(x).transpose(1, 2), atol=1e-6)


def test_gram_is_invariant_to_a_spatial_permutation():
    g = seed(0)
    x = torch.randn(2, 8, 6, 7, generator=g)
    perm = torch.randperm(42, generator=g)
    shuffled = x.flatten(2)[:, :, perm].view_as(x)
    assert not torch.allclose(x, shuffled)
    assert torch.allclose(T.gram(x), T.gram(shuffled), atol=1e-5)


def test_blend_of_styles_at_0_and_1_equals_the_single_styles(hed, starry):
    other = images.load(DATA_DIR / "images" / "brick.jpg", size=48)
    layers = ("conv1_1", "conv2_1")
    a, b = T.gram_targets(hed, starry, layers), T.gram_targets(hed, other, layers)
    for w, single in ((1.0, a), (0.0, b)):
        mix = T.gram_targets(hed, [starry, other], layers, weights=[w, 1 - w])
        assert all(torch.allclose(mix[k], single[k]) for k in layers)
    with pytest.raises(ValueError, match="weights"):
        T.gram_targets(hed, [starry, other], layers, weights=[1.0])


def test_synthesis_lowers_the_texture_loss_100_fold_and_restores_the_model(hed, starry):
    model = hed.model
    r = T.synthesize_texture(hed, starry, layers=T.TEXTURE_LAYERS[:3], size=32, steps=80, progress=False)
    loss_start, loss_end = -r.start.item(), -r.end.item()
    assert loss_end * 100 < loss_start, (loss_start, loss_end)
    assert r.image.shape == (1, 3, 32, 32) and 0 <= r.image.min() and r.image.max() <= 1
    assert not model.training and all(p.requires_grad for p in model.parameters())
    assert hooks.count_hooks(model) == 0


def test_tv_penalty_smooths_without_undoing_the_synthesis(hed, starry):
    from lib.synthesis.core import total_variation
    run = lambda tv: T.synthesize_texture(hed, starry, layers=T.TEXTURE_LAYERS[:2], size=24, steps=30, init_sd=0.1,
                                          tv=tv, progress=False)
    plain, smooth = run(0.0), run(0.5)
    assert total_variation(smooth.image) < 0.8 * total_variation(plain.image)
    assert torch.equal(smooth.start, plain.start)                  # start/end: the texture loss alone
    assert -smooth.end < 0.2 * -smooth.start


def test_synthesis_is_deterministic(hed, starry):
    run = lambda: T.synthesize_texture(hed, starry, layers=("conv1_1",), size=16, steps=5, seed=1,
                                       progress=False).image
    assert torch.equal(run(), run())


def test_texture_explorer_computes_once_per_setting(hed, starry, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lib import widgets
    calls = []
    orig = T.synthesize_texture

    def counting(bundle, style, layers, **kw):
        calls.append((tuple(layers), kw["size"]))
        return orig(bundle, style, layers, **kw)

    monkeypatch.setattr(T, "synthesize_texture", counting)
    sets = {"up to conv1": ("conv1_1",), "up to conv2": ("conv1_1", "conv2_1")}
    w = widgets.texture_explorer(hed, {"starry": starry}, sets, sizes=(16, 24), steps=2)
    sample, layers, size = w.children[0].children
    assert calls == [(("conv1_1", "conv2_1"), 16)]              # default: the last (deepest) set, first size
    layers.value = "up to conv1"
    size.value = 24
    assert calls[-1] == (("conv1_1",), 24) and len(calls) == 3
    layers.value, size.value = "up to conv2", 16                 # back to the first setting: no compute
    assert len(calls) == 4 and calls[-1] == (("conv1_1", "conv2_1"), 24)
    size.value = 16
    assert len(calls) == 4
    done = {("starry", "up to conv2", 16): orig(hed, starry, sets["up to conv2"], size=16, steps=2, progress=False)}
    widgets.texture_explorer(hed, {"starry": starry}, sets, sizes=(16, 24), steps=2, done=done)
    assert len(calls) == 4                                       # the default setting was given
    assert hooks.count_hooks(hed.model) == 0
    plt.close("all")
