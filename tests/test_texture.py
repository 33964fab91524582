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


def test_synthesis_is_deterministic(hed, starry):
    run = lambda: T.synthesize_texture(hed, starry, layers=("conv1_1",), size=16, steps=5, seed=1,
                                       progress=False).image
    assert torch.equal(run(), run())
