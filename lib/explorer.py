"""The class explorer: every Part II method side by side, for one image, model, layer and class.

Two halves, so that the computation can be called (and tested) without widgets:

- ``explain_all(bundle, x, target, layer)`` runs saliency, SmoothGrad, guided backpropagation,
  occlusion, CAM, Grad-CAM and Guided Grad-CAM on one image with ``lib.attribution`` and returns an
  ``Explanation``: for each method its raw map, or, when the method does not apply (CAM on a
  network without a GAP head, any class-based method on a bundle without classes), the message of
  the error ``lib`` raised, which says why and what to use instead; plus the time each method took.
- ``explorer()`` builds the ipywidgets panel: image (test canvases, sample photos, or an uploaded
  file), model bundle, layer and class (the top-5 with their probabilities first) menus, and the
  figure of ``show_explanations``. It computes only when a control changes, keeps loaded bundles
  and recent results, and shows the time its last update took.

Uploaded files go through ``lib.images.load`` like every other image (grayscale, RGBA, 16-bit,
huge...: converted with a note; unreadable, tiny or too large: a clear message, never a traceback).
Every image is fitted to the bundle's input size: short side resized, then centre-cropped square.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
import textwrap
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from . import images as I
from . import models as M
from . import plot
from .device import torch_threads   # one image at 64 px: one thread (see its docstring)
from .errors import CourseError, ImageConversionWarning, ImageLoadError

__all__ = ["METHODS", "GRADIENT_METHODS", "Settings", "default_settings", "Explanation", "explain_all",
           "top_classes", "class_options", "layer_choices", "loadable_models", "load_upload", "fit",
           "default_images", "Item", "show_explanations", "timed_update", "torch_threads", "ClassExplorer",
           "explorer"]

#: The methods shown, in panel order.
METHODS = ("saliency", "SmoothGrad", "guided backprop", "occlusion", "CAM", "Grad-CAM", "Guided Grad-CAM")
#: Methods whose result is a signed gradient image (3 x H x W) rather than an H x W map.
GRADIENT_METHODS = ("guided backprop", "Guided Grad-CAM")


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """The knobs of the two costly methods.

    ``samples``/``noise``: SmoothGrad's noisy copies and their std (fraction of the value range);
    ``window``/``stride``: occlusion's square window and step in pixels (None: a quarter of the
    image side, and half the window); ``fill``: what an occluded patch shows.
    """
    samples: int = 8
    noise: float = 0.15
    window: int | None = None
    stride: int | None = None
    fill: str | float = "gray"

    def occlusion(self, side: int) -> tuple[int, int]:
        """(window, stride) for an image of ``side`` pixels."""
        window = self.window or max(1, side // 4)
        return window, self.stride or max(1, window // 2)


def default_settings(bundle) -> Settings:
    """Settings that keep an update under a second on a 2-core CPU (measured in notebooks/explorer.ipynb).

    At 64 px (gapnet, flatnet): 8 SmoothGrad samples, and a 16-pixel occlusion window moved 12 pixels
    at a time (5 x 5 = 25 positions; chapter 4's 16/8 needs 49). Larger inputs (vgg16-cam's 112 px,
    ImageNet's 224 px): 4 samples and a window of a quarter of the side moved by its own size (16 positions).
    """
    side = int(bundle.input_size)
    if side <= 64:
        return Settings(samples=8, noise=0.15, window=side // 4, stride=(3 * side) // 16)
    return Settings(samples=4, noise=0.15, window=side // 4, stride=side // 4)


# --------------------------------------------------------------------------- the computation
@dataclass
class Explanation:
    """What ``explain_all`` found for one image.

    ``maps[name]``: for each of ``METHODS``, a raw tensor on the CPU (H x W; 3 x H x W signed
    gradients for ``GRADIENT_METHODS``), or a ``str``: why the method does not apply here.
    ``seconds[name]``: the time each method took; ``total``: the whole call.
    """
    maps: dict[str, torch.Tensor | str]
    seconds: dict[str, float]
    total: float
    target: int | None
    layer: str
    cam_layer: str
    settings: Settings
    probs: torch.Tensor | None = None          # softmax over the classes (None: no classes)
    model: str = ""

    def applies(self, name: str) -> bool:
        return not isinstance(self.maps[name], str)

    @property
    def reasons(self) -> dict[str, str]:
        """{method: why it does not apply} for the methods that do not."""
        return {k: v for k, v in self.maps.items() if isinstance(v, str)}


def _one_image(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"explain_all explains one display-space image, 1 x 3 x H x W (or 3 x H x W); "
                         f"got shape {tuple(x.shape)}. Load one with lib.images.load(...).")
    return x.detach().cpu().float()


def explain_all(bundle, x: torch.Tensor, target: int | None = None, layer: str | None = None,
                settings: Settings | None = None, threads: int | None = 1) -> Explanation:
    """Every method of ``METHODS`` on one image ``x`` (1 x 3 x H x W in [0, 1]) for class ``target``
    (default: the predicted class), Grad-CAM and Guided Grad-CAM at ``layer`` (default: the bundle's
    Grad-CAM layer; CAM always uses the layer its GAP head reads, ``bundle.layer('cam')``).

    A method that does not apply gets the message of the ``lib`` error it raised instead of a map
    (``NoClassesError``, ``NotGapModelError``, ``ReLUPatchError``, a Grad-CAM layer that is not a
    conv layer...). ``settings``: SmoothGrad and occlusion (default: ``default_settings(bundle)``);
    ``threads``: torch threads meanwhile (see ``torch_threads``). Maps are raw (not normalised).
    """
    from . import attribution as A
    from .attribution.targets import resolve_targets

    x = _one_image(x)
    settings = settings or default_settings(bundle)
    layer = layer or (bundle.layer("gradcam") if bundle.layers else None)
    cam_layer = bundle.layer("cam") if bundle.layers else ""
    maps: dict[str, torch.Tensor | str] = {}
    seconds: dict[str, float] = {}
    t_start = time.perf_counter()
    with torch_threads(threads):
        probs = None
        if bundle.classes is not None:
            probs = bundle.predict(x)[0]
            target = int(resolve_targets(target, probs[None])[0])   # the predicted class, or out of range: raise
        window, stride = settings.occlusion(min(x.shape[-2:]))
        calls: dict[str, Callable[[], torch.Tensor]] = {
            "saliency": lambda: A.saliency(bundle, x, target)[0],
            "SmoothGrad": lambda: A.smoothgrad(bundle, x, target, noise=settings.noise, samples=settings.samples,
                                               progress=False)[0],
            "guided backprop": lambda: A.guided_backprop(bundle, x, target=target)[0],
            "occlusion": lambda: A.occlusion(bundle, x, target, window=window, stride=stride, fill=settings.fill)[0],
            "CAM": lambda: A.cam(bundle, x, target, layer=cam_layer)[0],
            "Grad-CAM": lambda: A.grad_cam(bundle, x, target, layer=layer)[0],
            "Guided Grad-CAM": lambda: A.guided_grad_cam(bundle, x, target, layer=layer)[0],
        }
        for name, call in calls.items():
            t0 = time.perf_counter()
            try:
                if bundle.classes is None:        # every method here explains a class score
                    bundle.require_classes(name)
                maps[name] = call()
            except (CourseError, ValueError) as e:   # lib's errors say why and what to do instead
                maps[name] = str(e)
            seconds[name] = time.perf_counter() - t0
    return Explanation(maps=maps, seconds=seconds, total=time.perf_counter() - t_start, target=target,
                       layer=str(layer), cam_layer=cam_layer, settings=settings, probs=probs, model=bundle.name)


def top_classes(bundle, x: torch.Tensor, k: int = 5) -> list[tuple[int, str, float]]:
    """The ``k`` most probable classes of one image: [(class index, name, probability)], most probable
    first. Raises ``NoClassesError`` for a bundle without classes."""
    names = bundle.require_classes("top_classes")
    return _top(names, bundle.predict(_one_image(x))[0], k)


def _top(names, p: torch.Tensor, k: int) -> list[tuple[int, str, float]]:
    values, idx = p.topk(min(k, len(names)))
    return [(int(i), names[int(i)], float(v)) for v, i in zip(values, idx)]


def class_options(bundle, x: torch.Tensor, k: int = 5) -> list[tuple[str, int]]:
    """(label, class index) for a class menu: the top-``k`` with their probabilities, then every
    other class in class order (each class once). Raises ``NoClassesError`` without classes."""
    names = bundle.require_classes("class_options")
    p = bundle.predict(_one_image(x))[0]                       # one forward pass for both lists
    top = [i for i, _, _ in _top(names, p, k)]
    first = [(f"{r + 1}. {names[i]} (p={p[i]:.2f})", i) for r, i in enumerate(top)]
    rest = [(f"{names[i]} (p={p[i]:.2f})", i) for i in range(len(names)) if i not in top]
    return first + rest


def layer_choices(bundle) -> list[str]:
    """The bundle's conv layers (``list_layers(bundle, nn.Conv2d)``) and its default Grad-CAM layer
    (often the ReLU after the last conv), in the network's order."""
    convs = set(M.list_layers(bundle, nn.Conv2d))
    default = bundle.layer("gradcam") if bundle.layers else None
    return [n for n in M.list_layers(bundle) if n in convs or n == default]


def loadable_models() -> list[str]:
    """The bundles of ``lib.models.available()`` that load here: the course's own (their weights are
    committed) and the torchvision ImageNet networks whose weights are already in the torch hub
    cache. Offline, the others would only say that their weights cannot be downloaded."""
    return [n for n in M.available() if n not in M.IMAGENET_MODELS or M.imagenet_weights_file(n).exists()]


# --------------------------------------------------------------------------- images
@dataclass
class Item:
    """An image on the menu: 1 x 3 x H x W in [0, 1], its ground-truth box (x0, y0, x1, y1) and
    class when it is a test canvas, and notes on how it was converted."""
    image: torch.Tensor
    box: torch.Tensor | None = None
    label: int | None = None
    notes: list[str] = field(default_factory=list)


def load_upload(content: bytes, name: str = "upload") -> Item:
    """An uploaded file (its bytes) read by ``lib.images.load``, as any image file is.

    Conversions (grayscale, RGBA, 16-bit, palette, CMYK, huge) are kept as ``notes``; a file that is
    not a usable image raises ``ImageLoadError`` with a message naming the upload, not a temp file.
    """
    name = Path(str(name)).name or "upload"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(bytes(content))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ImageConversionWarning)
            try:
                x = I.load(path)
            except ImageLoadError as e:
                msg = str(e).replace(str(path), name)
                raise ImageLoadError(msg if name in msg else f"{name}: {msg}") from None
    notes = [str(w.message) for w in caught if issubclass(w.category, ImageConversionWarning)]
    return Item(x, notes=notes)


