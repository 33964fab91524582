"""Grad-CAM, counterfactual Grad-CAM and Guided Grad-CAM (lib.attribution.gradcam)."""
import copy
import gc
import warnings

import pytest
import torch
import torch.nn.functional as F

from lib import hooks, models
from lib.attribution import cam, grad_cam, grad_cam_layers, guided_backprop, guided_grad_cam
from lib.errors import LayerNotFoundError, NoClassesError
from lib.images import normalize_map
from lib.models import Bundle


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tv_bundles():
    """torchvision ResNet-18 and VGG-11 with random weights (in-place ReLUs, like the real ones)."""
    torch.manual_seed(0)
    return {"resnet18": models.load("resnet18", weights=None, device="cpu"),
            "vgg11": models.load("vgg11", weights=None, device="cpu")}


def test_grad_cam_is_cam_on_a_gap_network(gapnet, canvases):
    """y^c = sum_k w_k^c mean_ij A^k_ij + b^c, so dy^c/dA^k_ij = w_k^c / Z and alpha_k^c = w_k^c / Z:
    Grad-CAM at the GAP layer's input is CAM divided by Z = h * w (Selvaraju et al., section 3.1)."""
    x, layer = canvases.images[:6], "features.26"
    for target in (None, 3, [0, 1, 2, 3, 4, 5]):
        ref = cam(gapnet, x, target=target, layer=layer, upsample=False)       # 6 x 8 x 8
        z = ref.shape[1] * ref.shape[2]
        pre = grad_cam(gapnet, x, target=target, layer=layer, relu=False, upsample=False)
        post = grad_cam(gapnet, x, target=target, layer=layer, upsample=False)
        tol = 1e-5 * ref.abs().max()
        assert (pre * z - ref).abs().max() <= tol                             # before the ReLU
        assert (post * z - ref.clamp(min=0)).abs().max() <= tol               # after it
        assert (ref < 0).any() and (ref > 0).any()                            # so the ReLU mattered
    up = grad_cam(gapnet, x, layer=layer, relu=False)                         # and upsampled
    assert (up * 64 - cam(gapnet, x, layer=layer)).abs().max() <= 1e-5 * up.abs().max() * 64


def _pgc(bundle, x, layer, classes):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    with GradCAM(bundle.model, [bundle.model.get_submodule(layer)]) as method:
        out = method(bundle.preprocess(x), [ClassifierOutputTarget(c) for c in classes])
    return torch.from_numpy(out)


@pytest.mark.parametrize("arch,size,layers", [("resnet18", 64, ["layer2", "layer3", "layer4", "layer4.1.conv2"]),
                                              ("vgg11", 32, ["features.9", "features.15", "features.19"])])
def test_equals_pytorch_grad_cam(tv_bundles, arch, size, layers):
    """pytorch-grad-cam min-max scales each map (scale_cam_image), resizes with cv2.resize (bilinear,
    half-pixel centres, as F.interpolate(align_corners=False) when upsampling) and scales again; the
    composition is the exact min-max scaling of the upsampled map, which normalize_map computes."""
    b = tv_bundles[arch]
    x, classes = torch.rand(3, 3, size, size), [1, 500, 999]
    ours = grad_cam_layers(b, x, layers, target=classes)
    for layer in layers:
        ref = _pgc(b, x, layer, classes)
        assert ours[layer].shape == ref.shape == (3, size, size)
        assert (normalize_map(ours[layer]) - ref).abs().max() <= 1e-5, layer
    single = grad_cam(b, x, target=classes, layer=layers[-1])        # one layer = the same as several at once
    assert torch.allclose(single, ours[layers[-1]], atol=1e-6 * single.abs().max())
    assert hooks.count_hooks(b.model) == 0


