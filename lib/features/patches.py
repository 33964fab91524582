"""Receptive fields and maximally activating patches (Girshick et al. 2014; Zeiler & Fergus 2014).

A unit of a conv layer is one channel at one spatial position (y, x) of that layer's output. It
sees only a square of the input, its *receptive field* (RF). Walking the modules in forward order,
with r the RF size, j the jump (distance in input pixels between neighbouring units, the product
of the strides so far) and a the input coordinate where the RF of unit 0 starts (per axis):

    r_l = r_{l-1} + (k_l - 1) * d_l * j_{l-1}      (k: kernel, d: dilation)
    j_l = j_{l-1} * s_l                            (s: stride)
    a_l = a_{l-1} - p_l * j_{l-1}                  (p: padding before the first row/column)

starting from r_0 = 1, j_0 = 1, a_0 = 0. Unit (y, x) then covers rows a + y*j ... a + y*j + r - 1
and the same for columns; near the borders part of that lies outside the image (in the padding),
so ``RF.box`` clips it.

``top_activations`` runs the model once over a set of images (batched, under ``no_grad``) and keeps,
for every channel, the k images whose *maximum* over positions is largest: each image is counted
at most once per channel (at its best position), so the k patches come from k different images and
are not k shifted copies of one peak. ``max_activating_patches`` crops those units' receptive
fields, padded to the full RF size so that the patches of border units line up with the others.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import CourseError
from ..hooks import StopForward, capture, frozen, resolve_layer, stop_after

__all__ = ["RF", "ReceptiveFieldError", "receptive_field", "TopActivations", "top_activations",
           "crop_patches", "max_activating_patches", "effective_receptive_field"]


class ReceptiveFieldError(CourseError, ValueError):
    """The receptive field of a layer cannot be computed by walking the model's modules."""


#: Modules that act on each position on its own (in eval mode): they leave the RF unchanged.
POINTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU,
             nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus,
             nn.BatchNorm2d, nn.Dropout, nn.Dropout2d, nn.Identity, nn.LocalResponseNorm)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


@dataclass(frozen=True)
class RF:
    """The receptive field of the units of one layer, per axis (rows, columns).

    ``size``: side of the RF in input pixels; ``jump``: input pixels between neighbouring units
    (the layer's total stride); ``start``: input coordinate of the first row/column seen by unit
    (0, 0) (negative when it reaches into the padding). After a dilated convolution the RF has
    holes (the pixels between the taps are skipped): ``size`` and the boxes are its bounding box.
    """
    layer: str
    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]

    def span(self, y: int, x: int) -> tuple[int, int, int, int]:
        """Unclipped (x0, y0, x1, y1) of unit (y, x), x1/y1 exclusive; may reach outside the image."""
        y0 = self.start[0] + int(y) * self.jump[0]
        x0 = self.start[1] + int(x) * self.jump[1]
        return x0, y0, x0 + self.size[1], y0 + self.size[0]

    def box(self, y: int, x: int, image_size: int | Sequence[int]) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of unit (y, x) clipped to an image of ``image_size`` (side or (H, W)).

        x1/y1 are exclusive, as for the canvases' boxes, so ``image[..., y0:y1, x0:x1]`` is the patch.
        """
        h, w = _pair(image_size)
        x0, y0, x1, y1 = self.span(y, x)
        return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)

    def boxes(self, positions: torch.Tensor, image_size: int | Sequence[int]) -> torch.Tensor:
        """Clipped boxes (K x 4: x0, y0, x1, y1) of units at ``positions`` (K x 2: y, x)."""
        return torch.tensor([self.box(y, x, image_size) for y, x in positions.view(-1, 2).tolist()],
                            dtype=torch.long).view(-1, 4)

    def center(self, y: int, x: int) -> tuple[float, float]:
        """Input coordinates (y, x) of the centre of unit (y, x)'s RF."""
        x0, y0, x1, y1 = self.span(y, x)
        return (y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2

    def centers(self, positions: torch.Tensor, image_size: int | Sequence[int]) -> torch.Tensor:
        """The input pixel (y, x) at the centre of the RF of each unit at ``positions`` (... x 2: y, x),
        rounded down and clipped to the image: index an image or mask with it."""
        h, w = _pair(image_size)
        pos = positions.long()
        c = pos * torch.tensor(self.jump) + torch.tensor(self.start) + (torch.tensor(self.size) - 1) // 2
        return torch.stack([c[..., 0].clamp(0, h - 1), c[..., 1].clamp(0, w - 1)], -1)

    def __str__(self) -> str:
        def fmt(t):
            return str(t[0]) if t[0] == t[1] else f"{t[0]}x{t[1]}"
        return (f"{self.layer}: receptive field {self.size[0]}x{self.size[1]} px, "
                f"jump (stride) {fmt(self.jump)} px, start {fmt(self.start)}")


def _geometry(name: str, m: nn.Module) -> tuple[tuple[int, int], ...] | None:
    """(kernel, stride, padding-before, dilation) pairs of a module, or None if it is pointwise."""
    if isinstance(m, POINTWISE):
        return None
    if isinstance(m, nn.Conv2d):
        if m.padding_mode == "circular":
            raise ReceptiveFieldError(f"{name} uses circular padding: its border units also see the opposite "
                                      f"border, which a receptive-field box cannot express")
        k, s, d = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
        if m.padding == "valid":
            p = (0, 0)
        elif m.padding == "same":  # PyTorch pads total // 2 before, the rest after
            p = tuple(di * (ki - 1) // 2 for ki, di in zip(k, d))
        else:
            p = _pair(m.padding)
        return k, s, p, d
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        k = _pair(m.kernel_size)
        s = _pair(m.stride if m.stride is not None else m.kernel_size)
        d = _pair(getattr(m, "dilation", 1))
        return k, s, _pair(m.padding), d
    if isinstance(m, (nn.ZeroPad2d, nn.ConstantPad2d)):
        left, _right, top, _bottom = m.padding
        return (1, 1), (1, 1), (top, left), (1, 1)
    hint = ""
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear, nn.Flatten)):
        hint = (" Its geometry depends on the input size (global pooling or a fully connected layer: "
                "a unit there sees the whole image). Choose a conv layer before it.")
    raise ReceptiveFieldError(f"cannot compute the receptive field through {name} ({type(m).__name__}): "
                              f"only Conv2d, MaxPool2d, AvgPool2d, zero padding and pointwise layers "
                              f"(ReLU, BatchNorm, Dropout...) are supported.{hint}")


