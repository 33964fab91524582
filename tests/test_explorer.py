"""The class explorer (lib/explorer.py, notebooks/explorer.ipynb): every Part II method for one image,
the reasons shown where a method does not apply, the class menu, odd uploads, the time of an
update, and nothing left behind on the model."""
import io
import os
import statistics
import tempfile
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from lib import attribution as A  # noqa: E402
from lib import explorer as E  # noqa: E402
from lib import hooks, models  # noqa: E402
from lib.errors import ImageLoadError, NoClassesError  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet_output():
    """The explorer draws with plt.show(), which the Agg backend only warns about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-interactive.*")
        yield
    plt.close("all")


@pytest.fixture(scope="module")
def flatnet():
    return models.load("flatnet", device="cpu")


@pytest.fixture(scope="module")
def hed():
    return models.load("vgg16-hed", device="cpu")


@pytest.fixture(scope="module")
def gapnet_result(gapnet, canvases):
    return E.explain_all(gapnet, canvases.images[:1])


@pytest.fixture(scope="module")
def items(canvases):
    return E.default_images(canvases[:200], photos=("chelsea",))


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- explain_all
def test_every_method_gives_a_map_of_the_right_shape_and_range_on_a_canvas(gapnet, canvases, gapnet_result):
    r = gapnet_result
    assert tuple(r.maps) == E.METHODS and r.reasons == {}
    with torch.no_grad():
        assert r.target == int(gapnet(canvases.images[:1]).argmax())       # default: the predicted class
    for name, m in r.maps.items():
        shape = (3, 64, 64) if name in E.GRADIENT_METHODS else (64, 64)
        assert tuple(m.shape) == shape, name
        assert torch.isfinite(m).all() and m.abs().max() > 0, name
        assert r.seconds[name] >= 0
    for name in ("saliency", "SmoothGrad", "Grad-CAM"):
        assert r.maps[name].min() >= 0, name
    assert -1 <= r.maps["occlusion"].min() and r.maps["occlusion"].max() <= 1   # probability drops
    assert abs(float(r.probs.sum()) - 1) < 1e-5
    assert hooks.count_hooks(gapnet.model) == 0


def test_the_maps_are_lib_attribution_s(gapnet, canvases, gapnet_result):
    x, r, s = canvases.images[:1], gapnet_result, gapnet_result.settings
    window, stride = s.occlusion(64)
    assert (window, stride) == (16, 12) and s.samples == 8                  # the settings the notebook states
    assert torch.allclose(r.maps["Grad-CAM"], A.grad_cam(gapnet, x, r.target)[0], atol=1e-6)
    assert torch.allclose(r.maps["CAM"], A.cam(gapnet, x, r.target)[0], atol=1e-5)
    assert torch.allclose(r.maps["Guided Grad-CAM"], A.guided_grad_cam(gapnet, x, r.target)[0], atol=1e-6)
    assert torch.allclose(r.maps["occlusion"], A.occlusion(gapnet, x, r.target, window=window, stride=stride)[0],
                          atol=1e-6)
    assert torch.allclose(r.maps["SmoothGrad"], A.smoothgrad(gapnet, x, r.target, samples=8)[0], atol=1e-6)


def test_an_other_class_and_layer_change_the_maps(gapnet, canvases, gapnet_result):
    other = (gapnet_result.target + 1) % 10
    r = E.explain_all(gapnet, canvases.images[:1], target=other, layer="features.17")
    assert r.target == other and r.layer == "features.17" and r.cam_layer == "features.26"
    assert not torch.allclose(r.maps["Grad-CAM"], gapnet_result.maps["Grad-CAM"])
    assert not torch.allclose(r.maps["saliency"], gapnet_result.maps["saliency"])


def test_cam_on_a_model_without_a_gap_head_is_not_applicable_and_says_use_grad_cam(flatnet, canvases):
    r = E.explain_all(flatnet, canvases.images[:1])
    assert list(r.reasons) == ["CAM"]
    assert "Grad-CAM" in r.reasons["CAM"] and "global average pooling" in r.reasons["CAM"]
    assert tuple(r.maps["Grad-CAM"].shape) == (64, 64)                      # the alternative works
    assert hooks.count_hooks(flatnet.model) == 0


def test_class_based_methods_on_a_bundle_without_classes_say_so(hed, canvases):
    x, _ = E.fit(canvases.images[:1], hed.input_size)
    r = E.explain_all(hed, x)
    assert set(r.reasons) == set(E.METHODS)
    for name, why in r.reasons.items():
        assert name in why and "no classes" in why and "gapnet" in why       # what to use instead
    assert r.target is None and r.probs is None
    with pytest.raises(NoClassesError):
        E.top_classes(hed, x)
    fig = E.show_explanations(x, r, show=False)                             # the reasons in the panels
    assert sum(bool(ax.texts) for ax in fig.axes) == len(E.METHODS)
    assert hooks.count_hooks(hed.model) == 0


def test_misuse_raises_instead_of_showing_seven_reasons(gapnet, canvases):
    with pytest.raises(ValueError, match="one display-space image"):
        E.explain_all(gapnet, canvases.images[:2])
    with pytest.raises(ValueError, match="out of range"):
        E.explain_all(gapnet, canvases.images[:1], target=10)


def test_a_layer_grad_cam_cannot_use_is_a_reason_for_those_panels_only(gapnet, canvases):
    r = E.explain_all(gapnet, canvases.images[:1], layer="fc")
    assert set(r.reasons) == {"Grad-CAM", "Guided Grad-CAM"}
    assert "conv layer" in r.reasons["Grad-CAM"]
    assert hooks.count_hooks(gapnet.model) == 0


def test_threads_are_restored(gapnet, canvases):
    n = torch.get_num_threads()
    E.explain_all(gapnet, canvases.images[:1], threads=1)
    assert torch.get_num_threads() == n


# --------------------------------------------------------------------------- class menu, layers, models
def test_top5_is_sorted_and_the_class_menu_lists_it_first(gapnet, canvases):
    x = canvases.images[5:6]
    top = E.top_classes(gapnet, x)
    probs = [p for _, _, p in top]
    assert len(top) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    assert top[0][0] == int(gapnet.predict(x).argmax()) and top[0][1] == gapnet.classes[top[0][0]]
    options = E.class_options(gapnet, x)
    assert [c for _, c in options[:5]] == [c for c, _, _ in top]
    assert sorted(c for _, c in options) == list(range(10))                 # then every other class once
    assert options[0][0].startswith("1. ") and f"p={probs[0]:.2f}" in options[0][0]


def test_layer_choices_are_the_conv_layers_and_the_default(gapnet):
    layers = E.layer_choices(gapnet)
    convs = models.list_layers(gapnet, torch.nn.Conv2d)
    assert set(layers) == set(convs) | {gapnet.layer("gradcam")}
    assert layers.index("features.0") < layers.index("features.24") < layers.index("features.26")


def test_imagenet_names_are_listed_only_when_their_weights_are_cached(monkeypatch, tmp_path):
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    names = E.loadable_models()
    assert names[0] == "gapnet" and {"flatnet", "vgg16-cam", "vgg16-hed"} <= set(names)
    assert not set(names) & set(models.IMAGENET_MODELS)
    url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / url.rsplit("/", 1)[-1]).write_bytes(b"")
    assert "resnet18" in E.loadable_models()


def test_an_uncached_imagenet_model_shows_lib_s_error_and_keeps_the_model(monkeypatch, tmp_path, gapnet, items):
    import urllib.error

    import torchvision.models._api as api

    def offline(*_a, **_k):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    ex = E.ClassExplorer(models=["gapnet", "resnet18"], images=items, bundles={"gapnet": gapnet})
    ex.w_model.value = "resnet18"
    assert "not in the torch hub cache" in ex.message.value and "gapnet" in ex.message.value
    assert ex.w_model.value == "gapnet" and ex.bundle is gapnet


# --------------------------------------------------------------------------- uploads
ODD = {
    "RGBA": lambda: _png((np.random.default_rng(0).random((40, 50, 4)) * 255).astype(np.uint8), "RGBA"),
    "grayscale": lambda: _png((np.random.default_rng(1).random((30, 70)) * 255).astype(np.uint8), "L"),
    "16-bit": lambda: _png((np.random.default_rng(2).random((48, 48)) * 65535).astype(np.uint16)),
    "huge": lambda: _png(np.zeros((100, 2100, 3), np.uint8)),              # downscaled to 2048 px
}


@pytest.mark.parametrize("kind", list(ODD))
def test_odd_uploads_go_through_like_any_image(kind, gapnet):
    item = E.load_upload(ODD[kind](), f"{kind}.png")
    assert item.image.dim() == 4 and item.image.shape[:2] == (1, 3)
    assert 0 <= item.image.min() and item.image.max() <= 1
    assert item.notes and item.box is None                                  # what was converted, said once
    x, _ = E.fit(item.image, 64)
    assert tuple(x.shape) == (1, 3, 64, 64)
    if kind == "RGBA":
        assert E.explain_all(gapnet, x).reasons == {}


def _over_the_pixel_limit() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (12000, 9000)).save(buf, format="PNG")                  # 108 million pixels in 13 kB
    return buf.getvalue()


BAD = {"not-an-image": (lambda: b"not an image", "not an image file"),
       "tiny": (lambda: _png(np.zeros((8, 8, 3), np.uint8)), "smaller than the minimum"),
       "truncated": (lambda: ODD["RGBA"]()[:200], "truncated or corrupt"),
       "over-the-pixel-limit": (_over_the_pixel_limit, "over the limit")}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_uploads_raise_image_load_error_naming_the_upload(kind):
    make, match = BAD[kind]
    with pytest.raises(ImageLoadError, match=match) as e:
        E.load_upload(make(), "mine.png")
    assert "mine.png" in str(e.value) and tempfile.gettempdir() not in str(e.value)


def test_fit_crops_the_centre_and_moves_the_box():
    x = torch.rand(1, 3, 100, 50)
    y, box = E.fit(x, 64, torch.tensor([10, 20, 40, 60]))
    assert tuple(y.shape) == (1, 3, 64, 64)
    # 50 -> 64 (x 1.28), 100 -> 128, then 32 rows cut at the top: (12.8, 25.6 - 32, 51.2, 76.8 - 32)
    assert torch.allclose(box, torch.tensor([12.8, 0.0, 51.2, 44.8]), atol=1e-4)
    same, b = E.fit(torch.rand(1, 3, 64, 64), 64, torch.tensor([1, 2, 3, 4]))
    assert same.shape[-1] == 64 and b.tolist() == [1, 2, 3, 4]


# --------------------------------------------------------------------------- the widget
def test_the_widget_computes_only_on_change_and_shows_its_time(monkeypatch, gapnet, items):
    calls = []
    real = E.explain_all
    monkeypatch.setattr(E, "explain_all", lambda *a, **k: calls.append(a[2:4]) or real(*a, **k))
    ex = E.ClassExplorer(models=["gapnet"], images=items, bundles={"gapnet": gapnet})
    assert len(calls) == 1 and "last update" in ex.status.value
    assert ex.w_layer.value == "features.26" and ex.w_class.value == ex.result.target
    shown, _ = E.fit(ex.items[ex.w_image.value].image, 64)
    assert [c for _, c in ex.w_class.options] == [c for _, c in E.class_options(gapnet, shown)]
    other = ex.w_class.options[1][1]
    ex.w_class.value = other
    assert len(calls) == 2 and ex.result.target == other
    ex.w_layer.value = "features.17"
    assert len(calls) == 3 and ex.result.layer == "features.17"
    ex.w_image.value = list(items)[4]                                        # new image: class back to its top-1
    assert len(calls) == 4 and ex.result.target == ex.w_class.options[0][1]
    ex.w_image.value = list(items)[0]
    ex.w_image.value = list(items)[4]                                        # seen before: from the cache
    assert len(calls) == 5 and "from the cache" in ex.status.value
    assert hooks.count_hooks(gapnet.model) == 0


def test_the_widget_switches_to_a_bundle_without_classes(gapnet, hed, flatnet, items):
    ex = E.ClassExplorer(models=["gapnet", "flatnet", "vgg16-hed"], images=items,
                         bundles={"gapnet": gapnet, "flatnet": flatnet, "vgg16-hed": hed})
    ex.w_model.value = "flatnet"
    assert list(ex.result.reasons) == ["CAM"] and ex.w_layer.value == flatnet.layer("gradcam")
    ex.w_model.value = "vgg16-hed"
    assert ex.w_class.disabled and set(ex.result.reasons) == set(E.METHODS)
    assert "no method applies" in ex.status.value and ex.message.value == ""
    ex.w_model.value = "gapnet"
    assert not ex.w_class.disabled and ex.result.reasons == {}


def test_the_widget_shows_upload_errors_and_takes_odd_uploads(gapnet, items):
    ex = E.ClassExplorer(models=["gapnet"], images=dict(items), bundles={"gapnet": gapnet})
    before = list(ex.w_image.options)
    ex._on_upload({"new": ({"name": "broken.jpg", "content": memoryview(b"\xff\xd8 truncated")},)})
    assert "broken.jpg" in ex.message.value and list(ex.w_image.options) == before
    ex._on_upload({"new": ({"name": "gray.png", "content": memoryview(ODD["grayscale"]())},)})
    assert ex.w_image.value == "upload: gray.png" and "grayscale" in ex.message.value
    assert ex.result.reasons == {} and ex.items["upload: gray.png"].box is None
    ex._on_upload({"new": {"rgba.png": {"content": ODD["RGBA"](), "metadata": {}}}})   # ipywidgets 7's format
    assert ex.w_image.value == "upload: rgba.png"
    fig = ex.figure(show=False)
    assert len(fig.axes) == 1 + len(E.METHODS)


def test_the_explorer_panel_ends_with_the_live_note(gapnet, items):
    from lib.widgets import LIVE_NOTE

    panel = E.explorer(models=["gapnet"], images=items, bundles={"gapnet": gapnet})
    assert LIVE_NOTE in panel.children[-1].value and isinstance(panel.explorer, E.ClassExplorer)


# --------------------------------------------------------------------------- time
def test_median_update_for_gapnet_is_under_a_second(gapnet, canvases):
    """An update (all seven methods + the figure drawn to PNG) on one thread. The CPU time of this
    process is what the code costs and is checked always; the wall-clock time also depends on what
    else runs on the machine, so it is checked only when the load average leaves a core free."""
    settings = [(i, t, layer) for i, t, layer in ((0, None, None), (1, 3, None), (2, None, "features.17"),
                                                  (3, 7, None), (4, None, "features.10"))]
    E.timed_update(gapnet, canvases.images[:1])                             # warm-up
    wall, cpu = [], []
    for i, t, layer in settings:
        c0 = time.process_time()
        seconds, r = E.timed_update(gapnet, canvases.images[i:i + 1], t, layer, box=canvases.boxes[i])
        wall.append(seconds)
        cpu.append(time.process_time() - c0)
        assert r.reasons == {} and (t is None or r.target == t)
    assert statistics.median(cpu) < 1.0, cpu
    if statistics.median(wall) >= 1.0 and os.getloadavg()[0] > (os.cpu_count() or 1) - 1:
        pytest.skip(f"wall-clock median {statistics.median(wall):.2f} s on a busy machine "
                    f"(load {os.getloadavg()[0]:.1f}); CPU time {statistics.median(cpu):.2f} s")
    assert statistics.median(wall) < 1.0, wall
