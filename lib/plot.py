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


# --------------------------------------------------------------------------- chapter 04: occlusion
__all__ += ["show_overlays", "show_signed_maps", "show_occlusion", "show_occluder_positions"]


def _signed(ax, m: torch.Tensor, cmap: str = "RdBu_r", vmax: float | None = None):
    m = m.detach().cpu().float()
    v = float(m.abs().max()) if vmax is None else float(vmax)
    return ax.imshow(m.numpy(), cmap=cmap, vmin=-max(v, 1e-12), vmax=max(v, 1e-12), interpolation="nearest")


def show_overlays(images: torch.Tensor, maps: torch.Tensor, boxes: torch.Tensor | None = None,
                  peaks: torch.Tensor | None = None, titles: Sequence[str] | None = None, ncols: int = 8,
                  size: float = 1.6, alpha: float = 0.5, colormap: str = "jet", suptitle: str | None = None,
                  show: bool = True):
    """Maps (N x h x w) blended over their images (``lib.images.overlay``, each map scaled to its own
    min..max), with optional ground-truth ``boxes`` (N x 4) and ``peaks`` (N x 2, (x, y)) marked by a cross."""
    over = I.overlay(images, maps, alpha=alpha, colormap=colormap)
    fig, axes = _axes(len(over), ncols, size)
    for i, img in enumerate(over):
        axes[i].imshow(I.to_numpy(img), interpolation="nearest" if img.shape[-1] <= 64 else "antialiased")
        if boxes is not None:
            draw_box(axes[i], boxes[i])
        if peaks is not None:
            axes[i].plot([float(peaks[i][0])], [float(peaks[i][1])], marker="x", color="white", markersize=7, mew=2.5)
            axes[i].plot([float(peaks[i][0])], [float(peaks[i][1])], marker="x", color="black", markersize=6, mew=1.2)
        if titles is not None:
            axes[i].set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return _finish(fig, show)


def show_signed_maps(maps: torch.Tensor, titles: Sequence[str] | None = None, boxes: torch.Tensor | None = None,
                     ncols: int = 8, size: float = 1.6, cmap: str = "RdBu_r", shared: bool = False,
                     suptitle: str | None = None, show: bool = True):
    """Maps with a sign (N x h x w), drawn with a diverging colormap centred on 0 (red > 0, blue < 0).

    Each map has its own symmetric range (its largest |value|, written in its corner) unless
    ``shared``, where all use the largest of the batch so they can be compared by colour.
    """
    fig, axes = _axes(len(maps), ncols, size)
    top = float(maps.detach().abs().max()) if shared else None
    for i, m in enumerate(maps):
        _signed(axes[i], m, cmap, top)
        v = float(m.detach().abs().max()) if top is None else top
        axes[i].text(0.02, 0.02, f"±{v:.2g}", transform=axes[i].transAxes, fontsize=6, color="black",
                     bbox=dict(facecolor="white", alpha=0.7, pad=1, lw=0))
        if boxes is not None:
            draw_box(axes[i], boxes[i], color="black", lw=1.0)
        if titles is not None:
            axes[i].set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return _finish(fig, show)


def show_occlusion(image: torch.Tensor, occlusion_map: torch.Tensor, window: int, stride: int,
                   occluded: torch.Tensor | None = None, box: Sequence[float] | None = None,
                   title: str | None = None, size: float = 2.4, show: bool = True):
    """One occlusion experiment in three panels: the image (or ``occluded``, a copy with the first
    window filled) with the first two window positions, the map over the image, the signed map."""
    fig, axes = plt.subplots(1, 3, figsize=(size * 3 + 0.6, size + 0.4), squeeze=False)
    axes = list(axes.flat)
    shown = image if occluded is None else occluded
    axes[0].imshow(I.to_numpy(shown), interpolation="nearest" if shown.shape[-1] <= 64 else "antialiased")
    axes[0].add_patch(Rectangle((-0.5, -0.5), window, window, fill=False, edgecolor="yellow", lw=1.5))
    axes[0].add_patch(Rectangle((stride - 0.5, -0.5), window, window, fill=False, edgecolor="yellow", lw=1.0,
                                ls="--"))
    axes[0].set_title(f"window {window}, stride {stride}", fontsize=8)
    axes[1].imshow(I.to_numpy(I.overlay(image[None] if image.dim() == 3 else image, occlusion_map[None])))
    axes[1].set_title("map over the image", fontsize=8)
    im = _signed(axes[2], occlusion_map)
    axes[2].set_title("drop in p(class)", fontsize=8)
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        if box is not None:
            draw_box(ax, box, color="lime" if ax is not axes[2] else "black", lw=1.2)
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, show)


