"""Adversarial examples and fooling images (chapter 11).

The same gradient ascent as a class model (chapter 10), started from a correctly classified image
instead of noise, flips the label with a change too small to see (Szegedy et al. 2014); started
from noise, it makes images the network labels with near certainty and we cannot recognise
(Nguyen et al. 2015).

- ``fgsm``: one signed gradient step, x' = x + eps sign(grad_x J) (Goodfellow et al. 2015);
  ``fgsm_direction`` is the sign of the gradient alone, so one gradient serves every eps.
- ``iterative_fgsm``: small signed steps, each followed by a projection back into the eps-ball
  around x and into [0, 1] (Kurakin et al. 2017; the ``EpsBall`` parameterisation).
- ``targeted_ascent``: Adam on log p_target(x') - lambda ||x' - x||^2, the penalised form of
  Szegedy et al.'s "smallest change that makes the network say class t".
- ``fooling_images``: the same from uniform noise, until p_target >= 0.99.

The iterative attacks run on ``lib.synthesis.core.optimize`` (the one loop). The loop runs a fixed
number of steps; the objective it is given here is a ``_FlipTracker``, which evaluates the model
only on the images that have not reached their target yet, keeps each image as it was at its
first success (the smallest change along its path) and counts the steps it took. So an image
costs nothing once it has flipped, and a batch costs about as much as its slowest images need.

Every function returns an ``Attack`` record (images on the CPU in display space, the originals,
the targets, the class probabilities of the result, the steps taken); its properties give the
change (``delta``, ``l2``, ``linf``) and ``success``; ``attack_table`` prints a comparison.
The model is frozen while an attack runs and left as it was found, exceptions included.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .. import hooks
from ..errors import CourseError
from .core import Objective, PixelImage, check_rgb, optimize

__all__ = ["AttackTargetError", "Attack", "EpsBall", "adversarial_objective", "next_class", "least_likely",
           "correctly_classified", "fgsm_direction", "fgsm", "iterative_fgsm", "targeted_ascent",
           "fooling_images", "attack_table"]


class AttackTargetError(CourseError, ValueError):
    """An attack was given target classes it cannot use (out of range, or the wrong number)."""


# --------------------------------------------------------------------------------------------
# Objectives J(x, t), computed from the logits z = f(x); each is to be *maximised*
# --------------------------------------------------------------------------------------------
def _log_prob(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """log p_t = z_t - logsumexp(z): minus the cross-entropy loss of class t."""
    return z.log_softmax(1).gather(1, t[:, None])[:, 0]


def _score(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """z_t: the unnormalised score (logit) of class t."""
    return z.gather(1, t[:, None])[:, 0]


def _margin(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """z_t - max_{k != t} z_k: positive exactly when the network predicts t."""
    other = z.scatter(1, t[:, None], float("-inf")).amax(1)
    return _score(z, t) - other


_OBJECTIVES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "log_prob": _log_prob, "score": _score, "margin": _margin}
_NAMES = {"log_prob": "log p_t", "score": "z_t", "margin": "z_t - max other z"}


def _kind(objective: str) -> str:
    if objective not in _OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}: choose one of {', '.join(map(repr, _OBJECTIVES))}")
    return objective


def _targets(bundle, target, n: int) -> torch.Tensor:
    """Target classes as a LongTensor (n,) on the CPU; an int applies to every image."""
    classes = bundle.require_classes("an attack")
    t = torch.as_tensor(target).long().flatten().cpu()
    if t.numel() == 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise AttackTargetError(f"got {t.numel()} target classes for {n} images: give one class per image, "
                                f"or a single int for all of them")
    bad = (t < 0) | (t >= len(classes))
    if bad.any():
        raise AttackTargetError(f"target class {int(t[bad][0])} is out of range: {bundle.name} has "
                                f"{len(classes)} classes, 0..{len(classes) - 1} ({', '.join(classes[:4])}, ...)")
    return t


def adversarial_objective(target, objective: str = "log_prob", n: int | None = None) -> Objective:
    """An ``Objective`` for ``lib.synthesis.optimize`` with a target class per image: 'log_prob'
    (log p_t, minus the cross-entropy), 'score' (the logit z_t) or 'margin' (z_t - max_{k!=t} z_k)."""
    fn = _OBJECTIVES[_kind(objective)]

    def value(b, x):
        t = _targets(b, target, len(x) if n is None else n).to(b.device)
        return fn(b(x), t)

    return Objective(value, _NAMES[objective])


def _images(x: torch.Tensor) -> torch.Tensor:
    return check_rgb(x, "an attack").detach().float().cpu()


@torch.no_grad()
def _probs(bundle, x: torch.Tensor, batch_size: int = 100) -> torch.Tensor:
    """Softmax probabilities (CPU) with the model frozen (eval mode, restored after)."""
    with hooks.frozen(bundle.model):
        return torch.cat([bundle(x[i:i + batch_size]).softmax(1).cpu() for i in range(0, len(x), batch_size)])


def next_class(labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """(label + 1) mod K: a target that is never the true class."""
    return (torch.as_tensor(labels).long() + 1) % num_classes


def least_likely(bundle, x: torch.Tensor) -> torch.Tensor:
    """The class each image is *least* likely to be (Kurakin et al.'s hardest target)."""
    return _probs(bundle, _images(x)).argmin(1)


def correctly_classified(bundle, images: torch.Tensor, labels: torch.Tensor, n: int, size: int | None = None,
                         batch_size: int = 100) -> torch.Tensor:
    """Indices of the first ``n`` images (in order) that ``bundle`` classifies correctly, looking at as
    few as needed; ``size``: resize them first (e.g. 112 for ``vgg16-cam``). Fewer if there are none left."""
    from ..images import resize

    found: list[torch.Tensor] = []
    count = 0
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        pred = _probs(bundle, resize(x, size) if size else x).argmax(1)
        hits = torch.nonzero(pred == torch.as_tensor(labels[i:i + batch_size])).flatten() + i
        found.append(hits)
        count += len(hits)
        if count >= n:
            break
    return torch.cat(found)[:n]


# --------------------------------------------------------------------------------------------
# The record every attack returns
# --------------------------------------------------------------------------------------------
@dataclass
class Attack:
    """What an attack returns. ``image``: the adversarial images (N x 3 x H x W, CPU, in [0, 1]);
    ``original``: where they started; ``target``: the class asked for (for an untargeted attack,
    ``targeted=False``, the class to move away from); ``probs``: N x K class probabilities of
    ``image``; ``steps``: updates until the first success (-1: none within ``budget`` steps);
    ``passes``: images the model was run on (forward passes, the cost). ``attack[i:j]`` slices it."""
    image: torch.Tensor
    original: torch.Tensor
    target: torch.Tensor
    probs: torch.Tensor
    steps: torch.Tensor
    budget: int
    method: str
    model: str
    objective: str = ""
    targeted: bool = True
    passes: int = 0

    def __len__(self) -> int:
        return len(self.image)

    def __getitem__(self, idx) -> "Attack":
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return Attack(self.image[idx], self.original[idx], self.target[idx], self.probs[idx], self.steps[idx],
                      self.budget, self.method, self.model, self.objective, self.targeted, self.passes)

    @property
    def pred(self) -> torch.Tensor:
        """The predicted class of each adversarial image."""
        return self.probs.argmax(1)

    @property
    def prob(self) -> torch.Tensor:
        """The probability of the predicted class."""
        return self.probs.amax(1)

    @property
    def success(self) -> torch.Tensor:
        """True where the network now says the target (targeted) or anything else (untargeted)."""
        return self.pred == self.target if self.targeted else self.pred != self.target

    @property
    def delta(self) -> torch.Tensor:
        """The change, image - original (N x 3 x H x W)."""
        return self.image - self.original

    @property
    def l2(self) -> torch.Tensor:
        """||delta||_2 per image, over all pixels and channels."""
        return self.delta.flatten(1).norm(dim=1)

    @property
    def linf(self) -> torch.Tensor:
        """max |delta| per image (the largest change of any pixel value)."""
        return self.delta.flatten(1).abs().amax(1)

    def summary(self) -> dict[str, float]:
        """Success rate; mean L2, RMS (L2 / sqrt(pixel values)), Linf and steps over the successes."""
        ok = self.success
        n_ok = int(ok.sum())
        mean = (lambda v: float(v[ok].float().mean())) if n_ok else (lambda v: float("nan"))
        return {"n": len(self), "success": n_ok / max(len(self), 1), "l2": mean(self.l2),
                "rms": mean(self.l2 / math.sqrt(self.image[0].numel())), "linf": mean(self.linf),
                "steps": mean(self.steps)}


def attack_table(attacks: dict[str, Attack] | Sequence[tuple[str, Attack]], note: str | None = None) -> str:
    """A text table comparing attacks ({row label: Attack}, or (label, Attack) pairs): the model,
    image size, number of images, success rate, and the mean L2, RMS (L2 / sqrt(pixel values)) and
    Linf of the change (Linf also in 8-bit levels) and steps, over the successful ones."""
    head = (f"{'attack':22s} {'model':10s} {'size':>5s} {'n':>4s} {'success':>8s} {'L2':>7s} {'RMS':>7s} "
            f"{'Linf':>6s} {'(x255)':>6s} {'steps':>6s}")
    lines = [head, "-" * len(head)]
    for label, a in (attacks.items() if isinstance(attacks, dict) else attacks):
        s = a.summary()
        if s["success"] == 0:      # nothing to average over
            sizes = f"{'-':>7s} {'-':>7s} {'-':>6s} {'-':>6s} {'-':>6s}"
        else:
            sizes = (f"{s['l2']:7.3f} {s['rms']:7.4f} {s['linf']:6.3f} {255 * s['linf']:6.1f} {s['steps']:6.1f}")
        lines.append(f"{label:22s} {a.model:10s} {a.image.shape[-1]:5d} {s['n']:4d} {s['success']:8.3f} {sizes}")
    if note:
        lines.append(note)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# FGSM: one signed gradient step
# --------------------------------------------------------------------------------------------
def fgsm_direction(bundle, x: torch.Tensor, target=None, objective: str = "log_prob", source=None) -> torch.Tensor:
    """sign(grad_x J) for display-space ``x`` (CPU, N x 3 x H x W, values -1, 0, 1).

    Targeted (``target``: int, list or tensor): J = J_t, the objective of the target class (default
    log p_t, so the step *lowers* the cross-entropy of t). Untargeted (``target=None``): J = -J_y for
    the class y = ``source`` (default: the predicted class), so with the default objective J is the
    cross-entropy of y, Goodfellow et al.'s J(theta, x, y).
    """
    x = _images(x)
    fn = _OBJECTIVES[_kind(objective)]
    dev = bundle.device
    with hooks.frozen(bundle.model):
        if target is None:
            y = _probs(bundle, x).argmax(1) if source is None else _targets(bundle, source, len(x))
            t, sign = y.to(dev), -1.0
        else:
            t, sign = _targets(bundle, target, len(x)).to(dev), 1.0
        xr = x.to(dev).requires_grad_(True)
        J = sign * fn(bundle(xr), t)
        grad, = torch.autograd.grad(J.sum(), xr)
    return grad.sign().cpu()


def fgsm(bundle, x: torch.Tensor, target=None, eps: float = 2 / 255, objective: str = "log_prob",
         source=None, direction: torch.Tensor | None = None) -> Attack:
    """The fast gradient sign method (Goodfellow et al. 2015): x' = clip(x + eps sign(grad_x J), 0, 1).

    ``target``, ``source``: as in ``fgsm_direction`` (``target=None``: untargeted, away from
    ``source``, by default the predicted class). ``direction``: a precomputed ``fgsm_direction``
    (to try several eps with one gradient).
    """
    x = _images(x)
    targeted = target is not None
    if targeted:
        t = _targets(bundle, target, len(x))
    else:
        t = _probs(bundle, x).argmax(1) if source is None else _targets(bundle, source, len(x))
    if direction is None:
        direction = fgsm_direction(bundle, x, target, objective, source=t)
    adv = (x + eps * direction).clamp(0, 1)
    probs = _probs(bundle, adv)
    ok = probs.argmax(1) == t if targeted else probs.argmax(1) != t
    return Attack(image=adv, original=x, target=t, probs=probs, steps=torch.where(ok, 1, -1), budget=1,
                  method=f"FGSM (eps {255 * eps:.3g}/255)", model=bundle.name, objective=_NAMES[objective],
                  targeted=targeted, passes=2 * len(x) + (0 if targeted or source is not None else len(x)))


# --------------------------------------------------------------------------------------------
# Iterative attacks on the shared loop
# --------------------------------------------------------------------------------------------
class EpsBall(PixelImage):
    """Pixels that stay within ``eps`` of ``origin`` (L-infinity) and in [0, 1]: after every step
    ``project`` clips them back, Kurakin et al.'s Clip_{x, eps}."""

    def __init__(self, origin: torch.Tensor, eps: float):
        super().__init__(origin)
        o = origin.detach().float().to(self.pixels.device)
        self.lo, self.hi = (o - eps).clamp(0, 1), (o + eps).clamp(0, 1)

    @torch.no_grad()
    def project(self) -> None:
        self.pixels.clamp_(min=self.lo, max=self.hi)


class _SignGrad(torch.autograd.Function):
    """Identity forward; backward keeps only the sign of the gradient. Placed in front of the model,
    it turns plain SGD with learning rate alpha into the signed step x + alpha sign(grad J)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g.sign()


class _FlipTracker:
    """An objective for ``optimize`` that watches for success.

    Each call (``optimize`` evaluates the objective once at the start, once per step on the current
    images, and once at the end) computes J_t only for the images still *active* (not yet at their
    target with probability >= ``min_prob``); an image that gets there is stored as it is (``first``
    image, the smallest change along its path) with the number of updates it took, and, if
    ``stop_at_success``, leaves the batch: its objective is 0 from then on, so it costs nothing.
    """

    def __init__(self, kind: str, target: torch.Tensor, origin: torch.Tensor, min_prob: float = 0.0,
                 sign_grad: bool = False, stop_at_success: bool = True):
        self.fn, self.t, self.min_prob = _OBJECTIVES[kind], target, min_prob
        self.sign_grad, self.stop_at_success = sign_grad, stop_at_success
        n = len(target)
        self.first = torch.full((n,), -1, dtype=torch.long)
        self.image = origin.detach().clone()
        self.probs = torch.zeros(n, 0)       # class probabilities of each image when last evaluated
        self.active = torch.ones(n, dtype=torch.bool)
        self.calls = 0
        self.passes = 0                      # images the model saw (forward passes, for cost accounting)

    def __call__(self, bundle, x: torch.Tensor) -> torch.Tensor:
        updates = max(self.calls - 1, 0)     # call 0: the start, call k >= 1: after k - 1 updates
        self.calls += 1
        out = x.flatten(1)[:, 0] * 0.0       # 0 for images that left the batch, still part of the graph
        if self.calls == 1:                  # the start: the first step sees the same images and checks them,
            return out                       # so skip this pass (optimize's ``start`` is then 0; unused here)
        if self.sign_grad and x.requires_grad:
            x = _SignGrad.apply(x)
            out = x.flatten(1)[:, 0] * 0.0
        idx = torch.nonzero(self.active if self.stop_at_success else torch.ones(len(x), dtype=torch.bool)).flatten()
        if len(idx) == 0:
            return out
        dev_idx = idx.to(x.device)
        z = bundle(x[dev_idx])
        self.passes += len(idx)
        t = self.t[dev_idx]
        with torch.no_grad():
            probs = z.softmax(1)
            if self.probs.shape[1] != probs.shape[1]:
                self.probs = torch.zeros(len(self.first), probs.shape[1])
            self.probs[idx] = probs.cpu()
            p = probs.gather(1, t[:, None])[:, 0]
            hit = ((z.argmax(1) == t) & (p >= self.min_prob)).cpu() & (self.first[idx] < 0)
            if hit.any():
                j = idx[hit]
                self.first[j] = updates
                self.image[j.to(self.image.device)] = x[dev_idx[hit.to(x.device)]].detach().to(self.image.device)
                self.active[j] = False
        return out.index_add(0, dev_idx, self.fn(z, t))


def _run(bundle, x0: torch.Tensor, target, param, kind: str, steps: int, lr: float, optimizer: str,
         method: str, min_prob: float = 0.0, sign_grad: bool = False, stop_at_success: bool = True,
         penalty=None, every=(), progress: bool = False, seed: int = 0) -> Attack:
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    t = _targets(bundle, target, len(x0))
    tracker = _FlipTracker(kind, t.to(bundle.device), x0.to(bundle.device), min_prob, sign_grad, stop_at_success)
    r = optimize(bundle, Objective(tracker, _NAMES[kind]), param, steps=steps, lr=lr, optimizer=optimizer,
                 penalty=penalty, every=every, seed=seed, progress=progress, desc=method)
    done = (tracker.first >= 0)[:, None, None, None]
    image = torch.where(done, tracker.image.cpu(), r.image) if stop_at_success else r.image
    # tracker.probs: each image as last evaluated (at its success, or at the end), no extra forward pass
    return Attack(image=image, original=x0.cpu(), target=t, probs=tracker.probs, steps=tracker.first,
                  budget=steps, method=method, model=r.model, objective=_NAMES[kind], passes=tracker.passes)


def iterative_fgsm(bundle, x: torch.Tensor, target, eps: float = 4 / 255, steps: int = 5,
                   alpha: float | None = None, objective: str = "log_prob", min_prob: float = 0.0,
                   stop_at_success: bool = True, trajectory: list | None = None, progress: bool = False) -> Attack:
    """Iterative FGSM (Kurakin et al. 2017): x_{n+1} = Clip_{x, eps}(x_n + alpha sign(grad_x J_t(x_n))).

    ``alpha`` defaults to 1.25 eps / steps (Kurakin et al.: alpha = 1/255 and min(eps + 4, 1.25 eps)
    steps in 8-bit levels, so the steps can reach the edge of the ball). Each image stops at its
    first success (``stop_at_success``); ``trajectory``: a list to append the images after every
    step to (CPU tensors), e.g. for a slider.
    """
    x0 = _images(x)
    alpha = 1.25 * eps / steps if alpha is None else alpha
    every = [(1, lambda p: trajectory.append(p.image()))] if trajectory is not None else []
    if trajectory is not None:
        trajectory.append(x0.cpu().clone())
    return _run(bundle, x0, target, EpsBall(x0.to(bundle.device), eps), _kind(objective), steps, alpha, "sgd",
                f"iterative FGSM (eps {255 * eps:.3g}/255)", min_prob=min_prob, sign_grad=True,
                stop_at_success=stop_at_success, every=every, progress=progress)


def targeted_ascent(bundle, x: torch.Tensor, target, steps: int = 20, lr: float = 0.003, l2: float = 1.0,
                    objective: str = "log_prob", min_prob: float = 0.0, stop_at_success: bool = True,
                    progress: bool = False) -> Attack:
    """The smallest change that makes the network say ``target``, by gradient ascent (Adam) on

        J_t(x') - l2 * ||x' - x||^2      (Szegedy et al. 2014, in penalised form)

    with x' kept in [0, 1]. Each image is kept at its first success (predicted class = target and
    p_target >= ``min_prob``), so the change is no larger than needed along its path.
    """
    x0 = _images(x)
    origin = x0.to(bundle.device)
    penalty = (lambda img: l2 * (img - origin).pow(2).flatten(1).sum(1)) if l2 else None
    return _run(bundle, x0, target, PixelImage(origin), _kind(objective), steps, lr, "adam",
                f"gradient ascent (lr {lr:g}, L2 {l2:g})", min_prob=min_prob, stop_at_success=stop_at_success,
                penalty=penalty, progress=progress)


def fooling_images(bundle, classes: Sequence[int] | torch.Tensor, size: int | None = None, steps: int = 100,
                   lr: float = 0.05, min_prob: float = 0.99, objective: str = "log_prob",
                   generator: torch.Generator | None = None, progress: bool = False) -> Attack:
    """Images from uniform noise that ``bundle`` labels ``classes`` with probability >= ``min_prob``
    (Nguyen et al. 2015): gradient ascent (Adam) on J_t, each image stopped at its first success.
    ``size`` defaults to the bundle's input size. ``original`` holds the noise they started from."""
    t = torch.as_tensor(classes).long().flatten()
    s = size or bundle.input_size
    noise = torch.rand(len(t), 3, s, s, generator=generator)
    return _run(bundle, noise, t, PixelImage(noise.to(bundle.device)), _kind(objective), steps, lr, "adam",
                f"fooling images (p >= {min_prob:g})", min_prob=min_prob, progress=progress)
