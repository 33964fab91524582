"""Guided backpropagation (Springenberg et al. 2015) and the deconvnet (Zeiler & Fergus 2014).

All three are the gradient of one number (a class score, or one unit of a layer) with respect to
the input image; they differ only in what the backward pass does at each ReLU. With x the ReLU's
input and g the gradient arriving from above:

- ``vanilla``:   g * [x > 0]            (the true gradient, chapter 5's saliency)
- ``deconvnet``: max(g, 0)              (Zeiler & Fergus: the "reversed ReLU" ignores x)
- ``guided``:    max(g, 0) * [x > 0]    (Springenberg et al.: both masks at once)

The backward rules are implemented by swapping every ``nn.ReLU`` module (in-place ones included)
for a ``ModifiedReLU`` whose ``torch.autograd.Function`` has the chosen backward, inside a
``lib.hooks.patch`` block that puts the original modules back on exit, exceptions included.
A ReLU applied functionally (``F.relu``/``torch.relu`` inside a ``forward``) cannot be swapped:
it is detected during the forward pass and raises ``ReLUPatchError`` instead of silently
returning vanilla gradients there.
"""
from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import CourseError, NoClassesError
from .targets import check_images, per_image, resolve_targets
from ..hooks import capture, frozen, patch, resolve_layer

__all__ = ["guided_backprop", "guided_backprop_map", "gradient_map", "gradient_image", "ModifiedReLU",
           "modified_relus", "ReLUPatchError", "RULES"]

#: The backward rules at a ReLU: the plain gradient, Zeiler & Fergus's deconvnet, guided backprop.
RULES = ("vanilla", "guided", "deconvnet")


class ReLUPatchError(CourseError, TypeError):
    """A model's ReLUs cannot all be swapped (none are ``nn.ReLU`` modules, or some are functional)."""


class _ModifiedReLUFunction(torch.autograd.Function):
    """relu(x) forward; the backward of ``rule`` ('guided' or 'deconvnet')."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rule: str) -> torch.Tensor:
        ctx.rule = rule
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        if ctx.rule == "deconvnet":
            return grad.clamp(min=0), None          # positive gradients, whatever the input was
        if ctx.rule == "guided":
            return grad.clamp(min=0) * (x > 0).to(grad.dtype), None   # positive gradients at positive inputs
        return grad * (x > 0).to(grad.dtype), None  # 'vanilla': the true ReLU gradient


class ModifiedReLU(nn.Module):
    """A drop-in for ``nn.ReLU`` with the backward pass of ``rule`` (never in-place)."""

    def __init__(self, rule: str = "guided"):
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; choose one of {RULES}")
        self.rule = rule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ModifiedReLUFunction.apply(x, self.rule)

    def extra_repr(self) -> str:
        return f"rule={self.rule!r}"


_FUNCTIONAL_RELUS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}


class _FunctionalReLUSpy(TorchFunctionMode):
    """Counts ReLUs applied as functions (``F.relu``, ``torch.relu``, ``x.relu()``) while active."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _FUNCTIONAL_RELUS:
            self.calls += 1
        return func(*args, **(kwargs or {}))


def _out_of_place(module: nn.Module) -> nn.Module:
    """A shallow copy of ``module`` with ``inplace=False`` (the original keeps its flag)."""
    new = copy.copy(module)
    new.inplace = False
    return new


def _replacements(model: nn.Module, rule: str) -> dict[str, nn.Module]:
    """{name: new module}: ReLUs -> ModifiedReLU(rule) (unless 'vanilla'), other in-place modules out of place.

    In-place modules are replaced too, so that a captured layer output is never overwritten by the
    next module (a conv followed by ReLU(inplace=True) would otherwise hand back the ReLU's output).
    """
    new = {}
    for name, m in model.named_modules():
        if not name:
            continue
        if rule != "vanilla" and isinstance(m, nn.ReLU):
            new[name] = ModifiedReLU(rule)
        elif getattr(m, "inplace", False) is True and not list(m.children()):
            new[name] = _out_of_place(m)
    return new