def fit(x: torch.Tensor, side: int, box: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Image ``x`` (1 x 3 x H x W) resized so its short side is ``side`` and centre-cropped square
    (``lib.images.resize`` and torchvision's ``center_crop``), and ``box`` moved with it."""
    import torchvision.transforms.functional as TF

    h, w = x.shape[-2:]
    if (h, w) == (side, side):
        return x, box
    y = I.resize(x, side)
    hh, ww = y.shape[-2:]
    top, left = int(round((hh - side) / 2.0)), int(round((ww - side) / 2.0))
    y = TF.center_crop(y, [side, side])
    if box is not None:
        s = torch.tensor([ww / w, hh / h, ww / w, hh / h])
        box = (box.float() * s - torch.tensor([left, top, left, top])).clamp(0, side)
    return y, box


def default_images(canvases=None, photos: Sequence[str] = ("chelsea", "coffee", "astronaut")) -> dict[str, Item]:
    """The image menu: the first test canvas of each class, in class order (with its box and class),
    then sample photos (``lib.data.sample_image``)."""
    from . import data

    canvases = canvases if canvases is not None else data.load_canvases("test", n=200)
    items: dict[str, Item] = {}
    labels = canvases.labels.tolist()
    for c, name in enumerate(data.CLASSES):                 # in class order
        if c in labels:
            i = labels.index(c)
            items[f"canvas {i} ({name})"] = Item(canvases.images[i:i + 1], canvases.boxes[i], c)
    for name in photos:
        items[f"photo: {name}"] = Item(data.sample_image(name))
    return items


# --------------------------------------------------------------------------- the figure
def show_explanations(x: torch.Tensor, result: Explanation, box: torch.Tensor | None = None,
                      class_name: str | None = None, ncols: int = 4, size: float = 2.0,
                      suptitle: str | None = None, show: bool = True):
    """The input and every method of ``result`` side by side (``lib.plot.show_images``): maps blended
    over the image (``lib.images.overlay``, each scaled to its own range), gradients as images
    (``attribution.gradient_image``), and for a method that does not apply, its reason in the panel.
    ``box``: the ground-truth box, drawn on the input and on every map (``lib.plot.draw_box``)."""
    import matplotlib.pyplot as plt

    from .attribution import gradient_image

    x = _one_image(x)
    pics, titles = [x[0]], ["input" + (f"\n{class_name}" if class_name else "")]
    s = result.settings
    window, stride = s.occlusion(min(x.shape[-2:]))
    detail = {"SmoothGrad": f"{s.samples} samples, noise {s.noise:g}", "occlusion": f"window {window}, stride {stride}",
              "CAM": result.cam_layer, "Grad-CAM": result.layer, "Guided Grad-CAM": result.layer}
    for name in METHODS:
        m = result.maps[name]
        if isinstance(m, str):
            pics.append(torch.full_like(x[0], 0.94))
        elif name in GRADIENT_METHODS:
            pics.append(gradient_image(m[None])[0])
        else:
            pics.append(I.overlay(x, m[None])[0])
        titles.append(name + (f"\n{detail[name]}" if name in detail and not isinstance(m, str) else ""))
    fig = plot.show_images(torch.stack(pics), titles, ncols=ncols, size=size, suptitle=suptitle, show=False)
    width = max(16, int(size * 13))
    for ax, name in zip(fig.axes[1:], METHODS):
        m = result.maps[name]
        if isinstance(m, str):
            ax.text(0.5, 0.5, textwrap.fill(m, width), ha="center", va="center", fontsize=5.5, transform=ax.transAxes)
        elif box is not None:
            plot.draw_box(ax, box)
    if box is not None:
        plot.draw_box(fig.axes[0], box)
    if show:
        plt.show()
        plt.close(fig)
        return None
    return fig


def timed_update(bundle, x: torch.Tensor, target: int | None = None, layer: str | None = None,
                 box: torch.Tensor | None = None, settings: Settings | None = None,
                 threads: int | None = 1) -> tuple[float, Explanation]:
    """One explorer update without the widget, timed: ``explain_all`` and the figure of
    ``show_explanations`` drawn to PNG (what the notebook's inline backend does with it).
    Returns (wall-clock seconds, the ``Explanation``)."""
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    r = explain_all(bundle, x, target, layer, settings, threads)
    fig = show_explanations(x, r, box=box, show=False)
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)
    return time.perf_counter() - t0, r


# --------------------------------------------------------------------------- the widget
def _uploaded_files(value) -> list[tuple[str, bytes]]:
    """(name, bytes) of a FileUpload's value: ipywidgets 8 (a tuple of dicts) or 7 (a dict by name)."""
    if isinstance(value, dict):
        return [(name, bytes(v["content"])) for name, v in value.items()]
    return [(v["name"], bytes(v["content"])) for v in value or ()]


class ClassExplorer:
    """The widget: ``panel`` is the ipywidgets box to display (``explorer()`` returns it).

    ``models``: bundle names on the menu (default ``loadable_models()``); ``bundles``: already
    loaded bundles by name (kept, like every bundle loaded here); ``images``: {label: Item}
    (default ``default_images()``); ``model``/``image``: what is shown first; ``settings``: per
    bundle name (default ``default_settings``); ``threads``: see ``torch_threads``.
    """

    def __init__(self, models: Sequence[str] | None = None, images: dict[str, Item] | None = None,
                 model: str = "gapnet", image: str | None = None, bundles: dict | None = None,
                 settings: dict[str, Settings] | None = None, threads: int | None = 1, size: float = 2.0,
                 cache_size: int = 32):
        import ipywidgets as W

        from .widgets import _panel

        self.bundles = dict(bundles or {})
        self.items = dict(images if images is not None else default_images())
        self.settings = dict(settings or {})
        self.threads, self.size = threads, size
        self.results: OrderedDict = OrderedDict()
        self.cache_size = cache_size
        self.seconds: float | None = None     # the last update's wall-clock time
        self.result: Explanation | None = None
        self._quiet = False
        names = list(models) if models is not None else loadable_models()
        model = model if model in names else names[0]
        if image is not None and image not in self.items:
            raise ValueError(f"no image {image!r} on the menu; choose one of {', '.join(map(repr, self.items))}")
        self.w_image = W.Dropdown(options=list(self.items), value=image or next(iter(self.items)), description="image")
        self.w_upload = W.FileUpload(accept="image/*", multiple=False, description="upload")
        self.w_model = W.Dropdown(options=names, value=model, description="model")
        self.w_layer = W.Dropdown(options=[], description="layer")
        self.w_class = W.Dropdown(options=[], description="class")
        self.status = W.HTML()
        self.message = W.HTML()
        self.out = W.Output()
        self.bundle = None
        self._use_model(model)
        self.w_image.observe(self._on_image, names="value")
        self.w_model.observe(self._on_model, names="value")
        self.w_layer.observe(self._on_other, names="value")
        self.w_class.observe(self._on_other, names="value")
        self.w_upload.observe(self._on_upload, names="value")
        self.panel = _panel([W.HBox([self.w_image, self.w_upload]), W.HBox([self.w_model, self.w_layer, self.w_class]),
                             self.message, self.status, self.out])
        self.update()

    # ---- state
    @contextlib.contextmanager
    def _hold(self):
        """Change several controls without an update for each."""
        quiet, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = quiet

    def load(self, name: str):
        """The bundle ``name``, loaded once (``lib.models.load``, on its best device) and kept."""
        if name not in self.bundles:
            self.bundles[name] = M.load(name)
        return self.bundles[name]

    def _use_model(self, name: str) -> None:
        self.bundle = self.load(name)
        with self._hold():
            choices = layer_choices(self.bundle)
            self.w_layer.options = choices
            default = self.bundle.layer("gradcam") if self.bundle.layers else None
            self.w_layer.value = default if default in choices else (choices[-1] if choices else None)
            self._set_classes()

    def _current(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        item = self.items[self.w_image.value]
        return fit(item.image, int(self.bundle.input_size), item.box)

    def _set_classes(self) -> None:
        with self._hold():
            if self.bundle.classes is None:
                self.w_class.options = [("(no classes)", -1)]
                self.w_class.value, self.w_class.disabled = -1, True
                return
            x, _ = self._current()
            with torch_threads(self.threads):
                opts = class_options(self.bundle, x)
            self.w_class.options = opts
            self.w_class.value, self.w_class.disabled = opts[0][1], False

    # ---- events
    def _on_image(self, _change) -> None:
        if self._quiet:
            return
        item = self.items[self.w_image.value]
        self.message.value = ("<small>" + "; ".join(item.notes) + "</small>") if item.notes else ""
        self._safe(self._set_classes, self.update)

    def _on_model(self, change) -> None:
        if self._quiet:
            return
        try:
            self._use_model(change["new"])
        except CourseError as e:                       # e.g. ImageNet weights not cached, offline
            self._error(f"{change['new']}: {e}")
            with self._hold():
                self.w_model.value = change["old"]
            return
        self.message.value = ""
        self._safe(self.update)

    def _on_other(self, _change) -> None:
        if not self._quiet:
            self._safe(self.update)

    def _safe(self, *steps) -> None:
        """Run ``steps``; an error of lib's (or a ValueError) is shown in the panel, not as a traceback."""
        try:
            for step in steps:
                step()
        except (CourseError, ValueError) as e:
            self._error(str(e))

    def _on_upload(self, change) -> None:
        files = _uploaded_files(change["new"])
        if not files:
            return
        name, content = files[-1]
        with self._hold():
            self.w_upload.value = ()          # so that the same file can be uploaded again
        try:
            item = load_upload(content, name)
        except ImageLoadError as e:
            self._error(f"upload: {e}")
            return
        label = f"upload: {Path(name).name}"
        self.items[label] = item
        self.results = OrderedDict((k, v) for k, v in self.results.items() if k[0] != label)
        with self._hold():
            self.w_image.options = list(self.items)
            self.w_image.value = label
        self._on_image(None)

    def _error(self, text: str) -> None:
        import html

        self.message.value = f"<span style='color:#b00020'>{html.escape(text)}</span>"

    # ---- compute and draw
    def select(self, image: str | None = None, model: str | None = None, layer: str | None = None,
               target: int | None = None) -> float | None:
        """Set controls from code, as a reader would, with one update at the end; returns its time.
        ``layer``/``target`` default to the bundle's layer and the predicted class when the model or
        image changes, and stay as they are otherwise."""
        with self._hold():
            if model is not None and model != self.w_model.value:
                self.w_model.value = model
                self._use_model(model)
            if image is not None and image != self.w_image.value:
                self.w_image.value = image
                self._set_classes()
            if layer is not None:
                self.w_layer.value = layer
            if target is not None:
                self.w_class.value = int(target)
        self.update()
        return self.seconds

    def figure(self, show: bool = True):
        """The figure of the setting shown now (``show_explanations``), outside the widget: e.g. a
        static copy under it for a page without a kernel. ``show=False`` returns it."""
        x, box = self._current()
        r, names = self.result, self.bundle.classes
        item = self.items[self.w_image.value]
        cls = None if names is None else f"{names[r.target]} (p={float(r.probs[r.target]):.2f})"
        truth = "" if item.label is None or names is None else f", true class {names[item.label]}"
        return show_explanations(x, r, box=box, class_name=cls, size=self.size, show=show,
                                 suptitle=f"{self.bundle.name}: {self.w_image.value}{truth}")

    def update(self) -> None:
        """Compute the current setting (or take it from the cache) and draw it; time both."""
        t0 = time.perf_counter()
        x, box = self._current()
        target = None if self.bundle.classes is None else self.w_class.value
        key = (self.w_image.value, self.bundle.name, self.w_layer.value, target)
        cached = key in self.results
        if cached:
            self.results.move_to_end(key)
        else:
            settings = self.settings.get(self.bundle.name) or default_settings(self.bundle)
            self.results[key] = explain_all(self.bundle, x, target, self.w_layer.value, settings, self.threads)
            while len(self.results) > self.cache_size:
                self.results.popitem(last=False)
        r = self.results[key]
        self.result = r
        self.out.clear_output(wait=True)
        with self.out:
            self.figure()
        self.seconds = time.perf_counter() - t0
        parts = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in r.seconds.items() if r.applies(k))
        if not parts:
            how = "no method applies here (the panels say why)"
        else:
            how = "maps from the cache" if cached else f"maps computed in {r.total:.2f} s ({parts})"
        self.status.value = f"<small>last update: {self.seconds:.2f} s; {how}</small>"


def explorer(**kwargs):
    """The class explorer panel (display it as a cell's last expression); ``kwargs`` go to
    ``ClassExplorer`` (``models``, ``images``, ``model``, ``image``, ``bundles``, ``settings``,
    ``threads``, ``size``). Its ``ClassExplorer`` is ``panel.explorer``."""
    ex = ClassExplorer(**kwargs)
    ex.panel.explorer = ex
    return ex.panel
