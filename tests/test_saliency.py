"""Chapter 5: vanilla-gradient saliency (Simonyan et al. 2013) and SmoothGrad (Smilkov et al. 2017)."""
import pytest
import torch
from torch import nn

from lib import hooks
from lib.attribution import input_gradient, saliency, smoothgrad, smoothgrad_steps
from lib.errors import NoClassesError
from lib.models import Bundle


def _bundle(model, name="test", classes=3):
    return Bundle(name=name, model=model.eval(), classes=tuple(str(i) for i in range(classes)), input_size=8)


def _state(model):
    return ({n: (p.requires_grad, p.grad is None) for n, p in model.named_parameters()},
            {n: m.training for n, m in model.named_modules()})


def _check_untouched(model, before):
    params, modes = _state(model)
    assert params == before[0], "requires_grad flags changed or parameter gradients were left"
    assert modes == before[1], "train/eval modes changed"
    assert hooks.count_hooks(model) == 0


def test_linear_model_saliency_is_abs_weight():
    """S_c(I) = w_c . I + b exactly, so dS_c/dI = w_c and the map is max over channels of |w_c|."""
    torch.manual_seed(0)
    lin = nn.Linear(3 * 8 * 8, 3)
    b = _bundle(nn.Sequential(nn.Flatten(), lin))
    x = torch.rand(2, 3, 8, 8)
    w = lin.weight.detach().view(3, 3, 8, 8)
    assert torch.allclose(input_gradient(b, x, target=[1, 2]), w[[1, 2]])
    assert torch.allclose(saliency(b, x, target=1), w[1].abs().amax(0).expand(2, 8, 8))


def test_gradient_is_in_display_space_through_preprocess():
    """With preprocess (x - m) / s the display-space gradient is the model-space one divided by s."""
    torch.manual_seed(0)
    lin = nn.Linear(3 * 4 * 4, 2)
    std = torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    b = Bundle(name="t", model=nn.Sequential(nn.Flatten(), lin).eval(), classes=("a", "b"), input_size=4,
               preprocess=lambda x: (x - 0.4) / std)
    g = input_gradient(b, torch.rand(1, 3, 4, 4), target=0)
    assert torch.allclose(g, lin.weight.detach()[0].view(1, 3, 4, 4) / std)


def test_shapes_types_and_default_target(gapnet, canvases):
    x = canvases.images[:2]
    g = input_gradient(gapnet, x)
    m = saliency(gapnet, x)
    assert g.shape == (2, 3, 64, 64) and m.shape == (2, 64, 64)
    assert m.device.type == "cpu" and not m.requires_grad and (m >= 0).all()
    with torch.no_grad():
        pred = gapnet(x).argmax(1)
    assert torch.equal(m, saliency(gapnet, x, target=pred))


@pytest.mark.parametrize("which", ["gapnet", "vgg11"])
def test_matches_captum_saliency(which, gapnet, vgg11):
    """Captum's Saliency(abs=True), then max over channels, on gapnet and on VGG-11 (in-place ReLUs)."""
    from captum.attr import Saliency

    from lib.images import normalize
    from lib.models import IMAGENET_MEAN, IMAGENET_STD
    b = gapnet if which == "gapnet" else Bundle("vgg11 (random weights)", vgg11, classes=tuple(map(str, range(1000))),
                                                preprocess=lambda z: normalize(z, IMAGENET_MEAN, IMAGENET_STD))
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    target = [3, 7]
    forward = lambda z: b(z)  # noqa: E731  (Captum differentiates through the same preprocess)
    ref = Saliency(forward).attribute(x.clone().requires_grad_(True), target=target, abs=True).amax(1)
    ours = saliency(b, x, target=target)
    assert torch.allclose(ours, ref.detach(), atol=1e-6, rtol=0)
    assert hooks.count_hooks(b.model) == 0


def test_smoothgrad_noise_zero_is_saliency(gapnet, canvases):
    x = canvases.images[:2, :, 16:48, 16:48]
    assert torch.allclose(smoothgrad(gapnet, x, noise=0.0, samples=3), saliency(gapnet, x), atol=1e-6, rtol=1e-5)