@contextlib.contextmanager
def modified_relus(model: nn.Module, rule: str = "guided"):
    """Inside the block every ``nn.ReLU`` of ``model`` back-propagates with ``rule``; restored on exit.

    Yields a spy whose ``calls`` counts functional ReLUs (``F.relu``...) seen during the block,
    which the swap cannot reach. Raises ``ReLUPatchError`` when the model has no ``nn.ReLU`` at all.
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {RULES}")
    if rule != "vanilla" and not any(isinstance(m, nn.ReLU) for n, m in model.named_modules() if n):
        raise ReLUPatchError(
            f"{type(model).__name__} has no nn.ReLU modules, so the {rule!r} rule has nothing to patch (its "
            f"ReLUs, if any, are applied functionally with F.relu/torch.relu). Rewrite its forward with "
            f"nn.ReLU modules, or use rule='vanilla' for the plain gradient.")
    with patch(model, _replacements(model, rule)), _FunctionalReLUSpy() as spy:
        yield spy


def _unit_objective(a: torch.Tensor, channel, reduce: str) -> torch.Tensor:
    """Sum over the batch of each image's unit: channel ``channel`` (None or N indices) of ``a``,
    max or sum over space."""
    n, c = a.shape[0], a.shape[1]
    flat = a.reshape(n, c, -1)
    if channel is None:   # each image's most active channel
        ch = flat.detach().amax(2).argmax(1)
    else:
        ch = channel.to(a.device)
        if (ch < 0).any() or (ch >= c).any():
            raise ValueError(f"channel out of range: the layer has {c} channels (0..{c - 1})")
    unit = flat[torch.arange(n, device=a.device), ch]          # N x (h*w)
    if reduce == "max":
        return unit.amax(1).sum()
    if reduce == "sum":
        return unit.sum()
    raise ValueError(f"unknown reduce {reduce!r}; choose 'max' or 'sum'")


def guided_backprop(bundle, x: torch.Tensor, target=None, layer: str | None = None, channel=None,
                    rule: str = "guided", reduce: str = "max", batch_size: int = 64) -> torch.Tensor:
    """Gradient images of a class score or of one unit, with the ReLU backward of ``rule``.

    - ``rule``: 'guided' (Springenberg et al.), 'deconvnet' (Zeiler & Fergus) or 'vanilla' (plain gradient).
    - A class score: ``target`` = class index per image (int, list or tensor; default the predicted class).
    - A unit: ``layer`` (a ``named_modules()`` name or the module) and ``channel`` (int or one per image;
      default each image's most active channel). ``reduce='max'`` (default) takes the channel's
      strongest activation over space, the single neuron Zeiler & Fergus project back; ``'sum'``
      takes the whole map.

    Returns the gradient with respect to the display-space input, N x 3 x H x W on the CPU, raw
    (signed, not normalised): ``gradient_image`` makes it displayable, ``gradient_map`` makes N x H x W.
    One forward and one backward pass per ``batch_size`` images; parameters are frozen, so no
    parameter ``.grad`` is touched.
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {RULES}")
    check_images(x)
    if layer is None and channel is not None:
        raise ValueError("channel needs a layer: give layer='features.26' (say) as well")
    if layer is not None and target is not None:
        raise ValueError("give either target (a class score) or layer/channel (a unit of a layer), not both")
    if layer is None and bundle.classes is None:
        raise NoClassesError(f"the bundle {bundle.name!r} has no classes: explain a unit instead, "
                             f"e.g. guided_backprop(bundle, x, layer={bundle.layer()!r}, channel=0)")
    model, n = bundle.model, x.shape[0]
    name = resolve_layer(model, layer)[0] if layer is not None else None
    target, channel = per_image(target, n, "targets"), per_image(channel, n, "channels")
    grads = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.enable_grad())
        stack.enter_context(frozen(model))
        spy = stack.enter_context(modified_relus(model, rule))
        rec = stack.enter_context(capture(model, name)) if name is not None else None
        for b in range(0, n, batch_size):
            xin = x[b:b + batch_size].detach().to(bundle.device).requires_grad_(True)
            out = bundle(xin)
            if rule != "vanilla" and spy.calls:
                raise ReLUPatchError(
                    f"{type(model).__name__} applies {spy.calls} ReLU(s) functionally (F.relu/torch.relu in "
                    f"a forward), which the {rule!r} rule cannot patch: the result would be partly the "
                    f"vanilla gradient. Use a model built from nn.ReLU modules, or rule='vanilla'.")
            if name is None:
                t = resolve_targets(None if target is None else target[b:b + batch_size], out)
                objective = out.gather(1, t[:, None]).sum()         # images are independent: sum = batch
            else:
                objective = _unit_objective(rec[name], None if channel is None else channel[b:b + batch_size],
                                            reduce)
            (grad,) = torch.autograd.grad(objective, xin)
            grads.append(grad.detach().cpu())
    return torch.cat(grads)


def gradient_map(grads: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W gradients -> N x H x W maps: max over colour channels of |g| (raw, not normalised)."""
    return grads.detach().abs().amax(1).cpu()


def gradient_image(grads: torch.Tensor, percentile: float = 99.0) -> torch.Tensor:
    """Signed gradients -> displayable images in [0, 1]: grey is 0, brighter/darker colours are +/-.

    Each image is divided by its own ``percentile`` of |g| (so a few extreme pixels do not wash the
    rest out), clipped to [-1, 1] and mapped to 0.5 + 0.5 g (for display only).
    """
    g = grads.detach().float().cpu()
    scale = torch.quantile(g.abs().flatten(1), percentile / 100, dim=1).clamp_min(1e-12)
    return 0.5 + 0.5 * (g / scale.view(-1, 1, 1, 1)).clamp(-1, 1)


def guided_backprop_map(bundle, x: torch.Tensor, target=None, rule: str = "guided", **kwargs) -> torch.Tensor:
    """``gradient_map(guided_backprop(...))``: an N x H x W map, like every other attribution method.

    ``kwargs``: ``layer``, ``channel``, ``reduce``, ``batch_size``, as for ``guided_backprop``.
    """
    return gradient_map(guided_backprop(bundle, x, target=target, rule=rule, **kwargs))
