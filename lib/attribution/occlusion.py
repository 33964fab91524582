"""Occlusion (Zeiler & Fergus 2014): slide a grey square over the image and watch the class probability.

For every position of a ``window`` x ``window`` patch (moved by ``stride`` pixels), the patch is
filled with a neutral value, the occluded copy goes through the model, and the drop in the target
class's softmax probability is recorded. A pixel's value is the *average* drop over all windows
that cover it:

    M(i, j) = mean over windows W containing (i, j) of  p_c(x) - p_c(x with W occluded)

Windows start at 0, stride, 2 * stride, ... until the whole image is covered; the last window of
a row or column may stick out of the image and is then cut off. This is exactly what Captum's
``Occlusion`` computes (``sliding_window_shapes=(3, w, w)``, ``strides=s``), so the two agree.

Positive values: occluding the pixel lowers the probability (the pixel *supports* the class);
negative: occluding it raises the probability (it was evidence against the class).
"""
from __future__ import annotations

import math

import torch

from ..errors import CourseError
from ..images import gaussian_blur
from .targets import resolve_targets
from ..hooks import frozen

__all__ = ["occlusion", "occlusion_probs", "occlusion_passes", "occlusion_windows", "occlude", "fill_image",
           "OcclusionSettingsError", "FILLS"]

#: The named fills; a float in [0, 1] (a constant gray level) is accepted too.
FILLS = ("gray", "mean", "blur")


class OcclusionSettingsError(CourseError, ValueError):
    """A window, stride or fill that occlusion cannot use."""


def _pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise OcclusionSettingsError(f"{name} must be an int or a pair (height, width), got {v!r}")
        a, b = v
    else:
        a = b = v
    if isinstance(a, bool) or isinstance(b, bool) or int(a) != a or int(b) != b:
        raise OcclusionSettingsError(f"{name} must be whole pixels (an int or a pair of ints), got {v!r}")
    return int(a), int(b)


def _size(size) -> tuple[int, int]:
    if isinstance(size, torch.Tensor):
        size = tuple(size.shape[-2:])
    return _pair(size, "size")


def _starts(length: int, window: int, stride: int) -> list[int]:
    """Window starts along one axis: 0, s, 2s, ... until the windows cover ``length`` (Captum's rule)."""
    return [k * stride for k in range(math.ceil((length - window) / stride) + 1)]


def _check(size: tuple[int, int], window: tuple[int, int], stride: tuple[int, int]) -> None:
    (h, w), (wh, ww), (sh, sw) = size, window, stride
    if wh < 1 or ww < 1:
        raise OcclusionSettingsError(f"window must be at least 1 pixel, got {window}")
    if wh > h or ww > w:
        raise OcclusionSettingsError(
            f"window {wh}x{ww} is larger than the {h}x{w} image; use a window of at most {min(h, w)} pixels "
            f"(a tenth to a quarter of the image side is typical)")
    if sh < 1 or sw < 1:
        raise OcclusionSettingsError(f"stride must be at least 1 pixel, got {stride}; stride 1 moves the window "
                                     f"one pixel at a time (the finest, slowest map)")
    if (sh > wh and wh < h) or (sw > ww and ww < w):
        raise OcclusionSettingsError(
            f"stride {stride} is larger than the window {window}: some pixels would never be occluded and "
            f"would get no value. Use a stride of at most the window size (half the window is typical).")


def occlusion_windows(size, window=8, stride=4) -> list[tuple[int, int]]:
    """The (top, left) corner of every occluding window for an image of ``size`` (int, (H, W) or a tensor).

    A window starting at (top, left) covers rows top..top+window-1 and columns left..left+window-1,
    cut off at the image border.
    """
    size, window, stride = _size(size), _pair(window, "window"), _pair(stride, "stride")
    _check(size, window, stride)
    rows = _starts(size[0], window[0], stride[0])
    cols = _starts(size[1], window[1], stride[1])
    return [(t, l) for t in rows for l in cols]


def occlusion_passes(size, window=8, stride=4) -> int:
    """How many occluded copies (forward passes) one image needs: about (H / stride)^2.

    Exactly ``(ceil((H - window) / stride) + 1) * (ceil((W - window) / stride) + 1)``; ``occlusion``
    runs one more pass per image, for the unoccluded original.
    """
    return len(occlusion_windows(size, window, stride))


def fill_image(x: torch.Tensor, fill="gray", window=8) -> torch.Tensor:
    """What an occluded patch shows, as a full image (N x 3 x H x W): the pixels under a window are
    replaced by this image's pixels.

    ``fill``: ``"gray"`` (0.5), ``"mean"`` (each image's mean colour), ``"blur"`` (a Gaussian-blurred
    copy, sigma = half the window side, so detail at the scale of the window disappears but colour
    and coarse shading stay) or a float in [0, 1] (a constant gray level: 0 black, 1 white).
    """
    if isinstance(fill, str):
        if fill == "gray":
            return torch.full_like(x, 0.5)
        if fill == "mean":
            return x.mean((2, 3), keepdim=True).expand_as(x).clone()
        if fill == "blur":
            return gaussian_blur(x, max(_pair(window, "window")) / 2)
        raise OcclusionSettingsError(f"unknown fill {fill!r}; use one of {', '.join(map(repr, FILLS))} "
                                     f"or a float in [0, 1]")
    if isinstance(fill, (int, float)) and not isinstance(fill, bool):
        if not 0.0 <= float(fill) <= 1.0:
            raise OcclusionSettingsError(f"a constant fill is a display-space gray level in [0, 1], got {fill}")
        return torch.full_like(x, float(fill))
    raise OcclusionSettingsError(f"fill must be one of {', '.join(map(repr, FILLS))} or a float in [0, 1], "
                                 f"got a {type(fill).__name__}")


