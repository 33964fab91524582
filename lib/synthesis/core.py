"""The one optimisation loop behind every "what does the network want?" picture (Parts III and IV).

Class models, neuron visualisation, fooling images, feature inversion, DeepDream, texture
synthesis and style transfer all optimise an *image* against a frozen model. They differ only in
four choices, which are the four pieces of this module:

- a **parameterisation**: what the optimiser changes (``PixelImage``: the pixels themselves;
  ``FourierImage``: a decorrelated, frequency-scaled spectrum, after Olah et al. 2017). Calling it
  gives display-space images, N x 3 x H x W in [0, 1];
- an **objective**: a number per image to *maximise* (``class_score``, ``channel``,
  ``layer_energy``, or any ``Objective``; objectives add, subtract and scale);
- **transforms** applied before the model sees the image, re-drawn every step (``Jitter``,
  ``RandomAffine``: transformation robustness);
- an **optimiser** (Adam, SGD, L-BFGS, or ``NormalizedStep``, DeepDream's step divided by the
  gradient's mean absolute value), plus penalties (e.g. ``total_variation``) and callbacks run
  every k steps (e.g. blurring the pixels).

``optimize`` runs the loop with the model frozen (eval mode, no parameter gradients; both restored
on exit, exceptions included) and returns an ``Optimized`` record: the image, the objective per
image at the start and the end, and its history.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from tqdm.auto import tqdm

from .. import hooks

__all__ = ["check_rgb", "PixelImage", "FourierImage", "photo_colour_sqrt", "Objective", "activation", "activations", "class_score", "channel",
           "layer_energy", "Jitter", "RandomAffine", "NormalizedStep", "total_variation", "optimize", "Optimized"]


# --------------------------------------------------------------------------------------------
# Parameterisations
# --------------------------------------------------------------------------------------------
def check_rgb(x: torch.Tensor, who: str) -> torch.Tensor:
    """``x``, after checking that it is a batch of display-space RGB images (N x 3 x H x W);
    otherwise a ``ValueError`` that says, for ``who``, what to pass instead."""
    if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{who} wants display-space images N x 3 x H x W in [0, 1], got {shape}; a single "
                         f"image (3 x H x W) is x[None]; load one with lib.images.load(path, size=...)")
    return x


class PixelImage:
    """The image is the parameter: display-space pixels, clamped to [0, 1] after every step."""

    def __init__(self, init: torch.Tensor):
        check_rgb(init, "PixelImage")
        self.pixels = init.detach().clone().float().clamp(0, 1).requires_grad_(True)

    @classmethod
    def random(cls, n: int, size: int | tuple[int, int], sd: float = 0.05, mean: float = 0.5,
               generator: torch.Generator | None = None, device=None) -> "PixelImage":
        """Gray images with a little Gaussian noise (``mean`` +- ``sd``)."""
        h, w = (size, size) if isinstance(size, int) else size
        noise = torch.randn(n, 3, h, w, generator=generator) * sd + mean
        return cls(noise.to(device) if device is not None else noise)

    def parameters(self) -> list[torch.Tensor]:
        return [self.pixels]

    def __call__(self) -> torch.Tensor:
        return self.pixels

    @torch.no_grad()
    def project(self) -> None:
        """Put the parameter back into the valid range (after each optimiser step)."""
        self.pixels.clamp_(0, 1)

    def image(self) -> torch.Tensor:
        """The current images, detached, on the CPU."""
        return self().detach().clamp(0, 1).cpu()


class FourierImage:
    """An image parameterised by its 2-D spectrum, scaled by 1/frequency^decay, with colours
    decorrelated (Olah et al. 2017, "Feature Visualization"): every frequency learns at a similar
    rate, so gradient ascent stops favouring high-frequency noise. A sigmoid keeps pixels in (0, 1).

    The colour matrix is the square root of the colour covariance of natural photos (``colour``:
    3 x 3 with columns the principal colour directions scaled by the square root of their
    variance); the default is measured on the course's photos by ``photo_colour_sqrt``.
    """

    def __init__(self, n: int, size: int | tuple[int, int], sd: float = 0.01, decay: float = 1.0,
                 decorrelate: bool = True, generator: torch.Generator | None = None, device=None):
        self.h, self.w = (size, size) if isinstance(size, int) else size
        fy = torch.fft.fftfreq(self.h)[:, None]
        fx = torch.fft.rfftfreq(self.w)[None, :]
        freqs = (fx ** 2 + fy ** 2).sqrt().clamp(min=1.0 / max(self.h, self.w))
        self.scale = (1.0 / freqs ** decay * math.sqrt(self.h * self.w) / max(self.h, self.w)).to(device)
        spectrum = torch.randn(n, 3, self.h, self.w // 2 + 1, 2, generator=generator) * sd
        self.spectrum = spectrum.to(device).requires_grad_(True)
        self.colour = photo_colour_sqrt().to(device) if decorrelate else None

    def parameters(self) -> list[torch.Tensor]:
        return [self.spectrum]

    def __call__(self) -> torch.Tensor:
        spec = torch.view_as_complex(self.spectrum) * self.scale
        x = torch.fft.irfft2(spec, s=(self.h, self.w), norm="ortho")
        if self.colour is not None:
            x = torch.einsum("ij,njhw->nihw", self.colour, x)
        return torch.sigmoid(x)

    def project(self) -> None:   # the sigmoid already keeps pixels in range
        pass

    def image(self) -> torch.Tensor:
        with torch.no_grad():
            return self().cpu()


_COLOUR_SQRT: torch.Tensor | None = None
#: The photos (data/images) whose colour statistics ``photo_colour_sqrt`` measures.
PHOTOS = ("astronaut", "chelsea", "coffee", "grace_hopper")


def photo_colour_sqrt() -> torch.Tensor:
    """Square root of the RGB covariance of the course's photos (``PHOTOS``), normalised so its
    largest column has norm 1: the map from decorrelated to RGB colour used by ``FourierImage``."""
    global _COLOUR_SQRT
    if _COLOUR_SQRT is None:
        from .. import data, images

        paths = [data.DATA_DIR / "images" / f"{n}.jpg" for n in PHOTOS]
        pixels = torch.cat([images.load(p, size=128)[0].flatten(1) for p in paths], dim=1).double()
        cov = torch.cov(pixels)
        vals, vecs = torch.linalg.eigh(cov)
        sqrt = vecs * vals.clamp(min=0).sqrt()
        _COLOUR_SQRT = (sqrt / sqrt.norm(dim=0).max()).float()
    return _COLOUR_SQRT


# --------------------------------------------------------------------------------------------
# Objectives: a value per image, to maximise
# --------------------------------------------------------------------------------------------
@dataclass
class Objective:
    """``fn(bundle, x) -> (N,)`` for display-space ``x``; ``name`` says what it is in titles and
    printouts. Objectives combine: ``a + b``, ``a - b``, ``2.0 * a``, ``-a``."""
    fn: Callable[..., torch.Tensor]
    name: str

    def __call__(self, bundle, x: torch.Tensor) -> torch.Tensor:
        return self.fn(bundle, x)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(lambda b, x: self(b, x) + other(b, x), f"{self.name} + {other.name}")

    def __sub__(self, other: "Objective") -> "Objective":
        return Objective(lambda b, x: self(b, x) - other(b, x), f"{self.name} - {other.name}")

    def __rmul__(self, k: float) -> "Objective":
        return Objective(lambda b, x: k * self(b, x), f"{k:g} * ({self.name})")

    def __neg__(self) -> "Objective":
        return Objective(lambda b, x: -self(b, x), f"-({self.name})")


def activation(bundle, layer: str, x: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` (a ``named_modules()`` name, or a paper name the bundle maps, such
    as 'conv4_3' for the VGG16 bundles) for display-space ``x``; the forward pass stops there."""
    name = bundle.layers.get(layer, layer)
    return hooks.output_of(bundle.model, name, bundle.preprocess(x.to(bundle.device)))