def test_layer_followed_by_inplace_relu_is_read_before_it(tv_bundles):
    """VGG's convs feed ReLU(inplace=True), which would overwrite a captured conv output: the map must
    be the conv's own (signed) output, as computed on an out-of-place copy of the network."""
    b = tv_bundles["vgg11"]
    x, layer = torch.rand(2, 3, 32, 32), "features.18"
    ref_model = copy.deepcopy(b.model)
    for m in ref_model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    xin = b.preprocess(x)
    with hooks.capture(ref_model, layer) as rec:
        score = ref_model(xin)[:, 7].sum()
    a = rec[layer]
    (g,) = torch.autograd.grad(score, a)
    ref = torch.einsum("nk,nkhw->nhw", g.mean((2, 3)), a.detach())
    assert (a < 0).any()
    ours = grad_cam(b, x, target=7, layer=layer, relu=False, upsample=False)
    assert torch.allclose(ours, ref, atol=1e-5 * ref.abs().max())
    assert all(m.inplace for m in b.model.modules() if isinstance(m, torch.nn.ReLU))


def test_batch_equals_single_calls(gapnet, canvases):
    x, t = canvases.images[:5], [0, 3, 5, 7, 9]
    for layer in ("features.12", "features.26"):
        for cf in (False, True):
            batch = grad_cam(gapnet, x, target=t, layer=layer, counterfactual=cf)
            single = torch.cat([grad_cam(gapnet, x[i:i + 1], target=t[i], layer=layer, counterfactual=cf)
                                for i in range(5)])
            assert torch.allclose(batch, single, atol=1e-5 * batch.abs().max().clamp_min(1e-12))
    gg = guided_grad_cam(gapnet, x)
    single = torch.cat([guided_grad_cam(gapnet, x[i:i + 1]) for i in range(5)])
    assert torch.allclose(gg, single, atol=1e-5 * gg.abs().max())
    batched = grad_cam(gapnet, x, target=t, batch_size=2)                  # the batch_size knob: same maps
    assert torch.allclose(batched, grad_cam(gapnet, x, target=t), atol=1e-5 * batched.abs().max())
    with torch.no_grad():                                                  # works inside no_grad too
        assert torch.allclose(grad_cam(gapnet, x, target=t), batched, atol=1e-5 * batched.abs().max())


def test_counterfactual_guided_and_shapes(gapnet, canvases):
    x = canvases.images[:3]
    plain = grad_cam(gapnet, x, target=2, relu=False)
    assert torch.allclose(grad_cam(gapnet, x, target=2, relu=False, counterfactual=True), -plain)
    low = grad_cam(gapnet, x, target=2, relu=False, upsample=False)      # the ReLU comes before upsampling
    assert torch.allclose(grad_cam(gapnet, x, target=2, counterfactual=True, upsample=False), (-low).clamp(min=0))
    assert grad_cam(gapnet, x, layer="features.12", upsample=False).shape == (3, 32, 32)
    maps = grad_cam(gapnet, x)
    assert maps.shape == (3, 64, 64) and maps.device.type == "cpu" and not maps.requires_grad
    assert (maps >= 0).all()
    gg = guided_grad_cam(gapnet, x, target=[1, 2, 3])
    ref = guided_backprop(gapnet, x, target=[1, 2, 3]) * grad_cam(gapnet, x, target=[1, 2, 3])[:, None]
    assert gg.shape == (3, 3, 64, 64) and torch.allclose(gg, ref)


def _state(model):
    return ({n: (m, getattr(m, "inplace", None), m.training) for n, m in model.named_modules()},
            {n: (p.requires_grad, None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()})


def _same(a, b):
    mods_a, params_a = a
    mods_b, params_b = b
    return mods_a == mods_b and all(params_a[n][0] == params_b[n][0] and (
        (params_a[n][1] is None and params_b[n][1] is None) or torch.equal(params_a[n][1], params_b[n][1]))
        for n in params_a)


def _n_tensors():
    gc.collect()
    return sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects())


