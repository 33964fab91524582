"""Images in, images out: loading anything, resizing, (de)normalising, heat-map overlays, grids.

Convention: images in *display space* are float tensors N x 3 x H x W in [0, 1]. Model bundles
convert to and from *model space* (normalised); maps are N x H x W float tensors.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageConversionWarning, ImageLoadError, warn

__all__ = ["load", "resize", "gaussian_blur", "normalize", "denormalize", "normalize_map", "overlay", "grid",
           "to_numpy", "MIN_SIDE", "MAX_PIXELS", "MAX_SIDE"]

#: Smaller images are refused: the networks here downsample 8-32x, so nothing meaningful is left.
MIN_SIDE = 16
#: Larger images are downscaled (with a warning) so their longer side is at most this.
MAX_SIDE = 2048
#: Images with more pixels than this are refused before decoding (decompression-bomb guard).
MAX_PIXELS = 100_000_000


def _note(msg: str) -> None:
    warn(msg, ImageConversionWarning)


def _from_pil(img: Image.Image) -> np.ndarray:
    """A PIL image of any mode -> H x W x 3 float32 array in [0, 1], with a note for each conversion."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float32)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        _note(f"{mode} (16-bit or integer) grayscale image scaled from [0, {top:.0f}] to [0, 1] and "
              f"repeated to 3 channels")
        return np.repeat(np.clip(arr / top, 0, 1)[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img).astype(np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        _note("32-bit float image rescaled from its range to [0, 1] and repeated to 3 channels")
        return np.repeat(((arr - lo) / max(hi - lo, 1e-12))[..., None], 3, axis=2)
    if mode in ("L", "1", "LA"):
        _note(f"grayscale image (mode {mode}) repeated to 3 RGB channels")
        if mode == "LA":
            img = _composite_alpha(img.convert("RGBA"))
    elif mode in ("RGBA", "PA") or (mode == "P" and "transparency" in img.info):
        _note(f"image with transparency (mode {mode}) composited on a white background")
        img = _composite_alpha(img.convert("RGBA"))
    elif mode == "P":
        _note("palette image converted to RGB")
    elif mode == "CMYK":
        _note("CMYK image converted to RGB")
    elif mode not in ("RGB",):
        _note(f"image of mode {mode} converted to RGB")
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _composite_alpha(rgba: Image.Image) -> Image.Image:
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _from_array(arr: np.ndarray) -> np.ndarray:
    """An array (H x W, H x W x C or C x H x W with C in 1, 3, 4) of any dtype -> H x W x 3 float32 in [0, 1]."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, 2)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ImageLoadError(f"cannot read an array of shape {arr.shape} as an image: expected "
                             f"H x W, H x W x C or C x H x W with C = 1, 3 or 4")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255
    elif arr.dtype == np.uint16:
        _note("16-bit image scaled from [0, 65535] to [0, 1]")
        out = arr.astype(np.float32) / 65535
    elif arr.dtype == bool:
        out = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        if out.min() < 0 or out.max() > 1:
            raise ImageLoadError(f"float image values must lie in [0, 1] (display space); got "
                                 f"[{out.min():.3g}, {out.max():.3g}]. If it is normalised for a model, "
                                 f"call bundle.deprocess() first; if it is in [0, 255], divide by 255.")
    else:
        raise ImageLoadError(f"unsupported image dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
    if out.ndim == 2:
        _note("grayscale image repeated to 3 RGB channels")
        out = np.repeat(out[..., None], 3, axis=2)
    elif out.shape[2] == 1:
        _note("single-channel image repeated to 3 RGB channels")
        out = np.repeat(out, 3, axis=2)
    elif out.shape[2] == 4:
        _note("image with an alpha channel composited on a white background")
        a = out[..., 3:]
        out = out[..., :3] * a + (1 - a)
    return out


def load(src, size: int | tuple[int, int] | None = None, max_side: int = MAX_SIDE) -> torch.Tensor:
    """Load an image from a path, PIL image, numpy array or tensor as a 1 x 3 x H x W tensor in [0, 1].

    Grayscale, RGBA/LA (composited on white), palette, CMYK, 16-bit and float images are
    converted with an ``ImageConversionWarning`` saying what was done. Images with a side over
    ``max_side`` are downscaled with a warning; images smaller than ``MIN_SIDE`` pixels, over
    ``MAX_PIXELS`` pixels, truncated, or not images at all raise ``ImageLoadError``.
    ``size`` resizes the result (see ``resize``). A 4-D tensor/array is taken as a batch.
    """
    if isinstance(src, (str, Path)):
        path = Path(src).expanduser()
        if not path.exists():
            raise ImageLoadError(f"no image at {str(path)!r}: the file does not exist")
        if path.is_dir():
            raise ImageLoadError(f"{str(path)!r} is a folder, not an image file")
        try:
            with Image.open(path) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ImageLoadError(f"{path.name} is {w}x{h} pixels, over the limit of "
                                         f"{MAX_PIXELS:,}; downscale it with an image editor first")
                img = ImageOps.exif_transpose(img)
                img.load()
                arr = _from_pil(img)
        except UnidentifiedImageError:
            raise ImageLoadError(f"{str(path)!r} is not an image file Pillow can read "
                                 f"(PNG, JPEG, WebP, TIFF, BMP, GIF...)") from None
        except (OSError, SyntaxError) as e:  # truncated or corrupt files
            raise ImageLoadError(f"{str(path)!r} could not be decoded, the file is probably truncated "
                                 f"or corrupt ({e})") from None
        batch = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
    elif isinstance(src, Image.Image):
        batch = torch.from_numpy(np.ascontiguousarray(_from_pil(src))).permute(2, 0, 1)[None]
    elif isinstance(src, (np.ndarray, torch.Tensor)):
        arr = src.detach().cpu().numpy() if isinstance(src, torch.Tensor) else src
        if arr.ndim == 4:
            return torch.cat([load(a, size=size, max_side=max_side) for a in arr])
        batch = torch.from_numpy(np.ascontiguousarray(_from_array(arr))).permute(2, 0, 1)[None]
    else:
        raise ImageLoadError(f"cannot load an image from a {type(src).__name__}; pass a path, "
                             f"PIL image, numpy array or tensor")
    h, w = batch.shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise ImageLoadError(f"image is {w}x{h} pixels, smaller than the minimum of {MIN_SIDE} px a side: "
                             f"the networks downsample it to almost nothing. Use a larger image, or "
                             f"upscale it explicitly with lib.images.resize() if you really mean to.")
    if max(h, w) > max_side:
        _note(f"image of {w}x{h} pixels downscaled so its longer side is {max_side}")
        s = max_side / max(h, w)
        batch = resize(batch, (max(1, round(h * s)), max(1, round(w * s))))
    if size is not None:
        batch = resize(batch, size)
    return batch.float().clamp_(0, 1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of N x C x H x W images (torchvision's ``gaussian_blur``, reflect padding),
    kernel 2 * ceil(3 sigma) + 1 pixels wide, capped below twice the short side (reflect padding
    needs less than the image side). ``sigma`` <= 0 returns ``x`` unchanged."""
    import torchvision.transforms.v2.functional as TF

    if sigma <= 0:
        return x
    k = min(2 * math.ceil(3 * sigma) + 1, 2 * min(x.shape[-2:]) - 1)
    return TF.gaussian_blur(x, kernel_size=[k, k], sigma=[float(sigma), float(sigma)])


def resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize a batch (N x C x H x W) or maps (N x H x W): ``size`` is the short side or (H, W).

    Uses torchvision's antialiased bilinear resize, so downscaling does not alias.
    """
    import torchvision.transforms.functional as TF

    maps = x.dim() == 3
    y = TF.resize(x[:, None] if maps else x, size if isinstance(size, int) else list(size),
                  interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return y[:, 0] if maps else y


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x - mean) / std per channel, for N x C x H x W batches."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Inverse of ``normalize``: x * std + mean per channel."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x * s + m


def normalize_map(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale each map of a batch (N x H x W) to [0, 1] by its own min and max (for display only)."""
    flat = maps.detach().flatten(1).float()
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(eps)).view_as(maps)


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """One display-space image (3 x H x W or 1 x 3 x H x W) -> H x W x 3 float numpy array for plotting."""
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"to_numpy takes one image, got a batch of {x.shape[0]}")
        x = x[0]
    return x.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy()


