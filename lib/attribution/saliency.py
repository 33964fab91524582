"""Image-specific class saliency (Simonyan, Vedaldi & Zisserman 2013) and SmoothGrad (Smilkov et al. 2017).

Near an image I_0 the class score is approximately linear in the image (first-order Taylor expansion)::

    S_c(I) ≈ w^T I + b,     w = dS_c/dI evaluated at I_0

so |w| says which pixels change the score most when nudged. ``input_gradient`` returns w; ``saliency``
turns it into a map, M_ij = max_c |w_ij,c| (the paper's rule for colour images). ``smoothgrad``
averages the gradient over noisy copies of the image, which removes much of the gradient's
pixel-to-pixel noise.

S_c is the *logit* (the unnormalised class score), not the softmax probability: p_c also depends
on every other class's score, so its gradient can point at pixels that *lower the other classes*
rather than raise class c.

All gradients are taken with respect to the *display-space* image (N x 3 x H x W in [0, 1]):
autograd follows the bundle's ``preprocess`` (chain rule), so for ImageNet normalisation each
channel's gradient is the model-space gradient divided by that channel's std.
"""
from __future__ import annotations

import torch

from .targets import check_images, per_image, resolve_targets
from ..hooks import frozen

__all__ = ["input_gradient", "saliency", "smoothgrad", "smoothgrad_steps", "resolve_targets"]


def input_gradient(bundle, x: torch.Tensor, target=None, batch_size: int = 64) -> torch.Tensor:
    """w = dS_c/dI: the gradient of the class score (logit) with respect to the display-space image.

    ``x``: N x 3 x H x W in [0, 1]; ``target``: class per image (int, list or tensor; default the
    predicted class). Returns N x 3 x H x W on the CPU. One forward and one backward pass per
    ``batch_size`` images; the model's parameters are frozen meanwhile (no parameter gradients are
    computed or left behind), and ``x`` itself is not touched (its ``.grad`` stays as it was).
    """
    bundle.require_classes("saliency")
    check_images(x)
    target = per_image(target, x.shape[0])
    model = bundle.model
    out = []
    with frozen(model), torch.enable_grad():
        for b in range(0, x.shape[0], batch_size):
            xi = x[b:b + batch_size].detach().to(bundle.device).clone().requires_grad_(True)
            logits = bundle(xi)
            t = resolve_targets(None if target is None else target[b:b + batch_size], logits)
            score = logits.gather(1, t[:, None]).sum()     # images are independent: d(sum)/dx_n = dS_c/dx_n
            (grad,) = torch.autograd.grad(score, xi)
            out.append(grad.detach().cpu())
    return torch.cat(out)


def saliency(bundle, x: torch.Tensor, target=None, batch_size: int = 64) -> torch.Tensor:
    """Simonyan et al.'s saliency map M_ij = max_c |dS_c/dI_{c,i,j}|: N x H x W on the CPU, raw."""
    return input_gradient(bundle, x, target, batch_size).abs().amax(1)


def smoothgrad(bundle, x: torch.Tensor, target=None, noise: float = 0.15, samples: int = 25,
               batch_size: int = 64, seed: int | None = 0, magnitude: bool = False,
               progress: bool | None = None) -> torch.Tensor:
    """SmoothGrad: the input gradient averaged over ``samples`` noisy copies of each image.

        M = max_c | (1/n) sum_{k=1..n} dS_c/dI (I + N(0, sigma^2)) |,   sigma = noise * (max I - min I)

    ``noise``: the noise std as a fraction of each image's value range (Smilkov et al. find 10-20 %
    best); ``samples``: n. The average of the *signed* gradients is taken first and then max_c |.|,
    so gradients that flip sign from copy to copy cancel out; ``magnitude=True`` averages |gradient|
    instead (a variant Smilkov et al. discuss), which keeps them. The noisy copies
    are not clipped to [0, 1].

    ``seed`` fixes the noise (None: draw from torch's global generator). Every image gets the same
    n noise patterns (scaled by its own sigma), so an image's map does not depend on the batch it
    is in. ``target``: class per image, default the class predicted for the clean image.
    The ``samples`` x N copies go through the model ``batch_size`` at a time; ``progress`` shows a
    bar (None: only when there are more than 20 batches). Returns N x H x W on the CPU, raw.
    With ``noise=0`` this is ``saliency``.
    """
    return smoothgrad_steps(bundle, x, target, noise, (samples,), batch_size, seed, magnitude, progress)[samples]


def smoothgrad_steps(bundle, x: torch.Tensor, target=None, noise: float = 0.15, samples=(1, 5, 10, 25),
                     batch_size: int = 64, seed: int | None = 0, magnitude: bool = False,
                     progress: bool | None = None) -> dict[int, torch.Tensor]:
    """SmoothGrad after each number of noisy copies in ``samples``, in one pass: {n: N x H x W}.

    The map for n uses the first n noise patterns, which do not depend on the largest n asked
    for, so ``smoothgrad_steps(..., samples=(5, 25))[5]`` equals ``smoothgrad(..., samples=5)``.
    This is how the maps converge as copies are added. Other arguments as in ``smoothgrad``.
    """
    from tqdm.auto import tqdm

    bundle.require_classes("SmoothGrad")
    check_images(x)
    counts = sorted({int(k) for k in (samples if isinstance(samples, (list, tuple, range)) else [samples])})
    if not counts or counts[0] < 1 or noise < 0 or batch_size < 1:
        raise ValueError(f"need samples >= 1, noise >= 0 and batch_size >= 1; got samples={samples}, "
                         f"noise={noise}, batch_size={batch_size}")
    n, most = x.shape[0], counts[-1]
    x = x.detach().cpu()
    if target is None:
        with frozen(bundle.model), torch.no_grad():
            target = torch.cat([bundle(x[b:b + batch_size]).argmax(1).cpu() for b in range(0, n, batch_size)])
    target = per_image(target, n)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    # one pattern at a time, so the first k patterns are the same whatever the number drawn (CPU: same on any device)
    patterns = torch.stack([torch.randn(tuple(x.shape[1:]), generator=gen, dtype=x.dtype) for _ in range(most)])
    sigma = noise * (x.flatten(1).amax(1) - x.flatten(1).amin(1))                            # per image
    totals = torch.zeros((len(counts),) + tuple(x.shape), dtype=torch.float32)
    jobs = [(i, k) for i in range(n) for k in range(most)]
    starts = range(0, len(jobs), batch_size)
    show = progress or (progress is None and len(starts) > 20)
    for b in tqdm(starts, desc="SmoothGrad", disable=not show):
        chunk = jobs[b:b + batch_size]
        idx = torch.tensor([i for i, _ in chunk])
        k = torch.tensor([s for _, s in chunk])
        noisy = x[idx] + sigma[idx].view(-1, 1, 1, 1) * patterns[k]
        g = input_gradient(bundle, noisy, target[idx], batch_size=len(chunk)).float()
        g = g.abs() if magnitude else g
        for j, c in enumerate(counts):
            keep = k < c
            if keep.any():
                totals[j].index_add_(0, idx[keep], g[keep])
    return {c: (totals[j] / c).abs().amax(1) for j, c in enumerate(counts)}
