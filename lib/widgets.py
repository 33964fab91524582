"""The ipywidgets the chapters use. Each computes once up front, so moving a slider only redraws.

In the published book the widgets render but do not compute (there is no kernel); the static
figure of the default setting sits under each one. In JupyterLab or Colab they are live.
"""
from __future__ import annotations

from typing import Sequence

import torch

from . import plot
from .features import activations

__all__ = ["activation_explorer"]


def activation_explorer(bundle, x: torch.Tensor, layers: Sequence[str], size: float = 2.4):
    """Layer dropdown + channel slider showing one activation map of image ``x`` (1 x 3 x H x W).

    Returns the widget (display it as a cell's last expression).
    """
    import ipywidgets as W

    acts = activations(bundle, x[:1], list(layers))
    layer = W.Dropdown(options=list(layers), value=layers[0], description="layer")
    channel = W.IntSlider(value=0, min=0, max=acts[layers[0]].shape[1] - 1, description="channel",
                          continuous_update=False)

    def on_layer(change):
        channel.max = acts[change["new"]].shape[1] - 1

    layer.observe(on_layer, names="value")

    def draw(layer: str, channel: int):
        a = acts[layer][0, channel]
        plot.show_maps(x[0], a[None], titles=[f"{layer}, channel {channel} ({a.shape[0]}x{a.shape[1]})"],
                       ncols=2, size=size, suptitle=bundle.name)

    out = W.interactive_output(draw, {"layer": layer, "channel": channel})
    return W.VBox([W.HBox([layer, channel]), out])
