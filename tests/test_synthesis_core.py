"""The shared optimisation core of lib.synthesis: parameterisations, objectives, transforms, loop."""
import pytest
import torch

from lib import hooks, seed, synthesis as S
from lib.models import Bundle


def _linear_bundle():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    return Bundle(name="linear", model=model.eval(), classes=tuple("abcd"), input_size=8, layers={"default": "1"})


def test_pixel_image_range_and_shape():
    p = S.PixelImage.random(3, (8, 10), generator=seed(0))
    assert p().shape == (3, 3, 8, 10)
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        S.PixelImage(torch.rand(3, 8, 8))


def test_fourier_image_in_range_and_colour_matrix():
    p = S.FourierImage(2, 16, generator=seed(0))
    x = p()
    assert x.shape == (2, 3, 16, 16) and 0 < x.min() and x.max() < 1
    c = S.photo_colour_sqrt()
    assert c.shape == (3, 3) and torch.isclose(c.norm(dim=0).max(), torch.tensor(1.0))


def test_ascent_on_a_linear_model_moves_pixels_along_the_sign_of_w():
    """For S_c = w.x + b the gradient is w: k SGD steps give clamp(x0 + k lr w, 0, 1), exactly."""
    b = _linear_bundle()
    p = S.PixelImage(torch.full((1, 3, 8, 8), 0.5))
    r = S.optimize(b, S.class_score(2), p, steps=40, lr=0.5, optimizer="sgd", progress=False)
    w = b.model[1].weight[2].detach().view(1, 3, 8, 8)
    expected = 0.5 + 40 * 0.5 * w
    assert (expected > 1).any() and (expected < 0).any()   # the clamp matters for some pixels...
    assert torch.allclose(r.image, expected.clamp(0, 1), atol=1e-5)   # ...and is applied after every step
    assert r.end.item() > r.start.item()


def test_optimize_raises_objective_keeps_range_and_restores_model(gapnet):
    model = gapnet.model
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    r = S.optimize(gapnet, S.class_score(1), S.PixelImage.random(2, 64, generator=seed(0)), steps=15, lr=0.05,
                   transforms=[S.Jitter(2)], progress=False)
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    model.eval()
    assert hooks.count_hooks(model) == 0
    assert r.image.shape == (2, 3, 64, 64) and r.image.min() >= 0 and r.image.max() <= 1
    assert (r.end > r.start + 5).all()
    assert len(r.history) == 15


def test_optimize_restores_model_after_an_exception(gapnet):
    model = gapnet.model
    def fail(b, x):
        S.activation(b, "features.3", x)   # hooks are in place when it fails
        raise RuntimeError("boom")
    boom = S.Objective(fail, "boom")
    with pytest.raises(RuntimeError, match="boom"):
        S.optimize(gapnet, boom, S.PixelImage.random(1, 64), steps=2, progress=False)
    assert not model.training and all(p.requires_grad for p in model.parameters())
    assert hooks.count_hooks(model) == 0


def test_deterministic_under_seed(gapnet):
    def run():
        g = seed(3)
        return S.optimize(gapnet, S.channel("features.10", 4), S.FourierImage(1, 32, generator=g), steps=5,
                          transforms=[S.Jitter(2), S.RandomAffine()], seed=3, progress=False).image
    assert torch.equal(run(), run())


@pytest.mark.parametrize("optimizer", ["lbfgs", "normalized", "adam"])
def test_each_optimizer_raises_layer_energy(gapnet, optimizer):
    lr = {"lbfgs": 1.0, "normalized": 0.01, "adam": 0.02}[optimizer]
    r = S.optimize(gapnet, S.layer_energy("features.13"), S.PixelImage.random(1, 32, generator=seed(0)),
                   steps=10, lr=lr, optimizer=optimizer, progress=False)
    assert (r.end > 2 * r.start).all()


def test_lbfgs_refuses_random_transforms(gapnet):
    with pytest.raises(ValueError, match="L-BFGS"):
        S.optimize(gapnet, S.class_score(0), S.PixelImage.random(1, 16), optimizer="lbfgs", transforms=[S.Jitter(1)])


def test_objectives_combine_and_total_variation():
    b = _linear_bundle()
    x = torch.rand(2, 3, 8, 8)
    o = 2.0 * S.class_score(0) - S.class_score(1)
    assert torch.allclose(o(b, x), 2 * b(x)[:, 0] - b(x)[:, 1])
    assert torch.allclose(S.total_variation(torch.ones(2, 3, 8, 8)), torch.zeros(2), atol=1e-3)
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 3, 8, 8)
    # every horizontal difference is 1 (7 x 7 pixels counted, 3 channels), over 64 pixels
    assert torch.allclose(S.total_variation(ramp, beta=2), torch.tensor([3 * 49 / 64]), atol=1e-4)


def test_unknown_optimizer(gapnet):
    with pytest.raises(ValueError, match="'adam'"):
        S.optimize(gapnet, S.class_score(0), S.PixelImage.random(1, 16), optimizer="rmsprop", progress=False)
