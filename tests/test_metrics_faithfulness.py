"""Deletion/insertion curves, AUC, rank correlation and cascading randomisation on hand-made cases."""
import math

import pytest
import torch
from torch import nn

from lib import metrics
from lib.models import Bundle


class PixelModel(nn.Module):
    """Two classes; the logit of class 1 is 20 * (pixel (0, 0) of the red channel) - 10."""

    def forward(self, x):
        z = 20 * x[:, 0, 0, 0] - 10
        return torch.stack([torch.zeros_like(z), z], 1)


def pixel_bundle():
    return Bundle("pixel", PixelModel().eval(), classes=("off", "on"), input_size=4)


def test_deletion_of_the_one_pixel_that_matters():
    b = pixel_bundle()
    x = torch.ones(1, 3, 4, 4)
    bad = torch.arange(16.0).view(1, 4, 4)                 # the pixel that matters, (0, 0), ranks last
    good = -bad                                            # it ranks first
    steps = 16                                             # one pixel per step
    d_good = metrics.perturbation_curves(b, x, good, target=1, steps=steps)
    d_bad = metrics.perturbation_curves(b, x, bad, target=1, steps=steps)
    p1 = torch.sigmoid(torch.tensor(10.0)).item()
    p0 = torch.sigmoid(torch.tensor(-10.0)).item()
    assert d_good.shape == (1, steps + 1)
    assert d_good[0, 0] == pytest.approx(p1) and torch.allclose(d_good[0, 1:], torch.tensor(p0))
    assert torch.allclose(d_bad[0, :-1], torch.tensor(p1)) and d_bad[0, -1] == pytest.approx(p0)
    # AUC: trapezoid over 16 equal steps
    assert metrics.curve_auc(d_good).item() == pytest.approx((p1 + p0) / 2 / steps + p0 * (steps - 1) / steps)
    assert metrics.curve_auc(d_good) < metrics.curve_auc(d_bad)


def test_insertion_rises_first_for_the_good_map():
    b = pixel_bundle()
    x = torch.ones(2, 3, 4, 4)
    good = torch.zeros(2, 4, 4)
    good[:, 0, 0] = 1
    ins = metrics.perturbation_curves(b, x, good, target=1, mode="insertion", steps=16, baseline="zero")
    assert ins[:, 0].max() < 0.01 and ins[:, 1:].min() > 0.99
    # batching does not change anything
    ins_small = metrics.perturbation_curves(b, x, good, target=1, mode="insertion", steps=16, baseline="zero",
                                            batch_size=5)
    assert torch.equal(ins, ins_small)


def test_curve_endpoints_are_the_image_and_the_baseline(gapnet, canvases):
    x = canvases.images[:3]
    maps = torch.rand(3, 64, 64)
    p = gapnet.predict(x)
    target = p.argmax(1)
    d = metrics.perturbation_curves(gapnet, x, maps, steps=8)
    assert torch.allclose(d[:, 0], p[torch.arange(3), target], atol=1e-6)
    assert torch.allclose(d[:, -1], gapnet.predict(torch.zeros_like(x))[torch.arange(3), target], atol=1e-6)
    assert ((d >= 0) & (d <= 1)).all()


def test_perturbation_errors():
    b = pixel_bundle()
    with pytest.raises(ValueError, match="deletion"):
        metrics.perturbation_curves(b, torch.ones(1, 3, 4, 4), torch.ones(1, 4, 4), mode="erase")
    with pytest.raises(ValueError, match="N x H x W"):
        metrics.perturbation_curves(b, torch.ones(1, 3, 4, 4), torch.ones(1, 5, 5))
    with pytest.raises(ValueError, match="baseline"):
        metrics.perturbation_curves(b, torch.ones(1, 3, 4, 4), torch.ones(1, 4, 4), baseline="noise")


def test_rank_correlation_known_values():
    a = torch.arange(16.0).view(1, 4, 4)
    assert metrics.rank_correlation(a, 2 * a + 1).item() == pytest.approx(1.0)
    assert metrics.rank_correlation(a, -a, absolute=False).item() == pytest.approx(-1.0)
    assert metrics.rank_correlation(a, -a, absolute=True).item() == pytest.approx(1.0)   # same magnitudes
    assert math.isnan(metrics.rank_correlation(a, torch.ones(1, 4, 4)).item())
    g = torch.Generator().manual_seed(0)
    r = metrics.rank_correlation(torch.rand(50, 8, 8, generator=g), torch.rand(50, 8, 8, generator=g))
    assert r.abs().mean() < 0.1


def test_cascading_randomization_goes_top_down_and_leaves_the_original(gapnet):
    before = {k: v.clone() for k, v in gapnet.model.state_dict().items()}
    layers = metrics.randomizable_layers(gapnet.model)
    assert layers[0] == "features.0" and layers[-1] == "fc"
    steps = list(metrics.cascading_randomization(gapnet, seed=0))
    assert [name for name, _ in steps] == layers[::-1]
    _, first = steps[0]
    sd = first.model.state_dict()
    assert not torch.equal(sd["fc.weight"], before["fc.weight"])          # the top is randomised
    assert torch.equal(sd["features.0.weight"], before["features.0.weight"])  # the bottom is not yet
    _, last = steps[-1]
    assert not torch.equal(last.model.state_dict()["features.0.weight"], before["features.0.weight"])
    assert "randomised" in last.name
    for k, v in gapnet.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    again = list(metrics.cascading_randomization(gapnet, seed=0))
    assert torch.equal(again[0][1].model.fc.weight, first.model.fc.weight)   # seeded


def test_cascading_randomization_in_groups(gapnet):
    groups = [["features.0", "features.1"], "fc"]
    steps = list(metrics.cascading_randomization(gapnet, groups, seed=1))
    assert [s for s, _ in steps] == ["fc", "features.0+features.1"]
    fc_only, both = steps[0][1].model, steps[1][1].model
    assert torch.equal(fc_only.features[0].weight, gapnet.model.features[0].weight)
    assert not torch.equal(both.features[0].weight, gapnet.model.features[0].weight)
    assert torch.equal(both.features[1].running_var, torch.ones_like(both.features[1].running_var))
    with pytest.raises(TypeError, match="reset_parameters"):
        list(metrics.cascading_randomization(gapnet, ["features.2"]))       # a ReLU has nothing to reset
