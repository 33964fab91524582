"""Feature inversion (chapter 12): lib.synthesis.inversion on vgg16-hed with small images."""
import pytest
import torch

import lib
from lib import hooks, synthesis as S
from lib.errors import LayerNotFoundError
from lib.models import Bundle

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def hed():
    from lib import models
    return models.load("vgg16-hed", device="cpu")


@pytest.fixture(scope="module")
def photo():
    from lib import data
    return data.sample_image("chelsea", size=32)       # 1 x 3 x 32 x 48


def test_inversion_lowers_the_feature_error_and_keeps_pixels_in_range(hed, photo):
    r = S.invert(hed, photo, "conv3_3", steps=30)
    assert r.image.shape == photo.shape and r.image.min() >= 0 and r.image.max() <= 1
    assert r.model == "vgg16-hed" and len(r.history) == 30
    start, end = -r.start.item(), -r.end.item()
    assert 0.5 < start < 1.5                   # noise has almost nothing in common with the photo...
    assert end < start / 10                    # ...and 30 evaluations cut the error more than 10x (measured ~23x)
    e = S.inversion_errors(hed, r, photo, "conv3_3")
    assert torch.allclose(e.feature, -r.end, atol=1e-5)     # .end is minus the error of the returned image


def test_conv1_2_keeps_almost_everything(hed, photo):
    """Shallow features are nearly invertible: the reconstruction is close to the photo in pixels."""
    r = S.invert(hed, photo, "conv1_2", steps=40)
    e = S.inversion_errors(hed, r, photo, "conv1_2")
    assert e.feature.item() < 0.01
    assert e.pixel.item() < 0.05               # RMSE in [0, 1] units (measured ~0.01); mid-gray scores ~0.16


def test_adam_with_jitter_stays_in_range_and_lowers_the_error(hed, photo):
    r = S.invert(hed, photo, "conv2_2", steps=15, optimizer="adam", jitter=1)
    assert r.image.min() >= 0 and r.image.max() <= 1
    assert (-r.end < 0.6 * -r.start).all()          # measured: 0.84 -> 0.35


def test_errors_of_the_original_are_zero_and_of_gray_are_large(hed, photo):
    e = S.inversion_errors(hed, photo, photo, "conv2_2")
    assert e.feature.abs().max() < 1e-6 and e.pixel.abs().max() < 1e-6
    e = S.inversion_errors(hed, torch.full_like(photo, 0.5), photo, "conv2_2")
    assert e.feature.item() > 0.3 and e.pixel.item() > 0.1


def test_model_left_as_found(hed, photo):
    model = hed.model
    model.train()
    model.features[0].weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    try:
        S.invert(hed, photo, "conv2_2", steps=3)
        assert model.training and [p.requires_grad for p in model.parameters()] == flags
        assert hooks.count_hooks(model) == 0
    finally:
        model.eval()
        model.features[0].weight.requires_grad_(True)


class _Boom(torch.nn.Module):
    """Raises on its ``after``-th call: an error in the middle of the optimisation."""
    def __init__(self, after: int):
        super().__init__()
        self.calls, self.after = 0, after

    def forward(self, x):
        self.calls += 1
        if self.calls >= self.after:
            raise RuntimeError("boom")
        return x


def test_model_restored_after_an_exception():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(inplace=True), _Boom(after=4),
                                torch.nn.Conv2d(4, 4, 3))
    model.train()
    model[0].bias.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    b = Bundle(name="tiny", model=model, layers={"default": "2"})
    with pytest.raises(RuntimeError, match="boom"):
        S.invert(b, torch.rand(1, 3, 16, 16), "2", steps=10)   # target, start, then a few evaluations
    assert model[2].calls == 4
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert hooks.count_hooks(model) == 0


def test_deterministic_under_seed(hed, photo):
    def run(optimizer):
        lib.seed(0)
        return S.invert(hed, photo, "conv2_2", steps=8, optimizer=optimizer, jitter=1 if optimizer == "adam" else 0)
    assert torch.equal(run("lbfgs").image, run("lbfgs").image)
    assert torch.equal(run("adam").image, run("adam").image)
    a, b = S.invert(hed, photo, "conv2_2", steps=8, seed=1), S.invert(hed, photo, "conv2_2", steps=8, seed=2)
    assert not torch.equal(a.image, b.image)


def test_total_variation_prior(hed, photo):
    assert torch.allclose(S.total_variation(torch.full((2, 3, 8, 8), 0.3)), torch.zeros(2), atol=1e-3)
    # a larger TV weight gives a smoother reconstruction (same start, same evaluations)
    weak, strong = (S.invert(hed, photo, "conv2_2", steps=12, tv_weight=w) for w in (0.0, 10.0))
    assert S.total_variation(strong.image, 2).item() < 0.5 * S.total_variation(weak.image, 2).item()
    # one weight per image of a batch
    both = S.invert(hed, photo.expand(2, -1, -1, -1), "conv2_2", steps=12, tv_weight=torch.tensor([0.0, 10.0]))
    tv = S.total_variation(both.image, 2)
    assert tv[1] < 0.5 * tv[0]


def test_alpha_norm():
    assert torch.allclose(S.alpha_norm(torch.full((1, 3, 4, 4), 0.5)), torch.zeros(1))
    assert torch.allclose(S.alpha_norm(torch.ones(1, 3, 4, 4), alpha=6), torch.tensor([3.0]))   # 1 per channel
    x = torch.rand(2, 3, 5, 5)
    assert (S.alpha_norm(x, 6) < S.alpha_norm(x, 2)).all()     # high alpha only punishes pixels near 0 or 1


def test_bad_input(hed, photo):
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        S.invert(hed, photo[0], "conv1_2", steps=2)
    with pytest.raises(ValueError, match="L-BFGS"):
        S.invert(hed, photo, "conv1_2", steps=2, jitter=2)
    with pytest.raises(ValueError, match="one per image"):
        S.invert(hed, photo, "conv1_2", steps=2, tv_weight=torch.tensor([1.0, 2.0]))
    with pytest.raises(LayerNotFoundError):
        S.invert(hed, photo, "conv9_9", steps=2)
    with pytest.raises(ValueError, match="same size"):
        S.inversion_errors(hed, photo[..., :16], photo, "conv1_2")