def test_smoothgrad_properties(gapnet, canvases):
    x = canvases.images[:2, :, 16:48, 16:48]         # gapnet is fully convolutional: 32 px crops are 4x cheaper
    a = smoothgrad(gapnet, x, samples=3, seed=1)
    assert a.shape == (2, 32, 32) and (a >= 0).all() and not a.requires_grad
    assert torch.equal(a, smoothgrad(gapnet, x, samples=3, seed=1)), "the same seed must give the same map"
    assert not torch.allclose(a, smoothgrad(gapnet, x, samples=3, seed=2))
    # magnitude=True averages |g|: by the triangle inequality it is >= |average of g| everywhere
    mag = smoothgrad(gapnet, x, samples=3, seed=1, magnitude=True)
    assert (mag >= a - 1e-6).all()
    # the steps are prefixes of the same noise sequence
    steps = smoothgrad_steps(gapnet, x, samples=(2, 3), seed=1, batch_size=4)
    assert torch.allclose(steps[3], a, atol=1e-6)
    assert torch.allclose(steps[2], smoothgrad(gapnet, x, samples=2, seed=1), atol=1e-6)


def test_batch_equals_single_calls(gapnet, canvases):
    x = canvases.images[:4, :, 16:48, 16:48]
    for fn in (saliency, lambda b, z, target: smoothgrad(b, z, target, samples=3, batch_size=5)):
        batch = fn(gapnet, x, target=None)
        single = torch.cat([fn(gapnet, x[i:i + 1], target=None) for i in range(4)])
        assert batch.shape == (4, 32, 32)
        assert torch.allclose(batch, single, atol=1e-6, rtol=1e-4)


def test_nothing_left_behind_even_after_errors():
    """Parameters keep requires_grad and .grad, modules keep their mode, the caller's x keeps no grad."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model.train()
    model[0].weight.requires_grad_(False)           # a mixed state that must come back exactly
    b = Bundle(name="t", model=model, classes=("a", "b", "c"), input_size=8)
    model.train()                                   # Bundle() does not change it; the methods must not either
    before = _state(model)
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    saliency(b, x)
    smoothgrad(b, x, samples=2)
    assert x.grad is None
    _check_untouched(model, before)
    with pytest.raises(ValueError, match="out of range"):
        saliency(b, x.detach(), target=5)
    _check_untouched(model, before)
    with pytest.raises(RuntimeError):               # the model fails inside the forward pass
        saliency(b, torch.rand(2, 1, 8, 8))
    _check_untouched(model, before)
    with pytest.raises(ValueError, match="x\\[None\\]"):
        saliency(b, torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="targets for"):
        smoothgrad(b, x.detach(), target=[0, 1, 2], samples=1)


def test_existing_param_grads_are_kept():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    model(torch.rand(1, 3, 2, 2)).sum().backward()
    g = model[1].weight.grad.clone()
    saliency(_bundle(model), torch.rand(1, 3, 2, 2))
    assert torch.equal(model[1].weight.grad, g)


def test_no_classes_error():
    b = Bundle(name="features only", model=nn.Conv2d(3, 2, 1), classes=None)
    with pytest.raises(NoClassesError):
        saliency(b, torch.rand(1, 3, 4, 4))


def test_repeated_calls_leave_no_hooks_and_no_growth():
    import gc

    from conftest import small_cnn
    b = _bundle(small_cnn())
    x = torch.rand(1, 3, 8, 8)
    for _ in range(5):
        saliency(b, x)
        smoothgrad(b, x, samples=1)
    gc.collect()
    n0 = len(gc.get_objects())
    for _ in range(100):
        saliency(b, x)
        smoothgrad(b, x, samples=1)
    gc.collect()
    assert hooks.count_hooks(b.model) == 0
    assert len(gc.get_objects()) - n0 < 100           # nothing (hooks, closures, tensors) piles up
    assert all(p.requires_grad and p.grad is None for p in b.model.parameters())


def test_smoothgrad_explorer_builds_from_precomputed_or_computes():
    import matplotlib
    matplotlib.use("Agg")

    from conftest import small_cnn
    from lib import widgets
    b = _bundle(small_cnn())
    x = torch.rand(1, 3, 8, 8)
    w = widgets.smoothgrad_explorer(b, x, noises=(0.1, 0.2), samples=(1, 2))
    assert len(w.children) == 3 and hooks.count_hooks(b.model) == 0   # controls, output, live note
    steps = {0.1: smoothgrad_steps(b, x, noise=0.1, samples=(1, 2))}
    assert widgets.smoothgrad_explorer(b, x, maps=steps) is not None


def test_batch_size_does_not_change_the_maps(gapnet, canvases):
    x = canvases.images[:3, :, 16:48, 16:48]
    assert torch.allclose(saliency(gapnet, x, batch_size=2), saliency(gapnet, x), atol=1e-6, rtol=1e-4)
    assert torch.allclose(saliency(gapnet, x, target=[0, 1, 2], batch_size=2),
                          saliency(gapnet, x, target=[0, 1, 2]), atol=1e-6, rtol=1e-4)
