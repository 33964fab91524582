"""Neural style transfer by optimisation (Gatys, Ecker & Bethge 2016).

Find an image x whose deep features match a content photo c and whose Gram matrices match a style
image s:

    L(x) = a * ||F^l(x) - F^l(c)||^2 / ||F^l(c)||^2          content, at one deep layer (conv4_2)
         + b * sum_k w_k ||G^k(x) - G^k(s)||^2 / mean(G^k(s)^2)   style (``texture.texture_loss``)
         + t * TV(x)                                               smoothness

minimised with L-BFGS starting from the content photo. Colour can be kept from the photo in two
ways (Gatys et al. 2017, "Controlling perceptual factors"): transfer luminance only, or first match
the style image's colour histogram to the photo's.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..images import resize
from .core import Objective, Optimized, PixelImage, activations, optimize, total_variation
from .texture import TEXTURE_LAYERS, gram_targets, texture_loss

__all__ = ["CONTENT_LAYER", "content_loss", "style_transfer_objective", "style_transfer", "transfer_losses",
           "match_colours",
           "luminance", "with_luminance"]

CONTENT_LAYER = "conv4_2"
# ITU-R BT.601 luma and the YIQ chroma axes: RGB -> YIQ
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||F(x) - F(c)||^2 / ||F(c)||^2 per image (N,): the relative content error. ``target`` is one
    content image's features (1 x ...) or one per image (N x ...)."""
    return (features - target).pow(2).flatten(1).sum(1) / target.pow(2).flatten(1).sum(1).clamp(min=1e-12)


def style_transfer_objective(bundle, content: torch.Tensor, style_targets: dict, content_layer: str = CONTENT_LAYER,
                             content_weight: float = 1.0, style_weight: float = 1.0,
                             tv_weight: float = 0.0) -> Objective:
    """Minus the style-transfer loss; one forward pass per evaluation serves every layer.

    ``style_targets``: Gram matrices per layer (``texture.gram_targets``). The parts of the last
    evaluation are kept in the objective's ``parts`` dict (content, style, tv) for printing.
    """
    layers = list(dict.fromkeys([*style_targets, content_layer]))
    with torch.no_grad():
        target = activations(bundle, [content_layer], content)[content_layer]

    def fn(b, x):
        feats = activations(b, layers, x)
        c = content_loss(feats[content_layer], target)
        s = texture_loss(feats, style_targets)
        t = total_variation(x)
        obj.parts = {"content": c.detach().cpu(), "style": s.detach().cpu(), "tv": t.detach().cpu()}
        return -(content_weight * c + style_weight * s + tv_weight * t)

    obj = Objective(fn, f"-(content {content_weight:g} + style {style_weight:g} + tv {tv_weight:g})")
    obj.parts = {}
    return obj


def luminance(x: torch.Tensor) -> torch.Tensor:
    """The luma Y of RGB images, repeated on 3 channels (a gray image the model can read)."""
    y = torch.einsum("c,nchw->nhw", _YIQ[0].to(x), x)
    return y[:, None].expand(-1, 3, -1, -1).contiguous()


def with_luminance(colour: torch.Tensor, lum: torch.Tensor) -> torch.Tensor:
    """Replace the luma of ``colour`` by that of ``lum`` (same size), keeping its chroma (I, Q)."""
    yiq = torch.einsum("dc,nchw->ndhw", _YIQ.to(colour), colour)
    yiq[:, 0] = torch.einsum("c,nchw->nhw", _YIQ[0].to(lum), lum)
    return torch.einsum("dc,nchw->ndhw", torch.linalg.inv(_YIQ).to(colour), yiq).clamp(0, 1)


def match_colours(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``source`` with each RGB channel's histogram matched to ``reference``'s (scikit-image)."""
    from skimage.exposure import match_histograms

    src = source[0].permute(1, 2, 0).cpu().numpy()
    ref = reference[0].permute(1, 2, 0).cpu().numpy()
    out = match_histograms(src, ref, channel_axis=-1).astype(np.float32)
    return torch.from_numpy(out).permute(2, 0, 1)[None].clamp(0, 1).to(source.device)


def style_transfer(bundle, content: torch.Tensor, style: torch.Tensor | Sequence[torch.Tensor],
                   style_mix: Sequence[float] | None = None, style_layers: Sequence[str] = TEXTURE_LAYERS,
                   content_layer: str = CONTENT_LAYER, content_weight: float = 1.0, style_weight: float = 10.0,
                   tv_weight: float = 0.0, style_size: int | None = None, colour: str | None = None,
                   steps: int = 200, seed: int = 0, progress: bool = True) -> Optimized:
    """Gatys et al.'s style transfer: L-BFGS from the content image (1 x 3 x H x W, display space).

    ``style``: one image or several (then ``style_mix`` weights blend their Gram matrices);
    ``style_size``: the long side the style image is resized to before its Gram matrices are taken
    (smaller -> larger brush strokes relative to the photo); ``colour``: None, 'luminance' (transfer
    luma only and keep the photo's chroma) or 'histogram' (match the style's colours to the photo
    first). ``steps`` counts L-BFGS evaluations. The returned record's ``start``/``end`` are minus
    the total loss; ``record.parts`` has the content, style and TV losses at the end.
    """
    content = content.to(bundle.device)
    target_content, targets = _targets(bundle, content, style, style_mix, style_layers, style_size, colour)
    objective = style_transfer_objective(bundle, target_content, targets, content_layer, content_weight,
                                         style_weight, tv_weight)
    record = optimize(bundle, objective, PixelImage(target_content), steps=steps, lr=1.0, optimizer="lbfgs",
                      seed=seed, progress=progress, desc="style transfer")
    with torch.no_grad():
        objective(bundle, record.image.to(bundle.device))   # the parts of the final image
    record.parts = {k: v.clone() for k, v in objective.parts.items()}
    if colour == "luminance":
        record.image = with_luminance(content.cpu(), record.image)
    return record


def _targets(bundle, content, style, style_mix, style_layers, style_size, colour):
    """The content image the loss compares with, and the (blended) Gram targets of the style(s)."""
    if colour not in (None, "luminance", "histogram"):
        raise ValueError(f"colour must be None, 'luminance' or 'histogram', got {colour!r}")
    styles = [style] if isinstance(style, torch.Tensor) else list(style)
    if style_size is not None:
        styles = [resize(s, _long_side(s, style_size)) for s in styles]
    if colour == "histogram":
        styles = [match_colours(s, content) for s in styles]
    if colour == "luminance":
        styles, content = [luminance(s) for s in styles], luminance(content)
    return content, gram_targets(bundle, [s.to(bundle.device) for s in styles], style_layers, weights=style_mix)


@torch.no_grad()
def transfer_losses(bundle, image: torch.Tensor, content: torch.Tensor, style, style_mix=None,
                    style_layers: Sequence[str] = TEXTURE_LAYERS, content_layer: str = CONTENT_LAYER,
                    style_size: int | None = None) -> dict[str, float]:
    """The content, style and TV losses of any ``image`` (e.g. a feed-forward network's output)
    against a content photo and style image(s), exactly as ``style_transfer`` measures them."""
    content = content.to(bundle.device)
    target_content, targets = _targets(bundle, content, style, style_mix, style_layers, style_size, None)
    objective = style_transfer_objective(bundle, target_content, targets, content_layer)
    objective(bundle, image.to(bundle.device))
    return {k: v.item() for k, v in objective.parts.items()}


def _long_side(x: torch.Tensor, side: int) -> tuple[int, int]:
    h, w = x.shape[-2:]
    scale = side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))