def show_occluder_positions(image: torch.Tensor, grid: torch.Tensor, target: int, class_names: Sequence[str],
                            window: int, stride: int, box: Sequence[float] | None = None,
                            title: str | None = None, size: float = 2.4, show: bool = True):
    """Zeiler & Fergus's figure 7 (d, e) for one image: with the patch *centred* at each position,
    the probability of class ``target`` and the most probable class.

    ``grid``: R x C x K class probabilities, one per window position (``occlusion_probs``).
    """
    import matplotlib.colors as mcolors
    from matplotlib.patches import Patch

    h, w = image.shape[-2:]
    r, c, k = grid.shape
    half = window / 2 - 0.5
    extent = (half - stride / 2, half + (c - 1) * stride + stride / 2,
              half + (r - 1) * stride + stride / 2, half - stride / 2)
    fig, axes = plt.subplots(1, 3, figsize=(size * 3 + 1.6, size + 0.4), squeeze=False)
    axes = list(axes.flat)
    axes[0].imshow(I.to_numpy(image), interpolation="nearest" if w <= 64 else "antialiased")
    axes[0].set_title("input", fontsize=8)
    im = axes[1].imshow(grid[..., target].numpy(), cmap="viridis", vmin=0, vmax=1, extent=extent,
                        interpolation="nearest")
    axes[1].set_title(f"p({class_names[target]}), patch centred here", fontsize=8)
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
    top = grid.argmax(-1)
    colours = plt.get_cmap("tab10" if k <= 10 else "tab20")
    cmap = mcolors.ListedColormap([colours(i % colours.N) for i in range(k)])
    axes[2].imshow(top.numpy(), cmap=cmap, vmin=-0.5, vmax=k - 0.5, extent=extent, interpolation="nearest")
    axes[2].set_title("most probable class", fontsize=8)
    present = sorted(set(top.flatten().tolist()))
    axes[2].legend(handles=[Patch(color=cmap(i), label=class_names[i]) for i in present], fontsize=6,
                   loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, frameon=False)
    for ax in axes:
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        if box is not None:
            draw_box(ax, box, color="lime" if ax is axes[0] else "white", lw=1.2)
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, show)


# --------------------------------------------------------------------------- chapter 07: CAM
__all__ += ["show_overlay_rows", "show_cam"]


def show_overlay_rows(images: torch.Tensor, rows: dict[str, torch.Tensor],
                      titles: dict[str, Sequence[str]] | None = None, boxes: torch.Tensor | None = None,
                      size: float = 1.5, alpha: float = 0.5, colormap: str = "jet", show_input: bool = True,
                      suptitle: str | None = None, show: bool = True):
    """A column per image: the image itself (if ``show_input``), then one row of overlays per entry of
    ``rows`` ({row label: N x h x w maps}, each map scaled to its own min..max by ``lib.images.overlay``).

    ``titles``: {row label (or "input"): N titles}; ``boxes``: N x 4 ground-truth boxes drawn on every row.
    """
    overlays = {label: I.overlay(images, m, alpha=alpha, colormap=colormap) for label, m in rows.items()}
    return show_image_rows({"input": images, **overlays} if show_input else overlays, titles=titles, boxes=boxes,
                           size=size, suptitle=suptitle, show=show)


def show_cam(image: torch.Tensor, cam_map: torch.Tensor, box: Sequence[float] | None = None,
             title: str | None = None, note: str | None = None, size: float = 2.4, show: bool = True):
    """One class activation map in three panels: the image, the raw map at the layer's resolution
    (diverging colours centred on 0: CAM has a sign), and the map upsampled over the image.

    ``cam_map``: h x w (not upsampled); ``note``: a line of text under the panels (e.g. the score identity).
    """
    fig, axes = plt.subplots(1, 3, figsize=(size * 3 + 0.6, size + (0.7 if note else 0.4)), squeeze=False)
    axes = list(axes.flat)
    img = image[None] if image.dim() == 3 else image
    small = img.shape[-1] <= 64
    axes[0].imshow(I.to_numpy(img), interpolation="nearest" if small else "antialiased")
    axes[0].set_title("input", fontsize=8)
    im = _signed(axes[1], cam_map)
    h, w = cam_map.shape[-2:]
    axes[1].set_title(f"$M_c$ at the layer ({h}x{w})", fontsize=8)
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
    axes[2].imshow(I.to_numpy(I.overlay(img, cam_map[None])), interpolation="nearest" if small else "antialiased")
    axes[2].set_title("upsampled, over the image", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if box is not None:
        draw_box(axes[0], box)
        draw_box(axes[2], box)
    if title:
        fig.suptitle(title, fontsize=10)
    if note:
        fig.text(0.5, 0.01, note, ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.06 if note else 0, 1, 1))
    if show:
        plt.show()
        return None
    return fig