def occlude(x: torch.Tensor, top: int, left: int, window=8, fill="gray") -> torch.Tensor:
    """A copy of images ``x`` (N x 3 x H x W) with the window at (``top``, ``left``) filled."""
    wh, ww = _pair(window, "window")
    out = x.clone()
    out[..., top:top + wh, left:left + ww] = fill_image(x, fill, window)[..., top:top + wh, left:left + ww]
    return out


def _prepare(bundle, x: torch.Tensor, window, stride, fill, batch_size):
    bundle.require_classes("occlusion")
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected display-space images N x 3 x H x W, got shape {tuple(x.shape)}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise OcclusionSettingsError(f"batch_size must be a whole number of images, at least 1; got {batch_size!r}")
    windows = occlusion_windows(x.shape[-2:], window, stride)     # checks window and stride
    x = x.detach().to(bundle.device)
    return x, windows, fill_image(x, fill, window)                 # checks the fill


def _sweep(bundle, x, base, windows, window, batch_size: int, progress: bool):
    """Run every occluded copy (image n, window k) through the model, ``batch_size`` at a time.

    Yields (image indices, window indices, occluded-pixel masks B x H x W, softmax probabilities B x K).
    The caller holds ``torch.no_grad()`` and ``frozen(model)``.
    """
    from tqdm.auto import tqdm

    n, _, h, w = x.shape
    wh, ww = _pair(window, "window")
    device = x.device
    rows, cols = torch.arange(h, device=device), torch.arange(w, device=device)
    tops = torch.tensor([t for t, _ in windows], device=device)
    lefts = torch.tensor([l for _, l in windows], device=device)
    p = len(windows)
    jobs = n * p                                          # job j: image j // p, window j % p
    for start in tqdm(range(0, jobs, int(batch_size)), desc="occlusion", unit="batch", disable=not progress):
        j = torch.arange(start, min(start + int(batch_size), jobs), device=device)
        img, win = j // p, j % p
        r = (rows[None] >= tops[win, None]) & (rows[None] < tops[win, None] + wh)
        c = (cols[None] >= lefts[win, None]) & (cols[None] < lefts[win, None] + ww)
        mask = r[:, :, None] & c[:, None, :]              # B x H x W: the occluded pixels of each copy
        copies = torch.where(mask[:, None], base[img], x[img])
        yield img, win, mask, bundle(copies).softmax(1)


def occlusion_probs(bundle, x: torch.Tensor, window=8, stride=4, fill="gray", batch_size: int = 256,
                    progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Zeiler & Fergus's raw experiment: the class probabilities with the patch at each position.

    Returns ``(p, grid)``: ``p`` the softmax probabilities of the unoccluded images (N x K) and
    ``grid`` those of every occluded copy, N x R x C x K, where R x C are the window positions
    (rows of ``occlusion_windows``, in order). ``grid[n, r, c].argmax()`` is the most probable class
    with the patch at row r, column c (the paper's figure 7e). Same arguments as ``occlusion``.
    """
    x, windows, base = _prepare(bundle, x, window, stride, fill, batch_size)
    nr = len({t for t, _ in windows})
    nc = len(windows) // nr
    with torch.no_grad(), frozen(bundle.model):
        p0 = bundle(x).softmax(1)
        grid = torch.empty(len(x), len(windows), p0.shape[1], device=x.device)
        for img, win, _, probs in _sweep(bundle, x, base, windows, window, batch_size, progress):
            grid[img, win] = probs
    return p0.cpu(), grid.view(len(x), nr, nc, -1).cpu()


def occlusion(bundle, x: torch.Tensor, target=None, window=8, stride=4, fill="gray",
              batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """Occlusion maps: for each pixel, the mean drop of the target class probability over the windows
    that cover it, M(i, j) = mean_{W containing (i, j)} [p_c(x) - p_c(x with W filled)].

    ``x``: display-space images N x 3 x H x W (a single 3 x H x W image is a batch of one).
    ``target``: class index (int, list or tensor; default: each image's predicted class).
    ``window``/``stride``: pixels, an int or (height, width); ``stride`` at most ``window``.
    ``fill``: ``"gray"``, ``"mean"``, ``"blur"`` or a float in [0, 1] (see ``fill_image``).
    ``batch_size``: occluded copies per forward pass; ``progress``: show a tqdm bar.
    Costs ``occlusion_passes(x, window, stride) + 1`` forward passes per image, run under
    ``torch.no_grad()`` on ``bundle.device``. Returns N x H x W maps on the CPU, raw, in units of
    probability (values in [-1, 1]; positive where hiding the pixel lowers the probability).
    """
    x, windows, base = _prepare(bundle, x, window, stride, fill, batch_size)
    n, _, h, w = x.shape
    wh, ww = _pair(window, "window")
    with torch.no_grad(), frozen(bundle.model):
        logits = bundle(x)
        t = resolve_targets(target, logits)
        p0 = logits.softmax(1).gather(1, t[:, None])[:, 0]
        total = torch.zeros(n, h, w, device=x.device)
        # how many windows cover each pixel (>= 1): the windows form a grid, so rows x columns
        rows = torch.zeros(h, device=x.device)
        cols = torch.zeros(w, device=x.device)
        for top in sorted({t for t, _ in windows}):
            rows[top:top + wh] += 1
        for left in sorted({l for _, l in windows}):
            cols[left:left + ww] += 1
        count = rows[:, None] * cols[None, :]
        for img, _, mask, probs in _sweep(bundle, x, base, windows, window, batch_size, progress):
            drop = p0[img] - probs.gather(1, t[img, None])[:, 0]
            total.index_add_(0, img, drop[:, None, None] * mask)
    return (total / count).cpu()
