"""What the layers compute: activations of named layers, first-layer filters and their responses."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..hooks import capture, frozen, resolve_layer

__all__ = ["activations", "first_conv", "filter_responses"]


@torch.no_grad()
def activations(bundle, x: torch.Tensor, layers: str | Sequence[str]) -> dict[str, torch.Tensor]:
    """Outputs of ``layers`` for display-space images ``x``: {name: N x C x h x w tensor on the CPU}."""
    if isinstance(layers, str):
        layers = [layers]
    with frozen(bundle.model), capture(bundle.model, layers, detach=True) as rec:
        bundle(x)
    return {name: rec.activations[name].cpu() for name in layers}


def first_conv(bundle) -> nn.Conv2d:
    """The first convolution of a bundle's model (the bundle's ``first_conv`` layer)."""
    _, conv = resolve_layer(bundle.model, bundle.layer("first_conv"))
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"{bundle.layer('first_conv')!r} of {bundle.name} is a {type(conv).__name__}, not a Conv2d")
    return conv


@torch.no_grad()
def filter_responses(bundle, x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
    """Responses of first-layer filters to images ``x`` (N x K x H' x W'): the convolution alone,
    before any normalisation or ReLU, so each map shows where the image looks like the filter."""
    conv = first_conv(bundle)
    w = conv.weight if channels is None else conv.weight[list(channels)]
    b = None if conv.bias is None else (conv.bias if channels is None else conv.bias[list(channels)])
    return F.conv2d(bundle.preprocess(x.to(w.device)), w, b, conv.stride, conv.padding, conv.dilation).cpu()
