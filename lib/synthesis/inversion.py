"""Feature inversion (Mahendran & Vedaldi 2015): which image has these features?

Given the representation ``Phi0 = Phi(x0)`` of a photo at one layer, find an image ``x`` whose
features match it, starting from noise:

    x* = argmin_x  ||Phi(x) - Phi0||^2 / ||Phi0||^2  +  lambda_TV TV^beta(x)  [+ lambda_alpha N_alpha(x)]

The first term is the *relative* feature error (0: the features match exactly; about 1: as far as
an image with no content). ``TV^beta`` (``core.total_variation``) is the natural-image prior that
keeps the result smooth; the optional alpha-norm ``N_alpha(x) = mean over pixels of
sum_c |2 x - 1|^alpha`` keeps pixels away from the ends of the range. The reconstruction shows what
the layer keeps of the photo (and what it has thrown away: whatever the optimiser may change
without changing the features).

Everything runs through ``core.optimize``: the objective is *minus* the relative feature error (so
``Optimized.start``/``.end`` are minus the error before and after), the priors are its penalty.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch

from .. import hooks
from .core import Jitter, Objective, Optimized, PixelImage, activation, check_rgb, optimize, total_variation
from .style import content_loss

__all__ = ["feature_target", "feature_error", "alpha_norm", "invert", "inversion_errors", "InversionErrors",
           "DEFAULT_LR"]

#: Step size per optimiser: L-BFGS's line search scales its steps itself (1.0 is its natural unit);
#: Adam's is in pixel units ([0, 1] display space) per step.
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.05, "sgd": 1.0, "normalized": 0.01}


def _check_image(image: torch.Tensor) -> torch.Tensor:
    return check_rgb(image, "feature inversion").detach().float().clamp(0, 1)


@torch.no_grad()
def feature_target(bundle, image: torch.Tensor, layer: str) -> torch.Tensor:
    """Phi(x0): the activations of ``layer`` for display-space ``image`` (detached, on the bundle's
    device), computed in eval mode. ``layer``: a ``named_modules()`` name or a paper name such as
    'conv3_3' that the bundle maps."""
    with hooks.frozen(bundle.model):
        return activation(bundle, layer, _check_image(image)).detach().clone()


def feature_error(layer: str, target: torch.Tensor) -> Objective:
    """The objective of inversion: minus the relative feature error per image,
    ``-||Phi(x) - Phi0||^2 / ||Phi0||^2`` (to maximise; 0 is a perfect match): style transfer's
    content loss (``style.content_loss``) at ``layer``."""

    def fn(bundle, x: torch.Tensor) -> torch.Tensor:
        return -content_loss(activation(bundle, layer, x), target)

    return Objective(fn, f"-||Phi(x) - Phi(x0)||^2 / ||Phi(x0)||^2 at {layer}")


def alpha_norm(x: torch.Tensor, alpha: float = 6.0) -> torch.Tensor:
    """N_alpha(x) per image: the mean over pixels of sum_c |2 x - 1|^alpha, i.e. the alpha-norm of
    the image centred on mid-gray and scaled to [-1, 1] (Mahendran & Vedaldi's range prior). It is
    about 0 for mid-gray pixels and 1 per channel at black or white; returns (N,)."""
    return (2 * x - 1).abs().pow(alpha).sum(1).flatten(1).mean(1)


def invert(bundle, image: torch.Tensor, layer: str, tv_weight: float | torch.Tensor = 1.0, beta: float = 2.0,
           alpha: float | None = None, alpha_weight: float = 0.1, steps: int = 80, optimizer: str = "lbfgs",
           lr: float | None = None, jitter: int = 0, init_sd: float = 0.05, seed: int = 0,
           progress: bool = False) -> Optimized:
    """Reconstruct ``image`` (N x 3 x H x W in [0, 1]) from its features at ``layer``, from noise.

    Minimises ``||Phi(x) - Phi(x0)||^2 / ||Phi(x0)||^2 + tv_weight * TV^beta(x)``
    (+ ``alpha_weight * alpha_norm(x, alpha)`` when ``alpha`` is given) over the pixels of ``x``,
    which start as mid-gray plus Gaussian noise of standard deviation ``init_sd`` (drawn from
    ``seed``). ``tv_weight`` may be a tensor of N weights (one per image).

    ``optimizer``: 'lbfgs' (default: ``steps`` counts function evaluations; deterministic, no step
    size to tune) or 'adam' (``steps`` steps of size ``lr``, pixels clamped to [0, 1] after each;
    ``jitter`` > 0 rolls the image by up to that many pixels at every step, which only Adam
    allows). With L-BFGS the N images of a batch are solved as one problem (one line search), so a
    batch is close to, not equal to, N single calls.

    Returns ``core.Optimized``: ``image`` in [0, 1] on the CPU, ``start``/``end`` = minus the
    relative feature error of the starting noise and of the (clamped) result, ``history`` = minus
    the error at every evaluation. The model is frozen meanwhile and restored afterwards.
    """
    x0 = _check_image(image)
    if optimizer == "lbfgs" and jitter:
        raise ValueError("L-BFGS needs the same function at every evaluation: use jitter=0, or optimizer='adam'")
    target = feature_target(bundle, x0, layer)
    objective = feature_error(layer, target)
    tvw = torch.as_tensor(tv_weight, dtype=torch.float32, device=bundle.device)
    if tvw.dim() == 1 and len(tvw) != len(x0):
        raise ValueError(f"tv_weight has {len(tvw)} values for {len(x0)} images: give one number, or one per image")

    def penalty(x: torch.Tensor) -> torch.Tensor:
        p = tvw * total_variation(x, beta)
        if alpha is not None:
            p = p + alpha_weight * alpha_norm(x, alpha)
        return p

    g = torch.Generator().manual_seed(seed)
    param = PixelImage.random(len(x0), tuple(x0.shape[-2:]), sd=init_sd, generator=g, device=bundle.device)
    r = optimize(bundle, objective, param, steps=steps, lr=DEFAULT_LR[optimizer] if lr is None else lr,
                 optimizer=optimizer, transforms=[Jitter(jitter)] if jitter else [], penalty=penalty, seed=seed,
                 progress=progress, desc=f"inverting {layer}")
    return dataclasses.replace(r, objective=f"invert {layer} (TV^{beta:g} weight {_fmt(tv_weight)}, {optimizer})")


def _fmt(w) -> str:
    w = torch.as_tensor(w)
    return f"{w.item():g}" if w.numel() == 1 else "[" + ", ".join(f"{v:g}" for v in w.tolist()) + "]"


class InversionErrors(NamedTuple):
    """How good a reconstruction is, per image: ``feature``, the relative feature error
    ||Phi(x) - Phi(x0)||^2 / ||Phi(x0)||^2; ``pixel``, the RMSE to the original in [0, 1] units."""
    feature: torch.Tensor
    pixel: torch.Tensor


def inversion_errors(bundle, result: Optimized | torch.Tensor, image: torch.Tensor, layer: str) -> InversionErrors:
    """Relative feature error at ``layer`` and pixel RMSE of a reconstruction (an ``Optimized`` or an
    image batch) against the original ``image``; both (N,) on the CPU."""
    x = result.image if isinstance(result, Optimized) else result
    x, x0 = _check_image(x), _check_image(image)
    if x.shape[-2:] != x0.shape[-2:]:
        raise ValueError(f"the reconstruction is {tuple(x.shape[-2:])} pixels but the original is "
                         f"{tuple(x0.shape[-2:])}: compare images of the same size")
    target = feature_target(bundle, x0, layer)
    with hooks.frozen(bundle.model), torch.no_grad():
        feature = -feature_error(layer, target)(bundle, x.to(bundle.device)).cpu()
    pixel = (x.cpu() - x0.cpu()).pow(2).flatten(1).mean(1).sqrt()
    return InversionErrors(feature=feature, pixel=pixel)