# --------------------------------------------------------------------------- chapter 03: max-activating patches
def show_patches(rows, labels: Sequence[str] | None = None, title: str | None = None, size: float = 0.75,
                 show: bool = True):
    """Rows of image patches, e.g. one row per channel with its k maximally activating patches.

    ``rows``: R x k x 3 x h x w (or a list of k x 3 x h x w tensors of one size), display space;
    ``labels``: one text per row, written to its left.
    """
    k = max(len(r) for r in rows)
    h, w = rows[0].shape[-2:]
    fig, axes = plt.subplots(len(rows), 1, figsize=(size * k + 1.0, size * len(rows) * h / w + 0.45),
                             squeeze=False)
    for r, ax in enumerate(axes[:, 0]):
        g = I.grid(rows[r], nrow=k, padding=1)
        ax.imshow(g.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if labels is not None:
            ax.set_ylabel(labels[r], fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, show)


def show_top_units(patches: torch.Tensor, images: torch.Tensor, boxes: torch.Tensor,
                   titles: Sequence[str] | None = None, suptitle: str | None = None, size: float = 1.2,
                   image_titles: Sequence[str] | None = None, show: bool = True):
    """k patches (k x 3 x h x w) above the k images they were cut from, each with its box (k x 4).

    ``titles`` go over the patches, ``image_titles`` over the images."""
    k = len(patches)
    fig, axes = plt.subplots(2, k, figsize=(size * k, size * 2 + 0.5), squeeze=False)
    for i in range(k):
        axes[0, i].imshow(I.to_numpy(patches[i]), interpolation="nearest")
        axes[1, i].imshow(I.to_numpy(images[i]), interpolation="nearest" if images.shape[-1] <= 64 else "antialiased")
        draw_box(axes[1, i], boxes[i], color="lime", lw=1.2)
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=7)
        if image_titles is not None:
            axes[1, i].set_title(image_titles[i], fontsize=7)
        for ax in axes[:, i]:
            ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return _finish(fig, show)


def show_maps_with_boxes(maps: Sequence[torch.Tensor], boxes: Sequence[Sequence[float]],
                         titles: Sequence[str] | None = None, suptitle: str | None = None, size: float = 2.0,
                         cmap: str = "magma", show: bool = True):
    """Maps (each h x w, its own colour range) with one (x0, y0, x1, y1) box drawn on each."""
    fig, axes = _axes(len(maps), len(maps), size)
    for i, (m, box) in enumerate(zip(maps, boxes)):
        axes[i].imshow(m.detach().cpu().numpy(), cmap=cmap, interpolation="nearest")
        draw_box(axes[i], box, color="cyan", lw=1.2)
        h, w = m.shape[-2:]
        axes[i].set_xlim(min(-0.5, box[0] - 1), max(w - 0.5, box[2]))
        axes[i].set_ylim(max(h - 0.5, box[3]), min(-0.5, box[1] - 1))
        if titles is not None:
            axes[i].set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return _finish(fig, show)


__all__ += ["show_patches", "show_top_units", "show_maps_with_boxes"]


# --------------------------------------------------------------------------- chapter 02: feature space
__all__ += ["show_neighbours", "show_embeddings"]


