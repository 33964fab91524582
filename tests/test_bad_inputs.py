"""The bad-input battery for the Part II methods: each misuse gives a clear error (never a traceback
from deep inside torch), and nothing is left behind on the model: no hook, no train/eval change, no
BatchNorm statistics moved, no tensors kept alive across calls.

Image-file odd cases (grayscale, RGBA, 16-bit, palette, CMYK, tiny, huge, truncated, not an image,
missing) are in tests/test_images.py; registry errors in tests/test_models.py.
"""
import gc
import warnings

import pytest
import torch

from lib import attribution as A
from lib import hooks
from lib.attribution.cam import NotGapModelError

pytestmark = pytest.mark.usefixtures("one_thread")

METHODS = {
    "saliency": lambda b, x, t: A.saliency(b, x, target=t),
    "smoothgrad": lambda b, x, t: A.smoothgrad(b, x, target=t, samples=2, progress=False),
    "guided backprop": lambda b, x, t: A.guided_backprop_map(b, x, target=t),
    "occlusion": lambda b, x, t: A.occlusion(b, x, target=t, window=32, stride=32),
    "CAM": lambda b, x, t: A.cam(b, x, target=t),
    "Grad-CAM": lambda b, x, t: A.grad_cam(b, x, target=t),
    "Guided Grad-CAM": lambda b, x, t: A.guided_grad_cam(b, x, target=t),
}


@pytest.fixture(scope="module")
def x(canvases):
    return canvases.images[:2]


def _state(model):
    return ({n: m.training for n, m in model.named_modules()},
            {n: b.clone() for n, b in model.named_buffers()},
            {n: p.requires_grad for n, p in model.named_parameters()})


def _same_state(a, b):
    return a[0] == b[0] and a[2] == b[2] and all(torch.equal(a[1][k], b[1][k]) for k in a[1])


@pytest.mark.parametrize("method", list(METHODS))
def test_class_index_out_of_range_is_refused_and_leaves_nothing(gapnet, x, method):
    before = _state(gapnet.model)
    with pytest.raises(ValueError, match="out of range"):
        METHODS[method](gapnet, x, 10)
    assert hooks.count_hooks(gapnet.model) == 0
    assert _same_state(before, _state(gapnet.model))


@pytest.mark.parametrize("method", list(METHODS))
def test_a_model_left_in_train_mode_is_explained_in_eval_mode_and_left_as_it_was(gapnet, x, method):
    expected = METHODS[method](gapnet, x, None)
    gapnet.model.train()
    try:
        before = _state(gapnet.model)
        got = METHODS[method](gapnet, x, None)
        assert _same_state(before, _state(gapnet.model))        # still training, BatchNorm stats unmoved
    finally:
        gapnet.model.eval()
    assert torch.allclose(got, expected, atol=1e-6)             # the map of the eval-mode model


def _live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():            # isinstance() on torch.distributed's deprecated aliases warns
        warnings.simplefilter("ignore", FutureWarning)
        return sum(isinstance(o, torch.Tensor) for o in gc.get_objects())


@pytest.mark.parametrize("method", list(METHODS))
def test_a_hundred_calls_leave_no_hook_and_no_live_tensors(gapnet, x, method):
    fn = METHODS[method]
    one = x[:1]
    for _ in range(3):                                          # warm-up: caches, lazy imports
        fn(gapnet, one, None)
    live = _live_tensors()
    for _ in range(100):
        fn(gapnet, one, None)
    assert hooks.count_hooks(gapnet.model) == 0
    assert _live_tensors() <= live + 5


def test_cam_without_a_gap_head_points_to_grad_cam():
    from lib import models
    flat = models.load("flatnet", device="cpu")
    with pytest.raises(NotGapModelError, match="Grad-CAM"):
        A.cam(flat, torch.rand(1, 3, 64, 64))


def test_grad_cam_on_a_non_conv_layer_says_which_layers_work(gapnet, x):
    with pytest.raises(ValueError, match="needs a conv layer.*features"):
        A.grad_cam(gapnet, x, layer="fc")
    assert hooks.count_hooks(gapnet.model) == 0


def test_unknown_layer_lists_close_matches(gapnet, x):
    from lib.errors import LayerNotFoundError
    with pytest.raises(LayerNotFoundError, match="features.2"):
        A.grad_cam(gapnet, x, layer="features.2x")
    assert hooks.count_hooks(gapnet.model) == 0


@pytest.mark.parametrize("method", ["saliency", "Grad-CAM", "occlusion"])
def test_class_methods_on_a_bundle_without_classes_say_so(method):
    from lib import models
    from lib.errors import NoClassesError
    hed = models.load("vgg16-hed", device="cpu")
    with pytest.raises(NoClassesError):
        METHODS[method](hed, torch.rand(1, 3, 32, 32), 0)
