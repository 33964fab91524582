"""How good is an explanation? Metrics that take maps (N x H x W) and ground truth, and return numbers."""
from __future__ import annotations

import torch

__all__ = ["map_peaks", "pointing_game", "centre_map", "brightness_map", "contrast_map"]


def map_peaks(maps: torch.Tensor) -> torch.Tensor:
    """(x, y) pixel position of each map's maximum (the first one on ties): N x 2 long tensor."""
    n, h, w = maps.shape
    idx = maps.detach().flatten(1).argmax(1)
    return torch.stack([idx % w, idx // w], dim=1)


def pointing_game(maps: torch.Tensor, truth: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
    """Zhang et al. (2016)'s pointing game: a hit when the map's maximum lies on the object, or
    within ``tolerance`` pixels (Euclidean) of it. Returns an N bool tensor of hits.

    ``truth`` is either boxes, N x 4 as (x0, y0, x1, y1) with x1/y1 exclusive, or masks, N x H x W
    bool (stricter: the peak must be on the object's pixels, not just in its box). The paper uses
    15 px on 224 px images; on 64 px canvases the same fraction is about 4 px.
    """
    if maps.dim() != 3 or truth.shape[0] != maps.shape[0]:
        raise ValueError(f"expected maps N x H x W and boxes N x 4 or masks N x H x W, got "
                         f"{tuple(maps.shape)} and {tuple(truth.shape)}")
    p = map_peaks(maps).to(truth.device).float()
    if truth.dim() == 3:
        if truth.shape[1:] != maps.shape[1:]:
            raise ValueError(f"masks {tuple(truth.shape[1:])} and maps {tuple(maps.shape[1:])} differ in size")
        hits = torch.zeros(len(maps), dtype=torch.bool)
        for i, mask in enumerate(truth.bool()):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            if len(xs):
                d = ((xs.float() - p[i, 0]) ** 2 + (ys.float() - p[i, 1]) ** 2).min().sqrt()
                hits[i] = d <= tolerance
        return hits
    if truth.shape[1:] != (4,):
        raise ValueError(f"boxes must be N x 4, got {tuple(truth.shape)}")
    b = truth.float()
    dx = torch.clamp(torch.maximum(b[:, 0] - p[:, 0], p[:, 0] - (b[:, 2] - 1)), min=0)
    dy = torch.clamp(torch.maximum(b[:, 1] - p[:, 1], p[:, 1] - (b[:, 3] - 1)), min=0)
    return (dx ** 2 + dy ** 2).sqrt() <= tolerance


def centre_map(n: int, size: int | tuple[int, int], sigma: float = 0.25) -> torch.Tensor:
    """A baseline that ignores the image: a Gaussian centred on the image, ``sigma`` as a fraction of the side."""
    h, w = (size, size) if isinstance(size, int) else size
    ys = (torch.arange(h) - (h - 1) / 2) / (sigma * h)
    xs = (torch.arange(w) - (w - 1) / 2) / (sigma * w)
    g = torch.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2))
    return g.expand(n, h, w).clone()


def brightness_map(images: torch.Tensor, sigma: float = 3.0) -> torch.Tensor:
    """A baseline that knows nothing of the model: the blurred brightness of display-space images."""
    import torchvision.transforms.functional as TF

    gray = images.mean(1, keepdim=True)
    k = 2 * int(3 * sigma) + 1
    return TF.gaussian_blur(gray, [k, k], [sigma, sigma])[:, 0]


def contrast_map(images: torch.Tensor, sigma: float = 3.0) -> torch.Tensor:
    """A baseline of local contrast: blurred |image - blurred image| (edges and texture blobs)."""
    import torchvision.transforms.functional as TF

    gray = images.mean(1, keepdim=True)
    k = 2 * int(3 * sigma) + 1
    detail = (gray - TF.gaussian_blur(gray, [k, k], [sigma, sigma])).abs()
    return TF.gaussian_blur(detail, [k, k], [sigma, sigma])[:, 0]
