"""Input checks shared by every method of ``lib.attribution``: the image batch, and which class
(or channel) each image is explained for."""
from __future__ import annotations

import torch

__all__ = ["check_images", "per_image", "resolve_targets"]


def check_images(x: torch.Tensor) -> None:
    """A batch of display-space images, N x C x H x W (RGB for every bundle; a single image is a
    batch of one)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected a batch of images N x C x H x W, got {shape}; "
                         f"for one image use x[None] or lib.images.load(...)")


def per_image(value, n: int, what: str = "targets"):
    """None, or a long CPU tensor of ``n`` entries from an int, a list or a tensor (one value is repeated)."""
    if value is None:
        return None
    t = torch.as_tensor(value).long().reshape(-1).cpu()
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"{t.numel()} {what} for {n} images: give one, or one per image")
    return t


def resolve_targets(target, logits: torch.Tensor) -> torch.Tensor:
    """Class index per image (N long tensor on the logits' device): ``target`` (an int, a list or a
    tensor: one class for all images, or one per image) or, when None, the predicted class.
    Raises ValueError for a wrong count or for classes the model does not have."""
    n, k = logits.shape[0], logits.shape[1]
    if target is None:
        return logits.detach().argmax(1)
    t = per_image(target, n, "targets").to(logits.device)
    if (t < 0).any() or (t >= k).any():
        raise ValueError(f"target class out of range: the model has {k} classes (0..{k - 1})")
    return t
