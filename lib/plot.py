"""Matplotlib figures shared by the chapters. Plots never compute: they take tensors and draw.

Every function shows its figure (``plt.show()``) and returns None, or, with ``show=False``, returns
the figure without showing it. Showing explicitly and returning nothing matters under nbval: there
the end-of-cell figure flush and a returned figure's repr would display the figure twice, and
the stored outputs would never match.
"""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from . import images as I

__all__ = ["show_images", "show_grid", "show_maps", "show_map_rows", "draw_box"]


def _finish(fig, show: bool):
    fig.tight_layout()
    if show:
        plt.show()
        return None
    return fig


def _axes(n: int, ncols: int, size: float):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, list(axes.flat)


def draw_box(ax, box: Sequence[float], color: str = "lime", lw: float = 1.5) -> None:
    """Draw an (x0, y0, x1, y1) box (x1/y1 exclusive) on image axes."""
    x0, y0, x1, y1 = (float(v) for v in box)
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=lw))


def show_images(images: torch.Tensor, titles: Sequence[str] | None = None, ncols: int = 8,
                size: float = 1.6, boxes: torch.Tensor | None = None, suptitle: str | None = None, show: bool = True):
    """Display-space images (N x 3 x H x W in [0, 1]) side by side, with optional titles and boxes."""
    fig, axes = _axes(len(images), ncols, size)
    for i, img in enumerate(images):
        axes[i].imshow(I.to_numpy(img), interpolation="nearest" if img.shape[-1] <= 64 else "antialiased")
        if titles is not None:
            axes[i].set_title(titles[i], fontsize=8)
        if boxes is not None:
            draw_box(axes[i], boxes[i])
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return _finish(fig, show)


def show_grid(images: torch.Tensor, nrow: int = 8, title: str | None = None, size: float = 6,
              normalize_each: bool = False, cmap: str | None = None, show: bool = True):
    """One tiled grid of a batch (e.g. filters or activation maps); 1-channel batches use ``cmap``."""
    g = I.grid(images, nrow=nrow, normalize_each=normalize_each)
    fig, ax = plt.subplots(figsize=(size, size * g.shape[1] / g.shape[2]))
    if images.shape[1] == 1:
        ax.imshow(g[0].numpy(), cmap=cmap or "viridis", interpolation="nearest")
    else:
        ax.imshow(g.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return _finish(fig, show)


def show_maps(image: torch.Tensor, maps: torch.Tensor, titles: Sequence[str] | None = None,
              ncols: int = 8, size: float = 1.6, cmap: str = "viridis", suptitle: str | None = None,
              show: bool = True):
    """One image followed by several maps (M x h x w), each drawn with its own colour range."""
    fig, axes = _axes(len(maps) + 1, ncols, size)
    axes[0].imshow(I.to_numpy(image))
    axes[0].set_title("input", fontsize=8)
    for i, m in enumerate(maps):
        axes[i + 1].imshow(m.detach().cpu().numpy(), cmap=cmap, interpolation="nearest")
        if titles is not None:
            axes[i + 1].set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return _finish(fig, show)


def show_map_rows(rows: dict[str, torch.Tensor], size: float = 1.3, cmap: str = "viridis",
                  suptitle: str | None = None, show: bool = True):
    """One row of maps per entry of ``rows`` ({label: K x h x w}), each map with its own colour range.

    Useful to follow one image through the depth of a network: a row per layer, a column per channel.
    """
    ncols = max(len(m) for m in rows.values())
    h, w = next(iter(rows.values())).shape[-2:]
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size * ncols * max(w / h, 1), size * len(rows) + 0.4),
                             squeeze=False)
    for r, (label, maps) in enumerate(rows.items()):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(maps):
                ax.imshow(maps[c].detach().cpu().numpy(), cmap=cmap, interpolation="nearest")
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return _finish(fig, show)