def test_backward_stops_at_the_layer(gapnet, canvases):
    """The cost claim (about one forward pass): autograd records nothing below A, so no layer
    under the target layer has an output in the graph, and the layers above it do."""
    model, seen = gapnet.model, {}
    watch = {"features.0": model.features[0], "features.19": model.features[19], "fc": model.fc}
    handles = [m.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.requires_grad))
               for n, m in watch.items()]
    try:
        grad_cam(gapnet, canvases.images[:2], layer="features.22")
    finally:
        for h in handles:
            h.remove()
    assert seen == {"features.0": False, "features.19": False, "fc": True}


def test_cleanup_after_calls_and_exceptions(gapnet, canvases):
    model, x = gapnet.model, canvases.images[:1]
    for _ in range(10):                                   # warm-up: caches, allocator
        grad_cam(gapnet, x)
    n_tensors = _n_tensors()
    for _ in range(100):
        grad_cam(gapnet, x)
    assert hooks.count_hooks(model) == 0
    assert _n_tensors() <= n_tensors                       # nothing kept alive: memory does not grow

    model.train()
    model.fc.weight.requires_grad_(False)
    model.features[0].weight.grad = torch.ones_like(model.features[0].weight)   # an existing .grad stays as is
    try:
        before = _state(model)
        grad_cam(gapnet, canvases.images[:2], target=1, layer="features.19")
        assert _same(_state(model), before)
        with pytest.raises(ValueError, match="out of range"):                  # raised inside the with blocks
            grad_cam(gapnet, canvases.images[:2], target=12)
        with pytest.raises(ValueError, match="conv layer"):
            grad_cam(gapnet, canvases.images[:2], layer="fc")
        assert _same(_state(model), before)
        assert hooks.count_hooks(model) == 0
        assert sum(p.grad is not None for p in model.parameters()) == 1
    finally:
        model.eval()
        model.fc.weight.requires_grad_(True)
        model.features[0].weight.grad = None


def test_errors(gapnet, canvases):
    x = canvases.images[:1]
    with pytest.raises(LayerNotFoundError, match="'features.26'"):
        grad_cam(gapnet, x, layer="feature.26")
    with pytest.raises(LayerNotFoundError, match="list_layers"):
        grad_cam(gapnet, x, layer="layer4")
    no_classes = Bundle("no classes", gapnet.model, classes=None, input_size=64, layers={"default": "features.26"})
    with pytest.raises(NoClassesError):
        grad_cam(no_classes, x)
    with pytest.raises(ValueError, match="targets for"):
        grad_cam(gapnet, canvases.images[:3], target=[1, 2])
    with pytest.raises(ValueError, match="N x C x H x W"):
        grad_cam(gapnet, canvases.images[0])


def test_a_1x1_layer_warns_that_its_map_is_constant(gapnet, canvases):
    x = F.interpolate(canvases.images[:2], size=(8, 8), mode="bilinear", align_corners=False)   # features.26: 1x1
    with pytest.warns(UserWarning, match="1x1") as record:
        m = grad_cam(gapnet, x, target=0, relu=False)
    assert record[0].filename == __file__                                   # points at the caller's line
    assert torch.allclose(m, m[:, :1, :1].expand_as(m))                    # what the warning says
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad_cam(gapnet, canvases.images[:2])                               # 8x8 at 64 px: no warning


def test_default_layer_and_target(gapnet, canvases):
    x = canvases.images[:4]
    with torch.no_grad():
        pred = gapnet(x).argmax(1)
    assert torch.equal(grad_cam(gapnet, x), grad_cam(gapnet, x, target=pred, layer=gapnet.layer("gradcam")))
    up = F.interpolate(grad_cam(gapnet, x, upsample=False)[:, None], size=(64, 64), mode="bilinear",
                       align_corners=False)[:, 0]
    assert torch.allclose(up, grad_cam(gapnet, x))
    assert torch.equal(grad_cam(gapnet, x, layer=gapnet.model.features[19]), grad_cam(gapnet, x, layer="features.19"))
