"""Texture synthesis with Gram matrices (Gatys, Ecker & Bethge 2015).

A texture is described by the correlations between the channels of a layer, summed over all
positions, so *where* things are is thrown away and only *what co-occurs* is kept:

    G^l = F^l (F^l)^T / (H_l W_l)          F^l: C_l x (H_l W_l), the layer's feature maps

A new image x with the texture of s minimises  sum_l w_l ||G^l(x) - G^l(s)||^2 / mean(G^l(s)^2):
each layer's error is relative to the size of its own Gram entries, otherwise the deep layers,
whose entries are orders of magnitude smaller or larger, would count for nothing or everything.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from .core import Objective, Optimized, PixelImage, activations, optimize, total_variation

__all__ = ["TEXTURE_LAYERS", "LAYER_SETS", "gram", "gram_targets", "texture_loss", "texture_objective",
           "synthesize_texture"]

#: The layers of Gatys et al.'s texture model, in the VGG bundles' paper names (ReLU outputs).
TEXTURE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
#: Nested layer sets, shallowest first: what "up to conv k" captures.
LAYER_SETS = {f"up to conv{k}": TEXTURE_LAYERS[:k] for k in range(1, 6)}


def gram(features: torch.Tensor) -> torch.Tensor:
    """G = F F^T / (H W) for features N x C x H x W; returns N x C x C."""
    n, c, h, w = features.shape
    with torch.autocast(features.device.type, enabled=False):   # in float32 even under bf16 autocast
        f = features.float().reshape(n, c, h * w)
        return f @ f.transpose(1, 2) / (h * w)


@torch.no_grad()
def gram_targets(bundle, images: torch.Tensor | Sequence[torch.Tensor], layers: Sequence[str] = TEXTURE_LAYERS,
                 weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """Gram matrices (1 x C x C per layer) of a style image, or the weighted mix of several style
    images' Gram matrices (``weights`` summing to 1: a blend of styles). Images may differ in size."""
    if isinstance(images, torch.Tensor):
        images = [images]
    weights = [1.0 / len(images)] * len(images) if weights is None else list(weights)
    if len(weights) != len(images):
        raise ValueError(f"{len(images)} style images but {len(weights)} weights")
    out: dict[str, torch.Tensor] = {}
    for img, wt in zip(images, weights):
        feats = activations(bundle, layers, img[:1] if img.dim() == 4 else img[None])
        for layer in layers:
            out[layer] = out.get(layer, 0) + wt * gram(feats[layer])
    return out


def texture_loss(feats: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
                 layer_weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """sum_l w_l mean((G^l(x) - G^l(s))^2) / mean(G^l(s)^2), per image (N,). A target is 1 x C x C
    (one style for all images) or N x C x C (each image its own style)."""
    total = 0
    for layer, target in targets.items():
        g = gram(feats[layer])
        w = 1.0 if layer_weights is None else layer_weights.get(layer, 0.0)
        total = total + w * (g - target).pow(2).flatten(1).mean(1) / target.pow(2).flatten(1).mean(1)
    return total


def texture_objective(targets: Mapping[str, torch.Tensor],
                      layer_weights: Mapping[str, float] | None = None) -> Objective:
    """Minus ``texture_loss`` (objectives are maximised) with one forward pass for all layers."""
    layers = list(targets)
    return Objective(lambda b, x: -texture_loss(activations(b, layers, x), targets, layer_weights),
                     f"-texture loss ({', '.join(layers)})")


def synthesize_texture(bundle, style: torch.Tensor, layers: Sequence[str] = TEXTURE_LAYERS,
                       size: int | tuple[int, int] = 128, steps: int = 200, init_sd: float = 0.01,
                       tv: float = 0.0, seed: int = 0, progress: bool = True) -> Optimized:
    """Gatys et al.'s texture synthesis: L-BFGS from noise on the Gram loss at ``layers``.

    ``steps`` counts function evaluations. The start is gray plus Gaussian noise of standard
    deviation ``init_sd``: faint, because the Gram loss barely sees pixel-level noise, so a strong
    start (0.1) is still visible as grain after a hundred evaluations. ``tv`` > 0 adds ``tv`` times
    the total variation as a penalty (not in the paper). Returns an ``Optimized`` record whose
    ``start``/``end`` are minus the texture loss alone (so ``-record.end`` is the loss reached).
    """
    targets = gram_targets(bundle, style.to(bundle.device), layers)
    g = torch.Generator().manual_seed(seed)
    param = PixelImage.random(1, size, sd=init_sd, generator=g, device=bundle.device)
    penalty = (lambda x: tv * total_variation(x)) if tv else None
    return optimize(bundle, texture_objective(targets), param, steps=steps, lr=1.0, optimizer="lbfgs",
                    penalty=penalty, seed=seed, progress=progress, desc="texture")
