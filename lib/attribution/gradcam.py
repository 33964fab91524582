"""Grad-CAM, counterfactual Grad-CAM and Guided Grad-CAM (Selvaraju et al. 2017).

For a class c with score y^c (before the softmax) and the activations A^k (k = 1..K channels) of a
conv layer,

    alpha_k^c = 1/Z sum_ij dy^c / dA^k_ij           (global-average-pooled gradients)
    L^c       = ReLU( sum_k alpha_k^c A^k )          (the Grad-CAM map, at the layer's resolution)

then L^c is upsampled bilinearly to the input. A counterfactual explanation uses -dy^c/dA: the
regions whose removal would make the network *more* confident in c. Guided Grad-CAM multiplies
guided backpropagation (pixel detail, not class-discriminative) by the upsampled Grad-CAM
(coarse, class-discriminative).

A is captured with a forward hook (``lib.hooks.capture(..., leaf=True)``) and dy/dA comes from
``torch.autograd.grad`` on the captured tensor, parameters frozen: no module backward hook (they
break on in-place ReLUs). The image does not require a gradient; the hook makes A a leaf that does,
so autograd records nothing below A (no activations kept there) and the backward pass stops at A:
the cost is about one forward pass. The hook hands the rest of the network a copy of A, so A stays
exactly the layer's output even when the next module is a ``ReLU(inplace=True)`` or an in-place
addition.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import warn
from ..hooks import capture, frozen, resolve_layer
from .guided import guided_backprop
from .targets import check_images, per_image, resolve_targets

__all__ = ["grad_cam", "grad_cam_layers", "guided_grad_cam"]


def grad_cam_layers(bundle, x: torch.Tensor, layers: Sequence, target=None, counterfactual: bool = False,
                    upsample: bool = True, relu: bool = True, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Grad-CAM at several layers from one forward and one (partial) backward pass: {layer name: N x H x W}.

    Same arguments as ``grad_cam``; the maps equal separate ``grad_cam`` calls, layer by layer.
    """
    bundle.require_classes("Grad-CAM")
    check_images(x)
    model, n = bundle.model, x.shape[0]
    names = list(dict.fromkeys(resolve_layer(model, layer)[0] for layer in layers))   # unknown: close matches
    target = per_image(target, n, "targets")
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    with torch.enable_grad(), frozen(model), capture(model, names, leaf=True) as rec:
        for b in range(0, n, batch_size):
            xin = x[b:b + batch_size].detach().to(bundle.device)      # no graph below A: the hook starts it
            logits = bundle(xin)
            t = resolve_targets(None if target is None else target[b:b + batch_size], logits)
            score = logits.gather(1, t[:, None]).sum()                # images are independent: sum = batch
            acts = [rec[name] for name in names]
            grads = torch.autograd.grad(score, acts, allow_unused=True)   # dy^c/dA, and no further down
            for name, a, g in zip(names, acts, grads):
                parts[name].append(_map(bundle, name, a, g, counterfactual, relu, upsample, x.shape[-2:]))
    return {name: torch.cat(maps) for name, maps in parts.items()}


def _map(bundle, name: str, a: torch.Tensor, g: torch.Tensor | None, counterfactual: bool, relu: bool,
         upsample: bool, size) -> torch.Tensor:
    """ReLU(sum_k alpha_k^c A^k) from the activations A and their gradient, on the CPU."""
    if a.dim() != 4:
        raise ValueError(f"Grad-CAM needs a conv layer (output N x K x h x w); {name!r} gives "
                         f"{tuple(a.shape)}. Pick a conv, ReLU or pooling layer, e.g. {bundle.layer('gradcam')!r}.")
    if g is None:
        raise ValueError(f"the class score does not depend on {name!r} (a side branch?): pick a layer on "
                         f"the path to the classifier, e.g. {bundle.layer('gradcam')!r}")
    if a.shape[-2:] == (1, 1):
        warn(f"{name!r} is 1x1 for this input, so its Grad-CAM map is one number per image and the "
             f"upsampled map is constant: pick an earlier layer or a larger input")
    alpha = g.mean((2, 3))                                            # alpha_k^c = 1/Z sum_ij dy^c/dA^k_ij
    if counterfactual:
        alpha = -alpha
    m = torch.einsum("nk,nkhw->nhw", alpha, a.detach())               # sum_k alpha_k^c A^k
    if relu:
        m = m.clamp(min=0)
    if upsample:
        m = F.interpolate(m[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    return m.detach().cpu()


def grad_cam(bundle, x: torch.Tensor, target=None, layer=None, counterfactual: bool = False,
             upsample: bool = True, relu: bool = True, batch_size: int = 64) -> torch.Tensor:
    """Grad-CAM maps, N x H x W on the CPU (raw: not normalised).

    ``target``: class index per image (int, list or tensor; default the predicted class).
    ``layer``: any layer with an N x K x h x w output, by ``named_modules()`` name or as the module
    itself (default: the bundle's 'gradcam' layer).
    ``counterfactual=True`` negates the gradients (regions that argue *against* the class).
    ``upsample=False`` keeps the layer's resolution; ``relu=False`` keeps the negative part.
    One forward and one backward pass (from the score down to the layer only) per ``batch_size`` images.
    """
    maps = grad_cam_layers(bundle, x, [bundle.layer("gradcam") if layer is None else layer], target=target,
                           counterfactual=counterfactual, upsample=upsample, relu=relu, batch_size=batch_size)
    return next(iter(maps.values()))                                  # the one layer's maps


def guided_grad_cam(bundle, x: torch.Tensor, target=None, layer=None, batch_size: int = 64) -> torch.Tensor:
    """Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM, N x 3 x H x W on the CPU.

    Both use the same class (default: the predicted one); display it with ``gradient_image``.
    """
    check_images(x)
    if target is None:
        with torch.no_grad(), frozen(bundle.model):
            target = torch.cat([bundle(x[b:b + batch_size]).argmax(1).cpu() for b in range(0, len(x), batch_size)])
    cam_maps = grad_cam(bundle, x, target=target, layer=layer, batch_size=batch_size)
    return guided_backprop(bundle, x, target=target, rule="guided", batch_size=batch_size) * cam_maps[:, None]
