"""Class activation maps (Zhou et al. 2016) for networks whose head is GAP -> linear."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CourseError
from .targets import resolve_targets
from ..hooks import capture, frozen

__all__ = ["cam", "NotGapModelError", "gap_head"]


class NotGapModelError(CourseError, TypeError):
    """CAM needs global average pooling followed by one linear layer."""


def gap_head(model: nn.Module) -> nn.Linear:
    """The linear layer of a model whose head is global average pooling -> linear.

    Recognised: a model with ``pool`` (AdaptiveAvgPool2d(1)) and ``fc`` (Linear) attributes, as
    ``GapNet`` and torchvision's ResNets/GoogLeNet have.
    """
    pool, fc = getattr(model, "pool", None) or getattr(model, "avgpool", None), getattr(model, "fc", None)
    gap = isinstance(pool, nn.AdaptiveAvgPool2d) and pool.output_size in (1, (1, 1))
    if not (gap and isinstance(fc, nn.Linear)):
        raise NotGapModelError(
            f"CAM needs a head of global average pooling followed by one linear layer; "
            f"{type(model).__name__} has none. Use Grad-CAM, which generalises CAM to any architecture, "
            f"or retrofit a GAP head (chapter 7).")
    return fc


@torch.no_grad()
def _gap_features(bundle, x: torch.Tensor, layer: str | None):
    """(the GAP head's linear layer, the features f_k(x, y) it weights, the logits) for images ``x``."""
    bundle.require_classes("CAM")
    fc = gap_head(bundle.model)
    layer = layer or bundle.layer("cam")
    with frozen(bundle.model), capture(bundle.model, layer, detach=True) as rec:
        logits = bundle(x)
    return fc, rec[layer], logits


def cam(bundle, x: torch.Tensor, target=None, layer: str | None = None, upsample: bool = True) -> torch.Tensor:
    """CAM: M_c(x, y) = sum_k w_k^c f_k(x, y), with f the last conv features and w the linear weights.

    ``target``: class index per image (int, list or tensor; default: the predicted class).
    ``layer``: the feature layer (default: the bundle's 'cam' layer, the input of GAP).
    Returns N x H x W maps (bilinearly upsampled to the input size unless ``upsample=False``).
    The class score equals the spatial mean of the (not upsampled) map plus the bias.
    """
    fc, f, logits = _gap_features(bundle, x, layer)
    with torch.no_grad():
        maps = torch.einsum("nk,nkhw->nhw", fc.weight[resolve_targets(target, logits)], f)
        if upsample:
            maps = F.interpolate(maps[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return maps.cpu()


__all__ += ["cam_all"]


def cam_all(bundle, x: torch.Tensor, layer: str | None = None) -> torch.Tensor:
    """The CAM of every class from one forward pass: N x C x h x w at the layer's resolution (not upsampled).

    ``cam_all(bundle, x)[:, c]`` equals ``cam(bundle, x, target=c, upsample=False)``; upsample for
    display with ``lib.images.resize`` or let ``lib.images.overlay`` do it.
    """
    fc, f, _ = _gap_features(bundle, x, layer)
    with torch.no_grad():
        maps = torch.einsum("ck,nkhw->nchw", fc.weight, f)
    return maps.cpu()
