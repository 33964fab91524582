"""Guided backpropagation, deconvnet and vanilla gradients (lib.attribution.guided)."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lib import hooks
from lib.errors import LayerNotFoundError
from lib.attribution import gradient_image, gradient_map, guided_backprop, guided_backprop_map
from lib.attribution.guided import ModifiedReLU, ReLUPatchError
from lib.images import normalize
from lib.models import IMAGENET_MEAN, IMAGENET_STD, Bundle


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def vgg11_bundles():
    """torchvision VGG-11, random weights, in model space (identity preprocess) and in display space."""
    import torchvision
    torch.manual_seed(0)
    m = torchvision.models.vgg11(weights=None).eval()
    classes = tuple(str(i) for i in range(1000))
    return (Bundle("vgg11 (random weights)", m, classes=classes, input_size=32),
            Bundle("vgg11 (random weights)", m, preprocess=lambda x: normalize(x, IMAGENET_MEAN, IMAGENET_STD),
                   classes=classes, input_size=32))


def tiny():
    """x (3 numbers, as a 1 x 3 x 1 x 1 image) -> h = x -> relu -> y = v . relu(h), v = (-1, 2, 1)."""
    model = nn.Sequential(nn.Conv2d(3, 3, 1, bias=False), nn.ReLU(inplace=True), nn.Flatten(),
                          nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        model[3].weight.copy_(torch.tensor([[-1.0, 2.0, 1.0]]))
    return Bundle("tiny", model.eval(), classes=("y",), input_size=1)


def test_rules_by_hand():
    # x = (2, -1, 3): the ReLU's inputs are (+, -, +); the gradients arriving at it are v = (-1, +2, +1).
    # unit 1: positive input, negative gradient; unit 2: negative input, positive gradient; unit 3: both +.
    b, x = tiny(), torch.tensor([2.0, -1.0, 3.0]).view(1, 3, 1, 1)
    expected = {"vanilla": [-1.0, 0.0, 1.0],      # g * [x > 0]
                "guided": [0.0, 0.0, 1.0],        # max(g, 0) * [x > 0]
                "deconvnet": [0.0, 2.0, 1.0]}     # max(g, 0)
    for rule, want in expected.items():
        g = guided_backprop(b, x, target=0, rule=rule)
        assert g.shape == (1, 3, 1, 1)
        assert torch.equal(g.flatten(), torch.tensor(want)), rule


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_equals_captum_on_gapnet(gapnet, canvases, rule):
    from captum.attr import Deconvolution, GuidedBackprop
    x, t = canvases.images[:3], [1, 4, 7]
    ours = guided_backprop(gapnet, x, target=t, rule=rule)        # gapnet's preprocess is the identity
    ref_cls = GuidedBackprop if rule == "guided" else Deconvolution
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ref_cls(gapnet.model).attribute(x.clone().requires_grad_(True), target=t)
    assert (ours - ref).abs().max() <= 1e-5 * ref.abs().max()
    assert hooks.count_hooks(gapnet.model) == 0


def test_equals_captum_on_vgg11(vgg11_bundles):
    from captum.attr import Deconvolution, GuidedBackprop
    model_space, display_space = vgg11_bundles
    x, t = torch.rand(2, 3, 32, 32), [3, 500]
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    for rule, ref_cls in (("guided", GuidedBackprop), ("deconvnet", Deconvolution)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = ref_cls(model_space.model).attribute(x.clone().requires_grad_(True), target=t)
        ours = guided_backprop(model_space, x, target=t, rule=rule)
        assert (ours - ref).abs().max() <= 1e-5 * ref.abs().max(), rule
    # display space: x -> (x - mean) / std, so d/dx = (d/d model input) / std (last rule, deconvnet)
    z = normalize(x, IMAGENET_MEAN, IMAGENET_STD)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = Deconvolution(model_space.model).attribute(z.requires_grad_(True), target=t) / std
    ours = guided_backprop(display_space, x, target=t, rule="deconvnet")
    assert (ours - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_vanilla_is_the_plain_gradient(gapnet, canvases):
    x = canvases.images[:2].clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(gapnet(x)[:, 3].sum(), x)
    assert torch.allclose(guided_backprop(gapnet, x, target=3, rule="vanilla"), ref, atol=1e-6)


def test_unit_of_a_layer(gapnet, canvases):
    x, layer = canvases.images[:2], "features.19"
    xin = x.clone().requires_grad_(True)
    with hooks.capture(gapnet.model, layer) as rec:
        gapnet(xin)
    a = rec[layer]
    (ref_sum,) = torch.autograd.grad(a[:, 5].sum(), xin, retain_graph=True)
    (ref_max,) = torch.autograd.grad(a[:, 5].flatten(1).amax(1).sum(), xin, retain_graph=True)
    strongest = a.detach().flatten(2).amax(2).argmax(1)
    (ref_auto,) = torch.autograd.grad(a[[0, 1], strongest].flatten(1).amax(1).sum(), xin)
    kw = dict(layer=layer, rule="vanilla")
    assert torch.allclose(guided_backprop(gapnet, x, channel=5, reduce="sum", **kw), ref_sum, atol=1e-6)
    assert torch.allclose(guided_backprop(gapnet, x, channel=5, **kw), ref_max, atol=1e-6)
    assert torch.allclose(guided_backprop(gapnet, x, **kw), ref_auto, atol=1e-6)   # default: most active channel
    # guided gradients of a unit are non-negative at the first layer's ReLU inputs... and differ from vanilla
    g = guided_backprop(gapnet, x, channel=5, layer=layer)
    assert not torch.allclose(g, ref_max)


def test_batch_equals_single_calls(gapnet, canvases):
    x = canvases.images[:4]
    g = guided_backprop(gapnet, x, layer="features.19", channel=[3, 4, 5, 6])
    tol = 1e-5 * g.abs().max()
    assert torch.allclose(guided_backprop(gapnet, x, layer="features.19", channel=[3, 4, 5, 6], batch_size=3), g,
                          atol=tol)                                        # the batch_size knob: same gradients
    with torch.no_grad():                                                  # works inside no_grad too
        assert torch.allclose(guided_backprop(gapnet, x, layer="features.19", channel=[3, 4, 5, 6]), g, atol=tol)
    for kw in (dict(target=[0, 2, 4, 6]), dict(layer="features.26", channel=[1, 2, 3, 4]), dict(layer="features.12")):
        for rule in ("guided", "deconvnet"):
            batch = guided_backprop(gapnet, x, rule=rule, **kw)
            single = []
            for i in range(4):
                one = {k: (v[i] if isinstance(v, list) else v) for k, v in kw.items()}
                single.append(guided_backprop(gapnet, x[i:i + 1], rule=rule, **one))
            assert torch.allclose(batch, torch.cat(single), atol=1e-6, rtol=1e-5), (kw, rule)


def _state(model):
    return ({n: (m, getattr(m, "inplace", None), m.training) for n, m in model.named_modules()},
            {n: p.requires_grad for n, p in model.named_parameters()})


def test_modules_hooks_and_flags_restored(gapnet, canvases):
    model = gapnet.model
    model.train()
    model.fc.weight.requires_grad_(False)
    try:
        before = _state(model)
        assert any(inplace is True for _, inplace, _ in before[0].values())   # gapnet uses ReLU(inplace=True)
        guided_backprop(gapnet, canvases.images[:2], target=1)               # normal exit
        assert _state(model) == before
        with pytest.raises(ValueError, match="out of range"):                 # exception inside the with
            guided_backprop(gapnet, canvases.images[:2], target=10, rule="deconvnet")
        assert _state(model) == before
        with pytest.raises(ValueError, match="channel out of range"):
            guided_backprop(gapnet, canvases.images[:2], layer="features.5", channel=32)
        assert _state(model) == before
        assert hooks.count_hooks(model) == 0
        assert not any(isinstance(m, ModifiedReLU) for m in model.modules())
        assert all(p.grad is None for p in model.parameters())
    finally:
        model.eval()
        model.fc.weight.requires_grad_(True)


def test_no_hooks_after_many_calls(gapnet, canvases):
    x = canvases.images[:1]
    for _ in range(30):
        guided_backprop(gapnet, x)
    assert hooks.count_hooks(gapnet.model) == 0


def test_functional_relu_is_refused():
    class Functional(nn.Module):
        def __init__(self, with_module: bool):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 2)
            self.relu = nn.ReLU() if with_module else None

        def forward(self, x):
            h = F.relu(self.conv(x))                     # cannot be swapped
            if self.relu is not None:
                h = self.relu(h)
            return self.fc(h.mean((2, 3)))

    x = torch.rand(2, 3, 8, 8)
    for with_module, match in ((False, "no nn.ReLU"), (True, "functionally")):
        b = Bundle("functional", Functional(with_module).eval(), classes=("a", "b"), input_size=8)
        with pytest.raises(ReLUPatchError, match=match):
            guided_backprop(b, x, target=0)
        assert guided_backprop(b, x, target=0, rule="vanilla").shape == (2, 3, 8, 8)   # vanilla needs no patch
        assert hooks.count_hooks(b.model) == 0
        assert type(b.model.relu) is (nn.ReLU if with_module else type(None))


def test_display_helpers_and_errors(gapnet, canvases):
    g = guided_backprop(gapnet, canvases.images[:3])
    img, m = gradient_image(g), gradient_map(g)
    assert img.shape == (3, 3, 64, 64) and img.min() >= 0 and img.max() <= 1
    assert m.shape == (3, 64, 64) and (m >= 0).all() and not m.requires_grad
    assert torch.equal(guided_backprop_map(gapnet, canvases.images[:3]), m)
    with pytest.raises(ValueError, match="rule"):
        guided_backprop(gapnet, canvases.images[:1], rule="backwards")
    with pytest.raises(ValueError, match="not both"):
        guided_backprop(gapnet, canvases.images[:1], target=1, layer="features.5")
    with pytest.raises(LayerNotFoundError, match="features.26"):
        guided_backprop(gapnet, canvases.images[:1], layer="feature.26", channel=0)