def _class_colours(n: int):
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def show_neighbours(images: torch.Tensor, labels: torch.Tensor, queries: Sequence[int],
                    neighbours: dict[str, torch.Tensor], class_names: Sequence[str], size: float = 1.05,
                    suptitle: str | None = None, show: bool = True):
    """One row per query: the query image, then its neighbours in each space, a block per space.

    ``images`` (N x 3 x H x W) and ``labels`` (N) are the whole set; ``queries``: Q indices into it;
    ``neighbours``: {space name: Q x k indices into the set}, e.g. ``nearest_neighbours(...)[0]``.
    Titles are class names, green where the neighbour has the query's label, red where not.
    """
    queries = [int(q) for q in queries]
    names = list(neighbours)
    ks = [neighbours[n].shape[1] for n in names]
    nq = len(queries)
    fig = plt.figure(figsize=(size * (1 + sum(ks)) + 0.25 * len(names), size * 1.22 * nq + 0.45),
                     layout="constrained")
    subfigs = fig.subfigures(1, 1 + len(names), width_ratios=[1] + ks, wspace=0.02)
    interp = "nearest" if images.shape[-1] <= 64 else "antialiased"
    blocks = [("query", [[q] for q in queries])] + [(n, neighbours[n].tolist()) for n in names]
    for sf, (name, rows) in zip(subfigs, blocks):
        ncols = len(rows[0])
        axes = sf.subplots(nq, ncols, squeeze=False)
        sf.suptitle(name, fontsize=9)
        for r, q in enumerate(queries):
            for c, j in enumerate(rows[r]):
                ax = axes[r, c]
                ax.imshow(I.to_numpy(images[j]), interpolation=interp)
                ax.set_xticks([])
                ax.set_yticks([])
                same = int(labels[j]) == int(labels[q])
                colour = "black" if name == "query" else ("green" if same else "red")
                ax.set_title(class_names[int(labels[j])], fontsize=7, color=colour)
                if name != "query":
                    for spine in ax.spines.values():
                        spine.set_edgecolor(colour)
                        spine.set_linewidth(1.5)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    if show:
        plt.show()
        return None
    return fig


def show_embeddings(maps: dict[str, torch.Tensor], labels: torch.Tensor, class_names: Sequence[str],
                    images: torch.Tensor | None = None, thumbs: int = 300, zoom: float = 0.28,
                    size: float = 4.6, point_size: float = 6, suptitle: str | None = None, show: bool = True):
    """2-D maps of the same N points side by side ({panel title: N x 2 coordinates}), coloured by class,
    with one legend of class names.

    With ``images`` (N x 3 x H x W), the first ``thumbs`` points are drawn as small thumbnails
    (``zoom`` times their pixel size) framed in their class colour, over faint dots for all points.
    Axes carry no ticks: only relative positions mean something in such maps.
    """
    from matplotlib.lines import Line2D
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    colours = _class_colours(len(class_names))
    labels = torch.as_tensor(labels).reshape(-1)
    point_colours = [colours[int(y)] for y in labels]
    n = len(maps)
    fig, axes = plt.subplots(1, n, figsize=(size * n + 1.3, size + 0.4), squeeze=False)
    for ax, (title, z) in zip(axes[0], maps.items()):
        z = z.detach().cpu().float()
        if images is None:
            ax.scatter(z[:, 0].numpy(), z[:, 1].numpy(), c=point_colours, s=point_size, linewidths=0)
        else:
            ax.scatter(z[:, 0].numpy(), z[:, 1].numpy(), c=point_colours, s=point_size, linewidths=0, alpha=0.25)
            for i in range(min(thumbs, len(z))):
                box = AnnotationBbox(OffsetImage(I.to_numpy(images[i]), zoom=zoom, interpolation="antialiased"),
                                     (float(z[i, 0]), float(z[i, 1])), frameon=True, pad=0.08,
                                     bboxprops=dict(edgecolor=point_colours[i], linewidth=1.2))
                ax.add_artist(box)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    present = sorted(set(labels.tolist()))
    handles = [Line2D([], [], marker="o", ls="", color=colours[c], label=class_names[c]) for c in present]
    axes[0, -1].legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return _finish(fig, show)


# --------------------------------------------------------------------------- chapters 06 and 08: guided backprop, Grad-CAM
__all__ += ["show_image_rows"]


