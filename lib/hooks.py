"""Context managers that look inside a model and always undo what they did.

- ``capture(model, layers)``: record the outputs (and, optionally, the gradients) of named layers.
- ``patch(model, {name: new_module})``: swap modules in, put the originals back on exit.
- ``frozen(model)``: eval mode and ``requires_grad=False`` on all parameters, restored on exit.

Activations are captured with *forward* hooks and gradients with ``tensor.register_hook`` on the
captured output: module backward hooks break on in-place ReLUs (pytorch#61519), which
torchvision's VGG and ResNet use. Everything is removed on exit, exceptions included.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn

from .errors import LayerNotFoundError, close_matches

__all__ = ["resolve_layer", "capture", "Capture", "patch", "frozen", "count_hooks", "stop_after", "StopForward",
           "output_of"]


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """(name, module) for a dotted ``named_modules()`` name or a module object of ``model``.

    An unknown name raises ``LayerNotFoundError`` listing close matches.
    """
    modules = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, m in modules.items():
            if m is layer:
                return name, m
        raise LayerNotFoundError(f"the module {type(layer).__name__} given as layer is not part of "
                                 f"this {type(model).__name__}")
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a name (str) or a module, not {type(layer).__name__}")
    if layer not in modules or layer == "":
        names = [n for n in modules if n]
        raise LayerNotFoundError(
            f"{type(model).__name__} has no layer {layer!r}. Close matches: {close_matches(layer, names)}. "
            f"lib.models.list_layers(model) lists all {len(names)} layer names.")
    return layer, modules[layer]


@dataclass
class Capture:
    """What ``capture`` recorded: ``activations[name]`` and ``gradients[name]`` (latest call)."""
    activations: dict[str, torch.Tensor] = field(default_factory=dict)
    gradients: dict[str, torch.Tensor] = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.activations[name]


@contextlib.contextmanager
def capture(model: nn.Module, layers: str | nn.Module | Sequence[str | nn.Module],
            gradients: bool = False, detach: bool = False, leaf: bool = False) -> Iterator[Capture]:
    """Record the outputs of ``layers`` on every forward pass inside the ``with`` block.

    ``gradients=True`` also records d(output)/d(layer output) when ``backward`` runs.
    ``detach=True`` stores detached copies (what the layer output, even if an in-place ReLU then
    overwrites it); keep it False to call ``torch.autograd.grad`` on the captured tensor, and then
    capture a layer that no in-place operation follows (e.g. the ReLU itself, not the conv before it).
    ``leaf=True`` is for ``torch.autograd.grad`` on the captured tensors A when nothing below them
    requires a gradient (parameters frozen, input not a leaf): an A that does not require one is made
    a leaf that does, so autograd records nothing below the first captured layer and a backward pass
    stops there; the rest of the network gets a copy of A, so no in-place operation after a layer can
    overwrite it. An A above another captured layer (already in the graph) is kept as it is.
    """
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    rec = Capture()
    handles = []
    try:
        for layer in layers:
            name, module = resolve_layer(model, layer)

            def hook(_m, _inp, out, name=name):
                whole = out
                if isinstance(out, (tuple, list)):
                    out = out[0]
                if leaf:
                    if not out.requires_grad and out.is_floating_point():
                        out = out.detach().requires_grad_(True)
                    rec.activations[name] = out
                    if isinstance(whole, torch.Tensor):                  # the network goes on with a copy
                        return out.clone()
                    if type(whole) in (tuple, list):
                        return type(whole)([out.clone(), *whole[1:]])
                    return None                     # a tuple subclass (namedtuple): passed on as it was
                # detached copies are cloned: a following ReLU(inplace=True) would overwrite the output
                rec.activations[name] = out.detach().clone() if detach else out
                if gradients and out.requires_grad:
                    out.register_hook(lambda g, name=name: rec.gradients.__setitem__(name, g.detach()))

            handles.append(module.register_forward_hook(hook))
        yield rec
    finally:
        for h in handles:
            h.remove()


class StopForward(Exception):
    """Raised by ``stop_after``'s hook to end a forward pass early; catch it around the call."""


@contextlib.contextmanager
def stop_after(model: nn.Module, layers: str | nn.Module | Sequence[str | nn.Module]) -> Iterator[set]:
    """Inside the ``with`` block, a forward pass of ``model`` raises ``StopForward`` as soon as all of
    ``layers`` have run, so nothing after them is computed (faster, and no later in-place operation
    can overwrite what ``capture`` recorded). Yields the set of layer names seen so far: clear it
    before each pass. The hooks are removed on exit, exceptions included::

        with capture(model, "features.9", detach=True) as rec, stop_after(model, "features.9") as seen:
            seen.clear()
            with contextlib.suppress(StopForward):
                model(x)
    """
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    names = [resolve_layer(model, layer) for layer in layers]
    wanted = {name for name, _ in names}
    seen: set = set()
    handles = []

    def hook(_m, _inp, _out, name):
        seen.add(name)
        if seen >= wanted:
            raise StopForward

    try:
        for name, module in names:
            handles.append(module.register_forward_hook(lambda m, i, o, name=name: hook(m, i, o, name)))
        yield seen
    finally:
        for h in handles:
            h.remove()


def output_of(model: nn.Module, layer: str | nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` when ``model`` runs on ``x`` (model space); the pass stops right there.

    Not detached, so it can be differentiated. Raises ``LayerNotFoundError`` when the forward pass
    never runs the layer.
    """
    name, _ = resolve_layer(model, layer)
    with capture(model, name) as rec, stop_after(model, name):
        with contextlib.suppress(StopForward):
            model(x)
    if name not in rec.activations:
        raise LayerNotFoundError(f"layer {name!r} did not run in the forward pass of {type(model).__name__}: the "
                                 f"model never ran it, so choose a layer that it calls (lib.models.list_layers lists them)")
    return rec.activations[name]


@contextlib.contextmanager
def patch(model: nn.Module, replacements: Mapping[str, nn.Module]) -> Iterator[nn.Module]:
    """Replace submodules by name inside the ``with`` block; the originals come back on exit."""
    originals: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        for name, new in replacements.items():
            _, old = resolve_layer(model, name)
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, new)
            originals.append((parent, child, old))
        yield model
    finally:
        for parent, child, old in reversed(originals):
            setattr(parent, child, old)


@contextlib.contextmanager
def frozen(model: nn.Module, eval_mode: bool = True) -> Iterator[nn.Module]:
    """Eval mode and ``requires_grad=False`` on every parameter; modes and flags restored on exit.

    Gradients then flow only to the input (and activations), which is all a visualisation needs.
    """
    modes = {m: m.training for m in model.modules()}
    flags = {p: p.requires_grad for p in model.parameters()}
    try:
        if eval_mode and any(modes.values()):
            model.eval()
        for p, flag in flags.items():
            if flag:
                p.requires_grad_(False)
        yield model
    finally:                                       # only what differs: Module.__setattr__ is slow
        for m, mode in modes.items():
            if m.training != mode:
                m.training = mode
        for p, flag in flags.items():
            if p.requires_grad != flag:
                p.requires_grad_(flag)


def count_hooks(model: nn.Module) -> int:
    """How many forward/backward hooks are registered on the modules of ``model`` (0 when clean)."""
    n = 0
    for m in model.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            n += len(getattr(m, attr, {}) or {})
    return n