def _leaves(prefix: str, m: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules a Sequential-style container runs, in order; refuses containers with a custom forward."""
    if isinstance(m, nn.Sequential):
        out = []
        for child_name, child in m.named_children():
            out += _leaves(f"{prefix}.{child_name}" if prefix else child_name, child)
        return out
    if len(list(m.children())) and not isinstance(m, POINTWISE):
        raise ReceptiveFieldError(
            f"{prefix} is a {type(m).__name__}, a module with its own forward() (it may branch, like a "
            f"ResNet block or an Inception/Fire module), so the receptive field cannot be found by walking "
            f"it. receptive_field walks Sequential trunks such as gapnet's or VGG's `features`.")
    return [(prefix, m)]


def _chain(model: nn.Module, layer: str) -> list[tuple[str, nn.Module]]:
    """The modules that run, in order, from the input up to and including ``layer``.

    Inside an ``nn.Sequential`` the children run one after the other. A model with its own
    ``forward`` is assumed to feed its input to its *first* child (as gapnet, VGG, AlexNet do with
    ``features``); reaching a layer through any other child is refused.
    """
    parts = layer.split(".")
    chain: list[tuple[str, nn.Module]] = []
    m, prefix = model, ""
    for depth, part in enumerate(parts):
        names = [n for n, _ in m.named_children()]
        here = f"{prefix}.{part}" if prefix else part
        if isinstance(m, nn.Sequential):
            for n, child in m.named_children():
                if n == part:
                    break
                chain += _leaves(f"{prefix}.{n}" if prefix else n, child)
        elif depth == 0 and names and names[0] == part:
            pass  # the model's own forward starts with its first child (e.g. `features`)
        else:
            where = type(model).__name__ if depth == 0 else f"{prefix} ({type(m).__name__})"
            first = f" (it is only assumed to start with its first child {names[0]!r})" if depth == 0 and names else ""
            raise ReceptiveFieldError(
                f"cannot walk {where} to reach {layer!r}: its forward() is its own, not an nn.Sequential{first}, "
                f"so what runs before {here!r} is unknown (it may branch, or come after global pooling). "
                f"receptive_field follows Sequential trunks such as gapnet's and VGG/AlexNet's `features.N`; "
                f"choose a layer there, or pass an nn.Sequential.")
        m, prefix = getattr(m, part), here
    return chain + _leaves(prefix, m)


def receptive_field(model, layer: str | nn.Module) -> RF:
    """The receptive field of the units of ``layer`` in ``model`` (an nn.Module or a bundle).

    Computed exactly from the kernels, strides, paddings and dilations of the modules that run
    before it, walked in forward order. Supported: Sequential trunks (gapnet's and VGG/AlexNet's
    ``features.N``, any ``nn.Sequential``) of Conv2d, MaxPool2d, AvgPool2d, zero padding and
    pointwise layers. Anything else (branches, global pooling, linear layers) raises
    ``ReceptiveFieldError``; an unknown name raises ``LayerNotFoundError``.
    """
    model = getattr(model, "model", model)
    name, _ = resolve_layer(model, layer)
    r, j, a = [1, 1], [1, 1], [0, 0]
    for mod_name, m in _chain(model, name):
        geo = _geometry(mod_name, m)
        if geo is None:
            continue
        k, s, p, d = geo
        for i in range(2):  # rows, columns
            r[i] += (k[i] - 1) * d[i] * j[i]
            a[i] -= p[i] * j[i]
            j[i] *= s[i]
    return RF(name, tuple(r), tuple(j), tuple(a))


# --------------------------------------------------------------------------- top activations
@dataclass
class TopActivations:
    """The k strongest units of each channel of ``layer`` over a set of images.

    For an int ``channel``: ``indices`` (k,) image indices, ``positions`` (k x 2: y, x in the
    activation map), ``values`` (k,), best first. For several channels, one row per entry of
    ``channels``: (C x k), (C x k x 2), (C x k). ``map_size`` is the (h, w) of the activation map,
    ``n_images`` and ``image_size`` (H, W) describe the images searched.
    Unpacks as ``indices, positions, values = tops``.
    """
    layer: str
    channels: tuple[int, ...] | int
    indices: torch.Tensor
    positions: torch.Tensor
    values: torch.Tensor
    map_size: tuple[int, int]
    n_images: int
    image_size: tuple[int, int] = field(default=(0, 0))

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.indices, self.positions, self.values))

    def select(self, channel: int) -> "TopActivations":
        """The result for one channel (an int ``channels``)."""
        if isinstance(self.channels, int):
            if channel != self.channels:
                raise KeyError(f"these top activations are for channel {self.channels} only, not {channel}")
            return self
        if channel not in self.channels:
            raise KeyError(f"channel {channel} was not searched; searched: {len(self.channels)} channels "
                           f"({self.channels[0]}..{self.channels[-1]})")
        i = self.channels.index(channel)
        return TopActivations(self.layer, channel, self.indices[i], self.positions[i], self.values[i],
                              self.map_size, self.n_images, self.image_size)


@torch.no_grad()
def top_activations(bundle, images: torch.Tensor, layer: str | Sequence[str],
                    channel: int | Sequence[int] | None = None, k: int = 9, batch_size: int = 250,
                    progress: bool = False):
    """The k units of ``channel`` of ``layer`` with the largest activations over display-space ``images``.

    Each image counts once per channel, at its maximum over positions (ties: first in row-major
    order), so the k results come from k different images; ties between images go to the lower
    index. ``channel``: an int, a list, or None (all channels). ``layer`` may be a list of names:
    then all are searched in one pass over the images and a dict {layer: TopActivations} is
    returned. The forward pass stops after the last wanted layer. Results are on the CPU.
    ``progress=True`` shows a tqdm bar over the batches.
    """
    single_layer = isinstance(layer, (str, nn.Module))
    model = bundle.model
    names = [resolve_layer(model, l)[0] for l in ([layer] if single_layer else layer)]
    n = len(images)
    if n == 0:
        raise ValueError("no images given: top_activations needs at least one image")
    k_eff = min(k, n)
    best: dict[str, list[torch.Tensor]] = {}
    chans: dict[str, torch.Tensor] = {}
    map_size: dict[str, tuple[int, int]] = {}
    with frozen(model), capture(model, names, detach=True) as rec, stop_after(model, names) as seen:
        for start in tqdm(range(0, n, batch_size), disable=not progress, desc="top activations"):
            seen.clear()
            try:
                bundle(images[start:start + batch_size])
            except StopForward:
                pass
            for name in names:
                act = rec.activations[name]
                if name not in chans:
                    c_all = act.shape[1]
                    sel = (list(range(c_all)) if channel is None
                           else [channel] if isinstance(channel, int) else list(channel))
                    bad = [c for c in sel if not 0 <= c < c_all]
                    if bad:
                        raise IndexError(f"channel {bad[0]} out of range: {name} has {c_all} channels (0..{c_all - 1})")
                    chans[name] = torch.tensor(sel, device=act.device)
                    map_size[name] = tuple(act.shape[-2:])
                a = (act if channel is None else act.index_select(1, chans[name])).flatten(2)  # N x C x hw
                v, pos = a.max(2)                                        # best position of each image
                idx = torch.arange(start, start + len(a), device=a.device).expand_as(v.T)
                cand = [v.T.float().cpu(), idx.cpu(), pos.T.cpu()]        # C x N each
                if name in best:
                    cand = [torch.cat([old, new], 1) for old, new in zip(best[name], cand)]
                order = torch.sort(cand[0], dim=1, descending=True, stable=True).indices[:, :k_eff]
                best[name] = [t.gather(1, order) for t in cand]
            rec.activations.clear()
    out = {}
    for name in names:
        vals, idx, pos = best[name]
        w = map_size[name][1]
        positions = torch.stack([pos // w, pos % w], -1)
        sel = chans[name].tolist()
        single = isinstance(channel, int)
        out[name] = TopActivations(name, sel[0] if single else tuple(sel), idx[0] if single else idx,
                                   positions[0] if single else positions, vals[0] if single else vals,
                                   map_size[name], n, tuple(images.shape[-2:]))
    return out[names[0]] if single_layer else out


# --------------------------------------------------------------------------- patches
def crop_patches(images: torch.Tensor, rf: RF, indices: torch.Tensor, positions: torch.Tensor,
                 pad_value: float = 0.5) -> torch.Tensor:
    """The receptive fields of units ``positions`` (... x 2: y, x) in images ``indices`` (...).

    Returns ... x 3 x size_h x size_w: every patch has the full RF size; the part of the RF that
    lies outside the image (in the network's padding) is filled with ``pad_value``, so the
    patches of border units line up with the others.
    """
    lead = indices.shape
    idx, pos = indices.reshape(-1).tolist(), positions.reshape(-1, 2).tolist()
    h, w = images.shape[-2:]
    out = torch.full((len(idx), images.shape[1], *rf.size), float(pad_value), dtype=images.dtype)
    for t, (i, (y, x)) in enumerate(zip(idx, pos)):
        x0, y0, x1, y1 = rf.span(y, x)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if cx1 > cx0 and cy1 > cy0:
            out[t, :, cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = images[i, :, cy0:cy1, cx0:cx1].cpu()
    return out.view(*lead, images.shape[1], *rf.size)


def max_activating_patches(bundle, images: torch.Tensor, layer: str, channel: int | Sequence[int] | None = None,
                           k: int = 9, batch_size: int = 250, pad_value: float = 0.5,
                           tops: TopActivations | None = None) -> torch.Tensor:
    """Input patches (receptive fields) of the k strongest units of ``channel`` of ``layer``.

    Returns k x 3 x r x r for an int channel, C x k x 3 x r x r for several (r: the RF size),
    padded with ``pad_value`` where the RF leaves the image. Pass ``tops`` (from
    ``top_activations``) to reuse a search instead of running the model again.
    """
    if tops is None:
        tops = top_activations(bundle, images, layer, channel, k=k, batch_size=batch_size)
    if tops.n_images != len(images):
        raise ValueError(f"tops were searched over {tops.n_images} images but {len(images)} were given: "
                         f"pass the same images to crop the patches from")
    rf = receptive_field(bundle, tops.layer)
    if isinstance(channel, int) and not isinstance(tops.channels, int):
        tops = tops.select(channel)
    elif channel is not None and not isinstance(channel, int):
        sel = [tops.select(c) for c in channel]
        return torch.stack([crop_patches(images, rf, t.indices, t.positions, pad_value) for t in sel])
    return crop_patches(images, rf, tops.indices, tops.positions, pad_value)


def effective_receptive_field(bundle, images: torch.Tensor, layer: str, channel: int | None = None,
                              position: tuple[int, int] | None = None) -> torch.Tensor:
    """Luo et al. (2016): mean over ``images`` of |d unit / d input| (summed over colours), H x W.

    The unit is ``channel`` (default: the sum over all channels) at ``position`` (default: the
    centre of the activation map). Its support is the receptive field, but most of the gradient
    sits in a much smaller, roughly Gaussian, central region: the *effective* receptive field.
    """
    model = bundle.model
    name, _ = resolve_layer(model, layer)
    x = images.to(bundle.device).clone().requires_grad_(True)
    with frozen(model), capture(model, name) as rec, stop_after(model, name):
        try:
            bundle(x)
        except StopForward:
            pass
        act = rec.activations[name]
        y, xx = position if position is not None else (act.shape[-2] // 2, act.shape[-1] // 2)
        unit = act[:, :, y, xx] if channel is None else act[:, channel, y, xx]
        (g,) = torch.autograd.grad(unit.sum(), x)
    return g.abs().sum(1).mean(0).detach().cpu()
