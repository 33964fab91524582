"""DeepDream (Mordvintsev, Olah & Tyka 2015): make an image more of what a layer already sees in it.

Start from a photo, not from noise, and do gradient *ascent* on an objective of the photo: the
energy of a layer's activations (``core.layer_energy``: mean(A^2)), one channel
(``core.channel``), a class score (``core.class_score``), or the match with a guide image's
features (``guided_objective``). What the layer weakly detects gets amplified, step after step,
until it is painted into the picture.

Three tricks from the original notebook make the pictures work, and each is a piece of
``lib.synthesis.core``; this module only arranges them:

- **normalised steps** (``optimizer='normalized'``, ``core.NormalizedStep``): each step moves the
  pixels by ``step_size * g / mean(|g|)``, so the step size is in pixel units for any layer;
- **roll jitter** (``core.Jitter``): the image is shifted by a random offset (wrapping round)
  before each step, so the patterns do not lock onto the pixel grid;
- an **image pyramid** (octaves): the photo is dreamed first at a small scale, where the network's
  patterns are large compared with the image, then at larger and larger scales. Only the change
  the dream made, the *detail* = dreamed - base, is carried from one octave to the next
  (upsampled and added to the next octave's base), so every scale adds its own patterns and the
  final image keeps the full-resolution photo underneath.

Each octave is one ``core.optimize`` call on a ``core.PixelImage``: there is no other loop here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

from .. import hooks
from ..images import resize
from .core import Jitter, Objective, Optimized, PixelImage, activation, check_rgb, layer_energy, optimize

__all__ = ["deepdream", "guided_objective", "octave_sizes", "Dream", "Octave"]


@dataclass
class Octave:
    """One level of the pyramid: its ``size`` (H, W), the dreamed ``image`` at that size (CPU), the
    objective per image before and after the octave's steps (``start``, ``end``, at that size), and
    the wall-clock ``seconds`` it took."""
    size: tuple[int, int]
    image: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor
    seconds: float


@dataclass
class Dream(Optimized):
    """What ``deepdream`` returns: an ``Optimized`` record (``image`` at the input's size, the
    objective of the input photo as ``start`` and of the dream as ``end``, both at full size, so
    ``gain`` is end / start; ``history``: every step of every octave, smallest octave first) plus
    the pyramid (``octaves``: one ``Octave`` per level, smallest first), the ``settings`` it was
    made with and the total ``seconds``."""
    octaves: list[Octave] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0


def octave_sizes(size: tuple[int, int], octaves: int, octave_scale: float = 1.4,
                 min_side: int = 16) -> list[tuple[int, int]]:
    """The (H, W) of each pyramid level, smallest first, the last one ``size`` itself: each level is
    ``octave_scale`` times smaller than the next. Levels whose short side would fall under
    ``min_side`` pixels are dropped (the network would downsample them to nothing)."""
    if octaves < 1:
        raise ValueError(f"octaves must be at least 1 (1 = no pyramid), got {octaves}")
    if octave_scale <= 1:
        raise ValueError(f"octave_scale must be larger than 1 (each octave smaller by that factor), got {octave_scale}")
    h, w = size
    sizes = []
    for k in range(octaves - 1, -1, -1):
        s = octave_scale ** k
        hk, wk = max(1, round(h / s)), max(1, round(w / s))
        if min(hk, wk) >= min_side or k == 0:
            sizes.append((hk, wk))
    return sizes


def deepdream(bundle, image: torch.Tensor, objective: Objective | str, octaves: int = 4, octave_scale: float = 1.4,
              steps: int = 10, step_size: float = 0.002, jitter: int | None = None, seed: int = 0,
              progress: bool = False) -> Dream:
    """Dream ``image`` (N x 3 x H x W display space, in [0, 1]) with ``bundle``: gradient ascent on
    ``objective`` (an ``Objective``, or a layer name, meaning ``layer_energy(layer)``: mean(A^2)).

    ``octaves`` pyramid levels, each ``octave_scale`` times smaller than the next, smallest first;
    at each, ``steps`` normalised steps of ``step_size`` (mean absolute change of a pixel per step)
    with a random roll of up to ``jitter`` pixels (default: 1/16 of the short side, at least 1).
    At each octave: image = base + detail; dreamed = one ``optimize`` call on a ``PixelImage`` of
    it; detail = dreamed - base, upsampled to the next octave. With ``octaves=1`` this *is* one
    ``optimize(bundle, objective, PixelImage(image), steps, lr=step_size, optimizer='normalized',
    transforms=[Jitter(jitter)], seed=seed)`` call. Octave k uses seed ``seed + k`` for its jitter.

    The model is frozen meanwhile (eval mode, no parameter gradients) and restored on exit,
    exceptions included. Returns a ``Dream`` (an ``Optimized`` with per-octave records).
    """
    if isinstance(objective, str):
        objective = layer_energy(objective)
    check_rgb(image, "deepdream")
    if steps < 1 or step_size <= 0:
        raise ValueError(f"steps must be >= 1 and step_size > 0, got steps={steps}, step_size={step_size}")
    full = tuple(image.shape[-2:])
    if jitter is None:
        jitter = max(1, min(full) // 16)
    sizes = octave_sizes(full, octaves, octave_scale)
    photo = image.detach().float().clamp(0, 1).to(bundle.device)
    t_all = time.perf_counter()
    history: list[float] = []
    levels: list[Octave] = []
    with hooks.frozen(bundle.model):
        with torch.no_grad():
            start = objective(bundle, photo).detach().cpu()
        detail = None
        for k, size in enumerate(sizes):
            base = photo if size == full else resize(photo, size).clamp(0, 1)
            if detail is None:
                init = base
            else:
                init = base + (detail if tuple(detail.shape[-2:]) == size else resize(detail, size))
            t0 = time.perf_counter()
            r = optimize(bundle, objective, PixelImage(init), steps=steps, lr=step_size, optimizer="normalized",
                         transforms=[Jitter(jitter)], seed=seed + k, progress=progress,
                         desc=f"octave {k + 1}/{len(sizes)} ({size[0]}x{size[1]})")
            dreamed = r.image.to(bundle.device)
            detail = dreamed - base
            history += r.history
            levels.append(Octave(size=size, image=r.image, start=r.start, end=r.end,
                                 seconds=time.perf_counter() - t0))
        end = levels[-1].end
    settings = dict(octaves=octaves, octave_scale=octave_scale, steps=steps, step_size=step_size, jitter=jitter,
                    seed=seed)
    return Dream(image=levels[-1].image, start=start, end=end, history=history, objective=objective.name,
                 model=bundle.name, octaves=levels, settings=settings, seconds=time.perf_counter() - t_all)


def guided_objective(bundle, layer: str, guide: torch.Tensor, normalize: bool = True,
                     name: str | None = None) -> Objective:
    """Guided DeepDream: make the image's features at ``layer`` look like those of a ``guide`` image
    (1 x 3 x h x w, display space; any size).

    Let A_p be the feature vector (all channels) of the dreamed image at position p and G_q that of
    the guide at position q. Each position is matched with the guide position it most resembles, and
    the objective is the mean over positions of that similarity, mean_p max_q <A_p, G_q>. It works
    whatever the two images' sizes, so at every octave.

    ``normalize=False``: raw dot products, as in the original notebook's guided dream (the gradient
    with respect to A_p is then the best-matching G_q itself). Raw dot products also grow with the
    size of A_p, so an image with strong activations can beat the guide itself. ``normalize=True``
    (default) compares directions, cos(A_p, G_q): the value is at most 1, reached by the guide image
    itself, so the objective prefers the guide to any other image.
    """
    with torch.no_grad(), hooks.frozen(bundle.model):
        g = activation(bundle, layer, guide[:1].to(bundle.device)).detach()[0].flatten(1)   # C x Q
    if normalize:
        g = F.normalize(g, dim=0)

    def fn(b, x):
        a = activation(b, layer, x).flatten(2)                  # N x C x P
        if normalize:
            a = F.normalize(a, dim=1)
        scores = torch.einsum("ncp,cq->npq", a, g)              # N x P x Q: <A_p, G_q>
        return scores.max(2).values.mean(1)
    kind = "cosine" if normalize else "dot product"
    return Objective(fn, name or f"{layer}: {kind} with the guide's features")