def overlay(image: torch.Tensor, heatmap: torch.Tensor, alpha: float = 0.5,
            colormap: str = "jet", normalize: bool = True) -> torch.Tensor:
    """Blend heat-maps over images with an OpenCV colormap; returns display-space N x 3 x H x W.

    ``image``: N x 3 x H x W in [0, 1]; ``heatmap``: N x h x w (resized to the image if needed),
    min-max normalised per map first unless ``normalize=False`` (then it must lie in [0, 1]).
    ``colormap`` names an OpenCV colormap (``jet``, ``turbo``, ``inferno``, ``viridis``...).
    """
    import cv2

    if image.dim() == 3:
        image = image[None]
    if heatmap.dim() == 2:
        heatmap = heatmap[None]
    if heatmap.shape[0] != image.shape[0]:
        raise ValueError(f"{heatmap.shape[0]} maps for {image.shape[0]} images")
    code = getattr(cv2, f"COLORMAP_{colormap.upper()}", None)
    if code is None:
        names = sorted(n[9:].lower() for n in dir(cv2) if n.startswith("COLORMAP_"))
        raise ValueError(f"unknown colormap {colormap!r}; OpenCV has {', '.join(names)}")
    heatmap = heatmap.detach().cpu().float()
    if heatmap.shape[-2:] != image.shape[-2:]:
        heatmap = F.interpolate(heatmap[:, None], size=image.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    heatmap = normalize_map(heatmap) if normalize else heatmap.clamp(0, 1)
    out = []
    for img, hm in zip(image.detach().cpu(), heatmap):
        colour = cv2.applyColorMap(np.uint8(np.round(hm.numpy() * 255)), code)[..., ::-1]  # BGR -> RGB
        colour = torch.from_numpy(colour.copy()).permute(2, 0, 1).float() / 255
        out.append((1 - alpha) * img + alpha * colour)
    return torch.stack(out).clamp(0, 1)


def grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 1.0,
         normalize_each: bool = False) -> torch.Tensor:
    """Tile a batch (N x C x H x W) into one 3 x H' x W' image with torchvision's ``make_grid``.

    ``normalize_each`` min-max scales every image on its own (e.g. for filters, whose weights
    are not in [0, 1]).
    """
    from torchvision.utils import make_grid

    images = images.detach().cpu().float()
    if normalize_each:
        flat = images.flatten(1)
        lo, hi = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
        images = (images - lo) / (hi - lo).clamp_min(1e-12)
    return make_grid(images, nrow=nrow, padding=padding, pad_value=pad_value)