def show_image_rows(rows: dict[str, torch.Tensor], titles: dict[str, Sequence[str]] | None = None,
                    boxes: torch.Tensor | None = None, size: float = 1.5, cmap: str = "viridis",
                    suptitle: str | None = None, found: torch.Tensor | None = None, show: bool = True):
    """A column per image, a row per entry of ``rows`` ({row label: N x 3 x H x W images or N x h x w maps}).

    Images (display space, e.g. ``attribution.gradient_image`` or ``images.overlay`` output) are drawn
    as they are; maps with ``cmap``, each with its own colour range, at their own resolution.
    ``titles``: {row label: N titles}; ``boxes``: N x 4 boxes (input pixels, lime) drawn on every image
    row; ``found``: N x 4 boxes (red, e.g. a method's localisation) drawn on every row.
    """
    n = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), n, figsize=(size * n, size * len(rows) + 0.5), squeeze=False)
    for r, (label, pics) in enumerate(rows.items()):
        pics = pics.detach().cpu().float()
        for i in range(n):
            ax = axes[r, i]
            ax.set_xticks([])
            ax.set_yticks([])
            if i >= len(pics):
                ax.axis("off")
                continue
            if pics.dim() == 4:
                ax.imshow(I.to_numpy(pics[i]), interpolation="nearest" if pics.shape[-1] <= 64 else "antialiased")
                if boxes is not None:
                    draw_box(ax, boxes[i])
            else:
                ax.imshow(pics[i].numpy(), cmap=cmap, interpolation="nearest")
            if found is not None:
                draw_box(ax, found[i], color="red", lw=1.2)
            if titles is not None and label in titles:
                ax.set_title(titles[label][i], fontsize=7)
        axes[r, 0].set_ylabel(label, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return _finish(fig, show)


# --------------------------------------------------------------------------- chapter 05: saliency, GrabCut
__all__ += ["show_localisation"]


def show_localisation(images: torch.Tensor, rows: dict[str, torch.Tensor], truth: torch.Tensor | None = None,
                      found: torch.Tensor | None = None, titles: dict[str, Sequence[str]] | None = None,
                      size: float = 1.5, cmap: str = "gray", suptitle: str | None = None, show: bool = True):
    """A column per image: the image with its ground-truth box (``truth``, lime) and a box found by a
    method (``found``, red), then a row per entry of ``rows`` ({label: N x h x w maps or masks}), each
    map in its own colour range, with the found box drawn on it too.

    ``titles``: {"input" or a row label: N titles}.
    """
    return show_image_rows({"input": images, **rows}, titles=titles, boxes=truth, size=size, cmap=cmap,
                           suptitle=suptitle, found=found, show=show)


# --------------------------------------------------------------------------- chapter 09: evaluation
__all__ += ["show_curves"]


def show_curves(panels: dict[str, dict[str, torch.Tensor]], x: torch.Tensor | Sequence | None = None,
                xlabel: str = "", ylabel: str = "", xticks: Sequence[str] | None = None, size: float = 3.2,
                ylim: tuple[float, float] | None = None, suptitle: str | None = None, show: bool = True):
    """Line plots, one panel per entry of ``panels`` ({panel title: {line label: 1-D values}}),
    sharing ``x`` (default 0..K-1, or the labels ``xticks``); a legend on the last panel."""
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels) + 1.6, size * 0.8), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for label, y in lines.items():
            y = torch.as_tensor(y).detach().cpu().float()
            xs = torch.arange(len(y)) if x is None else torch.as_tensor(x)
            ax.plot(xs.numpy(), y.numpy(), marker="o", markersize=2.5, label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        if xticks is not None:
            ax.set_xticks(range(len(xticks)), xticks, rotation=30, ha="right", fontsize=7)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return _finish(fig, show)


# --------------------------------------------------------------------------- chapter 11: adversarial examples
__all__ += ["show_adversarial"]


def show_adversarial(original: torch.Tensor, adversarial: dict[str, torch.Tensor],
                     titles: dict[str, Sequence[str]] | None = None, magnify: float | None = None,
                     size: float = 1.5, suptitle: str | None = None, show: bool = True):
    """A column per image: the ``original`` (N x 3 x H x W), then for each attack in ``adversarial``
    ({label: N x 3 x H x W results}) a row with its change drawn magnified, 0.5 + k (result - original)
    (gray: unchanged, clipped to [0, 1]), and a row with the result itself.

    ``magnify`` (k): one factor for all rows, so changes can be compared; by default the largest
    whole number that keeps the largest |change| of all rows inside [0, 1]. It is written in the row
    label. ``titles``: {"original", an attack's label, or "<label> change": N titles}.
    """
    original = original.detach().cpu().float()
    deltas = {label: adv.detach().cpu().float() - original for label, adv in adversarial.items()}
    if magnify is None:
        top = max(float(d.abs().max()) for d in deltas.values())
        magnify = max(1, math.floor(0.5 / max(top, 1e-12)))
    rows, row_titles = {"original": original}, {}
    titles = titles or {}
    if "original" in titles:
        row_titles["original"] = titles["original"]
    for label, adv in adversarial.items():
        change = f"{label}: change x{magnify:g}"
        rows[change] = (0.5 + magnify * deltas[label]).clamp(0, 1)
        rows[label] = adv.detach().cpu().float()
        if f"{label} change" in titles:
            row_titles[change] = titles[f"{label} change"]
        if label in titles:
            row_titles[label] = titles[label]
    if len(original) == 1:   # one image: the rows side by side
        names = list(rows)
        fig = show_images(torch.cat([rows[r] for r in names]), ncols=len(names), size=size * 1.3, show=False,
                          titles=[r + (f"\n{row_titles[r][0]}" if r in row_titles else "") for r in names],
                          suptitle=suptitle)
        return _finish(fig, show)
    return show_image_rows(rows, titles=row_titles, size=size, suptitle=suptitle, show=show)


# --------------------------------------------------------------------------- chapter 13: DeepDream
__all__ += ["show_dreams", "show_octaves"]


def show_dreams(photo: torch.Tensor, dreams: Sequence, labels: Sequence[str] | None = None, size: float = 2.6,
                suptitle: str | None = None, show: bool = True):
    """The photo (1 x 3 x H x W or 3 x H x W), then the first image of each dream (``Optimized`` or
    ``Dream`` records), each titled with its label (default: its objective) and the objective's
    value on the photo and on the dream."""
    photo = photo[0] if photo.dim() == 4 else photo
    fig, axes = _axes(len(dreams) + 1, len(dreams) + 1, size)
    axes[0].imshow(I.to_numpy(photo))
    axes[0].set_title("photo", fontsize=8)
    for ax, d, label in zip(axes[1:], dreams, labels or [d.objective for d in dreams]):
        ax.imshow(I.to_numpy(d.image[0]))
        ax.set_title(f"{label}\n{float(d.start[0]):.3g} → {float(d.end[0]):.3g}", fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return _finish(fig, show)


def show_octaves(dream, size: float = 2.6, suptitle: str | None = None, show: bool = True):
    """Each octave of a ``Dream`` (its first image) at its own resolution, smallest first, drawn to
    scale: the panels' widths follow the octaves' widths."""
    widths = [o.size[1] for o in dream.octaves]
    n = len(widths)
    fig, axes = plt.subplots(1, n, figsize=(size * sum(widths) / max(widths) + 0.2 * n, size + 0.7), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for k, (ax, o) in enumerate(zip(axes[0], dream.octaves)):
        ax.imshow(I.to_numpy(o.image[0]), interpolation="antialiased")
        ax.axis("off")
        ax.set_title(f"octave {k + 1}: {o.size[0]}x{o.size[1]}\n{float(o.start[0]):.3g} → {float(o.end[0]):.3g}",
                     fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return _finish(fig, show)


# --------------------------------------------------------------------------- chapter 12: feature inversion
__all__ += ["show_inversions"]


def show_inversions(original: torch.Tensor, results: Sequence, labels: Sequence[str] | None = None,
                    errors: Sequence | None = None, size: float = 2.2, ncols: int | None = None,
                    suptitle: str | None = None, show: bool = True):
    """The original (1 x 3 x H x W or 3 x H x W), then the first image of each reconstruction
    (``Optimized`` records), titled with its label (default: its objective) and, when ``errors``
    (``InversionErrors``, one per result) are given, the relative feature error and the pixel RMSE.
    The suptitle defaults to the model that made the reconstructions."""
    original = original[0] if original.dim() == 4 else original
    n = len(results) + 1
    fig, axes = _axes(n, ncols or n, size)
    axes[0].imshow(I.to_numpy(original))
    axes[0].set_title("original", fontsize=8)
    labels = labels or [r.objective for r in results]
    for k, (ax, r, label) in enumerate(zip(axes[1:], results, labels)):
        ax.imshow(I.to_numpy(r.image[0]))
        if errors is not None:
            e = errors[k]
            label = f"{label}\nfeature err {float(e.feature[0]):.2g}, RMSE {float(e.pixel[0]):.2f}"
        ax.set_title(label, fontsize=8)
    fig.suptitle(suptitle or f"inverted with {results[0].model}", fontsize=10)
    return _finish(fig, show)