def activations(bundle, layers: Sequence[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The outputs of several ``layers`` (names as for ``activation``) from one forward pass that
    stops after the last of them; a dict keyed by the names as given."""
    names = {layer: bundle.layers.get(layer, layer) for layer in layers}
    model = bundle.model
    with hooks.capture(model, list(names.values())) as rec, hooks.stop_after(model, list(names.values())):
        with contextlib.suppress(hooks.StopForward):
            model(bundle.preprocess(x.to(bundle.device)))
    return {layer: rec.activations[name] for layer, name in names.items()}


def class_score(c: int) -> Objective:
    """S_c(I): the unnormalised score (logit) of class ``c``."""
    return Objective(lambda b, x: b(x)[:, c], f"score of class {c}")


def channel(layer: str, c: int) -> Objective:
    """Mean activation of channel ``c`` of ``layer`` over all positions."""
    return Objective(lambda b, x: activation(b, layer, x)[:, c].mean((-2, -1)), f"{layer} channel {c}")


def layer_energy(layer: str) -> Objective:
    """mean(A^2) over a layer's activations (DeepDream's objective)."""
    return Objective(lambda b, x: activation(b, layer, x).pow(2).flatten(1).mean(1), f"mean({layer}^2)")


# --------------------------------------------------------------------------------------------
# Transforms (re-drawn every step) and penalties
# --------------------------------------------------------------------------------------------
@dataclass
class Jitter:
    """Roll the image by up to ``pixels`` in x and y (wrapping around), a fresh shift every step."""
    pixels: int

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        dy, dx = (torch.randint(-self.pixels, self.pixels + 1, (2,), generator=g)).tolist()
        return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))


@dataclass
class RandomAffine:
    """Random scale in ``scale`` and rotation in +-``degrees`` (bilinear, differentiable)."""
    degrees: float = 5.0
    scale: tuple[float, float] = (0.95, 1.05)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        u = torch.rand(2, generator=g).tolist()
        angle = (2 * u[0] - 1) * self.degrees
        s = self.scale[0] + u[1] * (self.scale[1] - self.scale[0])
        return TF.affine(x, angle=angle, translate=[0, 0], scale=s, shear=[0.0, 0.0],
                         interpolation=TF.InterpolationMode.BILINEAR)


def total_variation(x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """TV^beta per image: sum over pixels of ((dx)^2 + (dy)^2)^(beta / 2) (Mahendran & Vedaldi 2015),
    divided by the number of pixels; returns (N,)."""
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx ** 2 + dy ** 2 + 1e-8).pow(beta / 2).flatten(1).sum(1) / x[0, 0].numel()


class NormalizedStep(torch.optim.Optimizer):
    """Gradient *ascent on the objective* as DeepDream does it: each image moves by
    ``lr * g / mean(|g|)`` (per image), so the step size is in pixel units whatever the layer."""

    def __init__(self, params, lr: float = 0.01):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    scale = p.grad.abs().flatten(1).mean(1).clamp(min=1e-12).view(-1, *[1] * (p.dim() - 1))
                    p.sub_(group["lr"] * p.grad / scale)   # the loss is -objective: descending it ascends


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
@dataclass
class Optimized:
    """What ``optimize`` returns: ``image`` (N x 3 x H x W, CPU, in [0, 1]), the objective per
    image at the ``start`` and the ``end`` (evaluated without transforms), and ``history`` (mean
    objective at every step, as the optimiser saw it)."""
    image: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor
    history: list[float] = field(default_factory=list)
    objective: str = ""
    model: str = ""

    @property
    def gain(self) -> torch.Tensor:
        """end / start per image (how many times the objective grew)."""
        return self.end / self.start


def _optimizer(name: str, params, lr: float, steps: int):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "normalized":
        return NormalizedStep(params, lr=lr)
    if name == "lbfgs":
        return torch.optim.LBFGS(params, lr=lr, max_iter=steps, max_eval=steps, history_size=50,
                                 tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    raise ValueError(f"unknown optimizer {name!r}: choose 'adam', 'sgd', 'normalized' or 'lbfgs'")


def optimize(bundle, objective: Objective, param, steps: int = 100, lr: float = 0.05,
             optimizer: str = "adam", transforms: Sequence[Callable] = (),
             penalty: Callable[[torch.Tensor], torch.Tensor] | None = None,
             every: Sequence[tuple[int, Callable]] = (), seed: int = 0, progress: bool = True,
             desc: str | None = None) -> Optimized:
    """Maximise ``objective(bundle, transforms(param()))`` minus ``penalty(param())``.

    ``param``: a ``PixelImage`` or ``FourierImage`` (or anything with ``parameters()``,
    ``__call__()``, ``project()`` and ``image()``). ``transforms``: callables ``t(x, generator)``
    applied in order each step (seeded by ``seed``). ``penalty``: ``(N,)`` per image, subtracted.
    ``every``: ``(k, fn)`` pairs, ``fn(param)`` run without gradients after every k-th step (e.g.
    blur the pixels). ``optimizer``: 'adam', 'sgd', 'normalized' (``NormalizedStep``) or 'lbfgs'
    (then ``steps`` counts function evaluations, and transforms must be empty: L-BFGS's line
    search needs the same function at every evaluation).

    The model is frozen meanwhile (``hooks.frozen``: eval mode, no parameter gradients, both
    restored on exit). Returns an ``Optimized`` record.
    """
    if optimizer == "lbfgs" and transforms:
        raise ValueError("L-BFGS needs a deterministic objective: drop the random transforms, or use 'adam'")
    g = torch.Generator().manual_seed(seed)
    history: list[float] = []

    def value(x: torch.Tensor) -> torch.Tensor:
        for t in transforms:
            x = t(x, g)
        return objective(bundle, x)

    def loss_fn() -> torch.Tensor:
        img = param()
        v = value(img)
        history.append(v.mean().item())
        loss = -v.sum()
        if penalty is not None:
            loss = loss + penalty(img).sum()
        return loss

    with hooks.frozen(bundle.model):
        with torch.no_grad():
            start = objective(bundle, param()).detach().cpu()
        opt = _optimizer(optimizer, param.parameters(), lr, steps)
        bar = tqdm(total=steps, desc=desc or objective.name, disable=not progress, mininterval=1, leave=False)
        try:
            if optimizer == "lbfgs":
                def closure():
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn()
                    loss.backward()
                    bar.update(1)
                    return loss
                opt.step(closure)
                param.project()   # L-BFGS does not project between evaluations: the result is projected once
            else:
                for step in range(steps):
                    opt.zero_grad(set_to_none=True)
                    loss_fn().backward()
                    opt.step()
                    param.project()
                    with torch.no_grad():
                        for k, fn in every:
                            if (step + 1) % k == 0:
                                fn(param)
                                param.project()
                    bar.update(1)
        finally:
            bar.close()
            for p in param.parameters():
                p.grad = None
        with torch.no_grad():
            end = objective(bundle, param()).detach().cpu()
    return Optimized(image=param.image(), start=start, end=end, history=history, objective=objective.name,
                     model=bundle.name)
