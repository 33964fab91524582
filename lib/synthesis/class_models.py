"""Class models and neurons by gradient ascent (chapter 10).

Simonyan et al. (2013) find the image that a classifier finds most typical of class c by gradient
ascent on the unnormalised class score,

    I* = argmax_I  S_c(I) - lambda ||I - centre||^2,

and Yosinski et al. (2015) add image priors that make the result look less like high-frequency
noise: L2 decay, a Gaussian blur every few steps, and clipping the pixels of small norm or of
small contribution to the objective. Olah et al. (2017) instead change what is optimised (a
decorrelated Fourier spectrum, ``FourierImage``) and ask for robustness to jitter, scale and
rotation. Everything here is built on the one loop of ``lib.synthesis.core``:

- regularisers are *pieces* for ``optimize``: ``l2_penalty`` (a penalty callable), and
  ``blur_every``, ``clip_norm_every``, ``clip_contribution_every`` (``(k, fn)`` callbacks run
  after every k-th step); the pixel operations themselves are plain tensor functions
  (``gaussian_blur``, ``clip_small_norm``, ``clip_small_contribution``), testable on their own;
- objectives for a batch where image i has its own target: ``class_scores``,
  ``class_log_probs``, ``class_others_down``, ``channels``;
- ``class_model`` and ``neuron_model`` switch the pieces on and off by keyword;
  ``class_report`` says, for finished images, the target's logit, the mean of the other logits
  and the target's softmax probability.

Display space is [0, 1]. The "zero" that decay and clipping pull pixels towards is ``centre``
(default 0.5, mid-gray): in the papers the image is mean-subtracted, so their zero is the mean
image, a neutral gray-ish colour; pulling display pixels to 0 would mean pulling them to black.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..hooks import resolve_layer
from ..images import gaussian_blur   # re-exported: the blur regulariser's blur
from .core import (FourierImage, Jitter, Objective, Optimized, PixelImage, RandomAffine, activation,
                   optimize)

__all__ = ["gaussian_blur", "clip_small_norm", "clip_small_contribution", "l2_penalty", "blur_every",
           "clip_norm_every", "clip_contribution_every", "class_scores", "class_log_probs", "class_others_down",
           "channels",
           "class_model", "neuron_model", "before_relu", "class_report", "ClassReport", "describe",
           "REGULARISERS", "settings"]


# --------------------------------------------------------------------------------------------
# The pixel operations (pure functions: tensor in, tensor out)
# --------------------------------------------------------------------------------------------
def _centre(centre, x: torch.Tensor) -> torch.Tensor:
    """``centre`` (a number, 3 colour values or a broadcastable tensor) as a tensor shaped for ``x``."""
    c = torch.as_tensor(centre, dtype=x.dtype, device=x.device)
    return c.view(1, -1, 1, 1) if c.dim() == 1 else c


def _below_percentile(values: torch.Tensor, pct: float) -> torch.Tensor:
    """N x H x W bool: the positions whose value is below the ``pct``-th percentile of its image."""
    flat = values.flatten(1)
    threshold = torch.quantile(flat, pct / 100.0, dim=1, keepdim=True)
    return (flat < threshold).view_as(values)


def clip_small_norm(x: torch.Tensor, pct: float, centre=0.5) -> torch.Tensor:
    """Yosinski et al.'s "clipping pixels with small norm": the pixels whose colour norm
    ||x_ij - centre|| (over the channels) is below the ``pct``-th percentile of the image are set
    to ``centre``. Returns a new tensor."""
    if pct <= 0:
        return x
    c = _centre(centre, x)
    small = _below_percentile((x - c).norm(dim=1), pct)
    return torch.where(small[:, None], c.expand_as(x), x)


def clip_small_contribution(x: torch.Tensor, grad: torch.Tensor, pct: float, centre=0.5) -> torch.Tensor:
    """Yosinski et al.'s "clipping pixels with small contribution": a pixel's contribution is
    |sum over channels of (x - centre) * grad|, the first-order change of the objective if the pixel
    were set to ``centre``; pixels below the ``pct``-th percentile of the image are set to ``centre``.
    ``grad``: d objective / d x, same shape as ``x``. Returns a new tensor."""
    if pct <= 0:
        return x
    c = _centre(centre, x)
    contribution = ((x - c) * grad).sum(1).abs()
    small = _below_percentile(contribution, pct)
    return torch.where(small[:, None], c.expand_as(x), x)


# --------------------------------------------------------------------------------------------
# The same operations as pieces for ``optimize``: a penalty and (k, fn) callbacks
# --------------------------------------------------------------------------------------------
def l2_penalty(weight: float, centre=0.5):
    """``penalty(img) -> (N,)``: weight * ||img - centre||^2 per image (the lambda ||I||^2 of
    Simonyan et al., in display space). Use as ``optimize(..., penalty=l2_penalty(0.01))``."""
    def penalty(img: torch.Tensor) -> torch.Tensor:
        return weight * (img - _centre(centre, img)).pow(2).flatten(1).sum(1)
    return penalty


def _pixels(param) -> torch.Tensor:
    if not isinstance(param, PixelImage):
        raise TypeError(f"blur and clipping change pixels, so they need a PixelImage, not a {type(param).__name__}: "
                        f"use transforms (jitter, scale, rotation) with a FourierImage instead")
    return param.pixels


def blur_every(k: int, sigma: float) -> tuple[int, callable]:
    """``(k, fn)`` for ``optimize(every=[...])``: blur the pixels with ``sigma`` after every k-th step."""
    def fn(param):
        p = _pixels(param)
        p.copy_(gaussian_blur(p, sigma))
    return (k, fn)


def clip_norm_every(k: int, pct: float, centre=0.5) -> tuple[int, callable]:
    """``(k, fn)``: ``clip_small_norm`` on the pixels after every k-th step."""
    def fn(param):
        p = _pixels(param)
        p.copy_(clip_small_norm(p, pct, centre))
    return (k, fn)


def clip_contribution_every(k: int, pct: float, bundle, objective: Objective, centre=0.5) -> tuple[int, callable]:
    """``(k, fn)``: ``clip_small_contribution`` after every k-th step, with the gradient of
    ``objective`` alone (no transforms, no penalty) at the current pixels (one extra
    forward/backward pass each time)."""
    def fn(param):
        p = _pixels(param)
        with torch.enable_grad():
            x = p.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(objective(bundle, x).sum(), x)
        p.copy_(clip_small_contribution(p, grad, pct, centre))
    return (k, fn)


# --------------------------------------------------------------------------------------------
# Objectives with one target per image
# --------------------------------------------------------------------------------------------
def _targets(t: Sequence[int] | int | torch.Tensor) -> list[int]:
    return [int(t)] if isinstance(t, int) else [int(v) for v in torch.as_tensor(t).reshape(-1).tolist()]


def class_scores(classes: Sequence[int]) -> Objective:
    """S_{c_i}(I_i): image i's logit for its own class ``classes[i]`` (Simonyan et al.'s objective)."""
    cls = _targets(classes)

    def fn(b, x):
        logits = b(x)
        return logits[torch.arange(len(x), device=logits.device), torch.as_tensor(cls, device=logits.device)]
    return Objective(fn, "S_c(I), the score of class c" if len(cls) > 1 else f"score of class {cls[0]}")


def class_log_probs(classes: Sequence[int]) -> Objective:
    """log p_{c_i}(I_i) = S_c - log sum_j exp S_j: the log of the softmax probability (same maximiser
    as the probability; its gradient does not vanish as p -> 1)."""
    cls = _targets(classes)

    def fn(b, x):
        logp = b(x).log_softmax(1)
        return logp[torch.arange(len(x), device=logp.device), torch.as_tensor(cls, device=logp.device)]
    return Objective(fn, "log p_c(I), the log softmax probability of class c")


def class_others_down(classes: Sequence[int]) -> Objective:
    """-log sum_{j != c_i} exp S_j(I_i): push every *other* class down and never look at c_i itself.
    It is the part of log p_c that the score S_c lacks (log p_c = S_c - log sum_j exp S_j), so it
    raises p_c without asking for anything that looks like c."""
    cls = _targets(classes)

    def fn(b, x):
        logits = b(x)
        own = torch.zeros_like(logits, dtype=torch.bool)
        own[torch.arange(len(x), device=logits.device), torch.as_tensor(cls, device=logits.device)] = True
        return -logits.masked_fill(own, float("-inf")).logsumexp(1)
    return Objective(fn, "-log sum_(j != c) exp S_j(I), the other classes pushed down")


def channels(layer: str, chans: Sequence[int]) -> Objective:
    """Image i's mean activation of channel ``chans[i]`` of ``layer`` over all positions (the
    forward pass stops at the layer)."""
    ch = _targets(chans)

    def fn(b, x):
        a = activation(b, layer, x)
        return a[torch.arange(len(x), device=a.device), torch.as_tensor(ch, device=a.device)].mean((-2, -1))
    return Objective(fn, f"{layer} channel c, mean over positions")


# --------------------------------------------------------------------------------------------
# The two recipes
# --------------------------------------------------------------------------------------------
#: The switchable regularisers of ``class_model`` and the keywords each one sets.
REGULARISERS = {"l2": ("l2",), "blur": ("blur_every", "blur_sigma"), "norm": ("norm_pct",),
                "contrib": ("contrib_pct",), "jitter": ("jitter",)}


def settings(strengths: dict, on: Sequence[str]) -> dict:
    """``class_model`` keywords with the regularisers named in ``on`` (keys of ``REGULARISERS``)
    at their ``strengths`` (a dict of ``class_model`` keywords) and the others off (0). Keywords
    of ``strengths`` that switch nothing (e.g. ``clip_every``) are passed through."""
    unknown = set(on) - set(REGULARISERS)
    if unknown:
        raise ValueError(f"unknown regularisers {sorted(unknown)}: choose from {list(REGULARISERS)}")
    switched = {k for keys in REGULARISERS.values() for k in keys}
    out = {k: v for k, v in strengths.items() if k not in switched}
    for name, keys in REGULARISERS.items():
        for k in keys:
            out[k] = strengths.get(k, 0) if name in on else (strengths.get(k, 0.5) if k == "blur_sigma" else 0)
    return out


def describe(l2: float = 0.0, blur_every: int = 0, blur_sigma: float = 0.5, norm_pct: float = 0.0,
             contrib_pct: float = 0.0, jitter: int = 0, **_) -> str:
    """A short text for titles: which regularisers are on, with their strengths."""
    parts = []
    if l2 > 0:
        parts.append(f"L2 {l2:g}")
    if blur_every > 0 and blur_sigma > 0:
        parts.append(f"blur {blur_sigma:g} every {blur_every}")
    if norm_pct > 0:
        parts.append(f"norm clip {norm_pct:g}%")
    if contrib_pct > 0:
        parts.append(f"contribution clip {contrib_pct:g}%")
    if jitter > 0:
        parts.append(f"jitter {jitter}px")
    return ", ".join(parts) if parts else "no regulariser"


def _pieces(bundle, objective: Objective, l2: float, centre, blur_every_k: int, blur_sigma: float,
            norm_pct: float, contrib_pct: float, clip_every: int):
    penalty = l2_penalty(l2, centre) if l2 > 0 else None
    every = []
    if blur_every_k > 0 and blur_sigma > 0:
        every.append(blur_every(blur_every_k, blur_sigma))
    if norm_pct > 0:
        every.append(clip_norm_every(clip_every, norm_pct, centre))
    if contrib_pct > 0:
        every.append(clip_contribution_every(clip_every, contrib_pct, bundle, objective, centre))
    return penalty, every


def class_model(bundle, classes: Sequence[int] | int | None = None, steps: int = 60, lr: float = 0.05,
                size: int | None = None, objective: str = "score", l2: float = 0.0, centre=0.5,
                blur_every: int = 0, blur_sigma: float = 0.5, norm_pct: float = 0.0, contrib_pct: float = 0.0,
                clip_every: int = 4, jitter: int = 0, init_sd: float = 0.05, seed: int = 0,
                progress: bool = False) -> Optimized:
    """One class model per entry of ``classes`` (default: every class of the bundle), all in one
    batch: image i maximises class ``classes[i]``.

    ``objective``: 'score' (S_c, the logit), 'softmax' (log p_c) or 'others' (only push the other
    classes down: -log sum_(j != c) exp S_j; ``class_others_down``). Regularisers (all off by
    default, each independent): ``l2`` (penalty l2 * ||I - centre||^2), ``blur_every`` /
    ``blur_sigma`` (Gaussian blur every k steps), ``norm_pct`` / ``contrib_pct`` (clip the pixels
    below that percentile of norm / of contribution to ``centre``, every ``clip_every`` steps),
    ``jitter`` (random roll by up to that many pixels, each step). Pixels start as
    ``centre`` +- ``init_sd`` noise from ``seed``, at ``size`` (default: the bundle's input size),
    and are optimised with Adam at ``lr``. The model is frozen and restored (``optimize``).

    Returns an ``Optimized`` record whose ``start``/``end`` are the objective (without penalty) per
    image and whose ``objective`` names the settings; see ``class_report`` for logits and
    probabilities.
    """
    names = bundle.require_classes("class_model")
    cls = list(range(len(names))) if classes is None else _targets(classes)
    bad = [c for c in cls if not 0 <= c < len(names)]
    if bad:
        raise ValueError(f"class indices {bad} are out of range: {bundle.name} has {len(names)} classes (0-{len(names) - 1})")
    makers = {"score": class_scores, "softmax": class_log_probs, "others": class_others_down}
    if objective not in makers:
        raise ValueError(f"objective must be 'score' (the logit S_c), 'softmax' (log p_c) or 'others' "
                         f"(-log sum_(j != c) exp S_j), not {objective!r}")
    obj = makers[objective](cls)
    g = torch.Generator().manual_seed(seed)
    param = PixelImage.random(len(cls), size or bundle.input_size, sd=init_sd, mean=0.5, generator=g,
                              device=bundle.device)
    penalty, every = _pieces(bundle, obj, l2, centre, blur_every, blur_sigma, norm_pct, contrib_pct, clip_every)
    transforms = [Jitter(jitter)] if jitter > 0 else []
    r = optimize(bundle, obj, param, steps=steps, lr=lr, transforms=transforms, penalty=penalty, every=every,
                 seed=seed, progress=progress, desc=f"{bundle.name}: class models")
    r.objective = f"{obj.name}; {describe(l2, blur_every, blur_sigma, norm_pct, contrib_pct, jitter)}"
    return r


def before_relu(bundle, layer: str) -> str:
    """The ``named_modules()`` name of what feeds ``layer`` when ``layer`` is a ReLU (for VGG-style
    sequential trunks: the conv just before it), else ``layer`` itself; paper names such as
    'conv3_3' (which the VGG bundles map to the ReLU) are resolved first."""
    name, module = resolve_layer(bundle.model, bundle.layers.get(layer, layer))
    if not isinstance(module, torch.nn.ReLU):
        return name
    leaves = [n for n, m in bundle.model.named_modules() if n and not list(m.children())]
    i = leaves.index(name)
    return leaves[i - 1] if i > 0 else name


def neuron_model(bundle, layer: str, chans: Sequence[int] | int, size: int = 64, steps: int = 40,
                 lr: float | None = None, fourier: bool = False, jitter: int = 0, degrees: float = 0.0,
                 scale: tuple[float, float] | None = None, pre_relu: bool = True, l2: float = 0.0, centre=0.5,
                 blur_every: int = 0, blur_sigma: float = 0.5, seed: int = 0, progress: bool = False) -> Optimized:
    """One image per entry of ``chans``, image i maximising the mean activation of channel
    ``chans[i]`` of ``layer`` (a ``named_modules()`` name or a paper name such as 'conv3_3').

    ``pre_relu`` (default): maximise the input of the layer's ReLU (``before_relu``), as Olah et
    al. do: a channel that is zero everywhere after its ReLU at the start has no gradient at all.

    ``fourier``: optimise a decorrelated Fourier spectrum (``FourierImage``, Olah et al. 2017)
    instead of the pixels. Transformation robustness: ``jitter`` (pixels), ``degrees`` (random
    rotation in +-degrees) and ``scale`` (random scale range), re-drawn every step. ``l2`` and
    blur work as in ``class_model`` (blur only for pixels). ``lr`` defaults to 0.05 for the
    spectrum and 0.02 for pixels. Returns an ``Optimized`` record (``start``/``end``: the mean
    activation per image).
    """
    ch = _targets(chans)
    obj = channels(before_relu(bundle, layer) if pre_relu else layer, ch)
    g = torch.Generator().manual_seed(seed)
    if fourier:
        param = FourierImage(len(ch), size, generator=g, device=bundle.device)
    else:
        param = PixelImage.random(len(ch), size, generator=g, device=bundle.device)
    penalty, every = _pieces(bundle, obj, l2, centre, blur_every, blur_sigma, 0.0, 0.0, 1)
    transforms = []
    if jitter > 0:
        transforms.append(Jitter(jitter))
    if degrees > 0 or scale is not None:
        transforms.append(RandomAffine(degrees=degrees, scale=tuple(scale) if scale is not None else (1.0, 1.0)))
    lr = lr if lr is not None else (0.05 if fourier else 0.02)
    r = optimize(bundle, obj, param, steps=steps, lr=lr, transforms=transforms, penalty=penalty, every=every,
                 seed=seed, progress=progress, desc=f"{bundle.name}: {layer}")
    how = "Fourier (decorrelated)" if fourier else "pixels"
    robust = [f"jitter {jitter}px"] if jitter > 0 else []
    robust += [f"rotate {degrees:g} deg"] if degrees > 0 else []
    robust += [f"scale {scale[0]:g}-{scale[1]:g}"] if scale is not None else []
    what = f"{layer} channel c" + (f" (before its ReLU: {obj.name.split()[0]})" if pre_relu else "")
    r.objective = f"{what}, mean over positions; {how}" + (f", {', '.join(robust)}" if robust else "")
    return r


# --------------------------------------------------------------------------------------------
# Reading the result
# --------------------------------------------------------------------------------------------
@dataclass
class ClassReport:
    """Per image: the target's logit, the mean of the other logits, the largest other logit (the
    runner-up) and the target's softmax probability."""
    target: torch.Tensor
    others: torch.Tensor
    runner_up: torch.Tensor
    prob: torch.Tensor

    def mean(self) -> tuple[float, float, float, float]:
        """(target, others, runner_up, prob), each averaged over the images."""
        return (float(self.target.mean()), float(self.others.mean()), float(self.runner_up.mean()),
                float(self.prob.mean()))


@torch.no_grad()
def class_report(bundle, images: torch.Tensor, classes: Sequence[int] | int | None = None) -> ClassReport:
    """Logit of class ``classes[i]`` for image i, the mean of its other logits, and p(class) (CPU)."""
    names = bundle.require_classes("class_report")
    cls = torch.as_tensor(list(range(len(names))) if classes is None else _targets(classes))
    logits = bundle(images).float().cpu()
    idx = torch.arange(len(images))
    target = logits[idx, cls]
    others = (logits.sum(1) - target) / (logits.shape[1] - 1)
    runner_up = logits.index_put((idx, cls), torch.tensor(float("-inf"))).amax(1)
    return ClassReport(target=target, others=others, runner_up=runner_up, prob=logits.softmax(1)[idx, cls])
