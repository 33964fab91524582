"""How good is an explanation? Metrics that take maps (N x H x W) and ground truth, and return numbers."""
from __future__ import annotations

import torch

__all__ = ["map_peaks", "pointing_game", "centre_map", "brightness_map", "contrast_map",
           "box_iou", "largest_component_box", "threshold_box", "grabcut_seeds", "grabcut_mask", "grabcut_box",
           "grabcut_boxes",
           "perturbation_curves", "curve_auc", "rank_correlation", "randomizable_layers", "cascading_randomization"]


def map_peaks(maps: torch.Tensor) -> torch.Tensor:
    """(x, y) pixel position of each map's maximum: N x 2 long tensor.

    When several pixels share the maximum (a plateau, as in occlusion maps, which are constant on
    stride-sized cells), the one nearest the plateau's centroid is taken, not the first in raster
    order, which would sit at the plateau's top-left corner and bias the pointing game.
    """
    n, h, w = maps.shape
    m = maps.detach().flatten(1)
    top = m == m.amax(1, keepdim=True)
    ys, xs = (torch.arange(h * w, device=m.device) // w).float(), (torch.arange(h * w, device=m.device) % w).float()
    count = top.sum(1, keepdim=True)
    cy, cx = (top * ys).sum(1, keepdim=True) / count, (top * xs).sum(1, keepdim=True) / count
    d = torch.where(top, (ys - cy) ** 2 + (xs - cx) ** 2, torch.inf)
    idx = d.argmin(1)
    return torch.stack([idx % w, idx // w], dim=1).cpu()


def pointing_game(maps: torch.Tensor, truth: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
    """Zhang et al. (2016)'s pointing game: a hit when the map's maximum lies on the object, or
    within ``tolerance`` pixels (Euclidean) of it. Returns an N bool tensor of hits.

    ``truth`` is either boxes, N x 4 as (x0, y0, x1, y1) with x1/y1 exclusive, or masks, N x H x W
    bool (stricter: the peak must be on the object's pixels, not just in its box). A constant map
    (e.g. a Grad-CAM map that the ReLU zeroed everywhere) has no peak and counts as a miss. The paper uses
    15 px on 224 px images; on 64 px canvases the same fraction is about 4 px.
    """
    if maps.dim() != 3 or truth.shape[0] != maps.shape[0]:
        raise ValueError(f"expected maps N x H x W and boxes N x 4 or masks N x H x W, got "
                         f"{tuple(maps.shape)} and {tuple(truth.shape)}")
    p = map_peaks(maps).to(truth.device).float()
    flat = maps.detach().flatten(1)
    informative = (flat.amax(1) > flat.amin(1)).to(truth.device)   # a constant map points nowhere: a miss
    if truth.dim() == 3:
        if truth.shape[1:] != maps.shape[1:]:
            raise ValueError(f"masks {tuple(truth.shape[1:])} and maps {tuple(maps.shape[1:])} differ in size")
        hits = torch.zeros(len(maps), dtype=torch.bool)
        for i, mask in enumerate(truth.bool()):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            if len(xs):
                d = ((xs.float() - p[i, 0]) ** 2 + (ys.float() - p[i, 1]) ** 2).min().sqrt()
                hits[i] = d <= tolerance
        return hits & informative
    if truth.shape[1:] != (4,):
        raise ValueError(f"boxes must be N x 4, got {tuple(truth.shape)}")
    b = truth.float()
    dx = torch.clamp(torch.maximum(b[:, 0] - p[:, 0], p[:, 0] - (b[:, 2] - 1)), min=0)
    dy = torch.clamp(torch.maximum(b[:, 1] - p[:, 1], p[:, 1] - (b[:, 3] - 1)), min=0)
    return ((dx ** 2 + dy ** 2).sqrt() <= tolerance) & informative


def centre_map(n: int, size: int | tuple[int, int], sigma: float = 0.25) -> torch.Tensor:
    """A baseline that ignores the image: a Gaussian centred on the image, ``sigma`` as a fraction of the side."""
    h, w = (size, size) if isinstance(size, int) else size
    ys = (torch.arange(h) - (h - 1) / 2) / (sigma * h)
    xs = (torch.arange(w) - (w - 1) / 2) / (sigma * w)
    g = torch.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2))
    return g.expand(n, h, w).clone()


def _blurred(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of N x C x H x W images, kernel 2 * int(3 sigma) + 1."""
    import torchvision.transforms.functional as TF

    k = 2 * int(3 * sigma) + 1
    return TF.gaussian_blur(x, [k, k], [sigma, sigma])


def brightness_map(images: torch.Tensor, sigma: float = 3.0) -> torch.Tensor:
    """A baseline that knows nothing of the model: the blurred brightness of display-space images."""
    return _blurred(images.mean(1, keepdim=True), sigma)[:, 0]


def contrast_map(images: torch.Tensor, sigma: float = 3.0) -> torch.Tensor:
    """A baseline of local contrast: blurred |image - blurred image| (edges and texture blobs)."""
    gray = images.mean(1, keepdim=True)
    return _blurred((gray - _blurred(gray, sigma)).abs(), sigma)[:, 0]


# --- Chapter 5: boxes and weakly supervised localisation ------------------------------------------
# Boxes are (x0, y0, x1, y1) in pixels with x1/y1 exclusive, like lib.data.Canvases.boxes.

def box_iou(a, b) -> torch.Tensor:
    """Intersection over union of paired boxes: ``a`` and ``b`` N x 4 (or 4, broadcast) -> N floats.

    Boxes are (x0, y0, x1, y1) with x1/y1 exclusive, so a box's area is (x1 - x0) * (y1 - y0).
    Two empty boxes have IoU 0.
    """
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    if a.shape[-1:] != (4,) or b.shape[-1:] != (4,) or a.dim() > 2 or b.dim() > 2:
        raise ValueError(f"boxes must be N x 4 (x0, y0, x1, y1), got {tuple(a.shape)} and {tuple(b.shape)}")
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = iw * ih
    area = lambda z: (z[..., 2] - z[..., 0]).clamp(min=0) * (z[..., 3] - z[..., 1]).clamp(min=0)  # noqa: E731
    union = area(a) + area(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def _component_box(mask) -> tuple[int, int, int, int]:
    import cv2
    import numpy as np

    n, _, stats, _ = cv2.connectedComponentsWithStats(np.ascontiguousarray(mask, dtype=np.uint8), connectivity=8)
    if n <= 1:                                                    # label 0 is the background: nothing is on
        return (0, 0, 0, 0)
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))           # ties: the first in raster order
    x, y, w, h = (int(v) for v in stats[k, :4])
    return (x, y, x + w, y + h)


def _masks(mask) -> tuple["np.ndarray", bool]:
    import numpy as np

    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.ndim not in (2, 3):
        raise ValueError(f"expected a mask H x W or masks N x H x W, got shape {m.shape}")
    return (m[None] if m.ndim == 2 else m), m.ndim == 2


def largest_component_box(mask) -> torch.Tensor:
    """Box of the largest 8-connected component of a bool mask (H x W -> 4, or N x H x W -> N x 4).

    Returns (x0, y0, x1, y1) long, x1/y1 exclusive; an empty mask gives the empty box (0, 0, 0, 0).
    """
    m, single = _masks(mask)
    boxes = torch.tensor([_component_box(mi != 0) for mi in m], dtype=torch.long).view(-1, 4)
    return boxes[0] if single else boxes


def threshold_box(maps: torch.Tensor, fraction: float = 0.2) -> torch.Tensor:
    """Box of the largest connected component of ``map >= fraction * max(map)``, per map.

    ``maps``: N x H x W (-> N x 4) or H x W (-> 4), raw. With ``fraction=0.2`` this is the CAM
    paper's localisation rule (Zhou et al. 2016). The maximum itself is always inside, so even an
    all-negative map gives a box.
    """
    m = maps.detach().cpu().float()
    single = m.dim() == 2
    m = m[None] if single else m
    if m.dim() != 3:
        raise ValueError(f"expected maps N x H x W (or one map H x W), got {tuple(maps.shape)}")
    peak = m.flatten(1).amax(1).view(-1, 1, 1)
    boxes = largest_component_box((m >= fraction * peak) | (m == peak))
    return boxes[0] if single else boxes


def _uint8_image(image: torch.Tensor) -> "np.ndarray":
    import numpy as np

    img = image.detach().cpu().float()
    img = img[0] if img.dim() == 4 and img.shape[0] == 1 else img
    if img.dim() != 3 or img.shape[0] != 3:
        raise ValueError(f"expected one display-space RGB image 3 x H x W, got {tuple(image.shape)}")
    return np.ascontiguousarray((img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())


def grabcut_seeds(maps: torch.Tensor, fg_percentile: float = 95, bg_percentile: float = 30):
    """Simonyan et al.'s GrabCut seeds: (foreground, background) bool masks, each like ``maps``.

    Foreground: pixels at or above the ``fg_percentile``-th percentile of their map; background:
    at or below the ``bg_percentile``-th (and not foreground). ``maps``: H x W or N x H x W.
    """
    import numpy as np

    m = maps.detach().cpu().double().numpy()
    if m.ndim not in (2, 3):
        raise ValueError(f"expected a map H x W or maps N x H x W, got {tuple(maps.shape)}")
    hi = np.percentile(m, fg_percentile, axis=(-2, -1), keepdims=True)
    lo = np.percentile(m, bg_percentile, axis=(-2, -1), keepdims=True)
    fg = m >= hi
    return torch.from_numpy(fg), torch.from_numpy((m <= lo) & ~fg)


def grabcut_mask(image: torch.Tensor, saliency_map: torch.Tensor, fg_percentile: float = 95,
                 bg_percentile: float = 30, iterations: int = 5, seed: int = 0) -> torch.Tensor:
    """Segment the object that a saliency map points at with GrabCut (Rother et al. 2004): H x W bool.

    Simonyan et al. (2013)'s recipe: pixels with saliency above the ``fg_percentile``-th percentile
    are certain foreground, those below the ``bg_percentile``-th certain background; the colour
    models (Gaussian mixtures) of object and background are estimated from these seeds only; a
    graph cut then labels the pixels in between, and GrabCut alternates re-estimating the colour
    models and re-cutting ``iterations`` times in all. (OpenCV learns the first models from the
    seeds alone when given them on their own, then cuts once with the models frozen, then iterates.)

    ``image``: 3 x H x W display space; ``saliency_map``: H x W. OpenCV's RNG is seeded with
    ``seed`` (its k-means initialises the mixtures), so the result is deterministic. When there
    are fewer than 5 seeds of a kind (a flat map) the foreground seeds are returned as they are.
    """
    import cv2
    import numpy as np

    img = _uint8_image(image)
    s = saliency_map.detach().cpu().double().numpy()
    if s.shape != img.shape[:2]:
        raise ValueError(f"the map {s.shape} and the image {img.shape[:2]} differ in size: resize the map "
                         f"to the image first (e.g. torch.nn.functional.interpolate)")
    fg, bg = (m.numpy() for m in grabcut_seeds(saliency_map, fg_percentile, bg_percentile))
    if fg.sum() < 5 or bg.sum() < 5:                         # k-means needs >= 5 samples per mixture
        return torch.from_numpy(fg)
    cv2.setRNGSeed(seed)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # 1. colour models from the seeds only: GrabCut on an image made of the seed pixels, 0 iterations
    seeds = np.concatenate([img[fg], img[bg]])[:, None, :]
    seed_mask = np.concatenate([np.full(fg.sum(), cv2.GC_FGD), np.full(bg.sum(), cv2.GC_BGD)]).astype(np.uint8)[:, None]
    cv2.grabCut(seeds, seed_mask, None, bgd, fgd, 0, cv2.GC_INIT_WITH_MASK)
    # 2. one graph cut of the whole image with those models frozen, 3. then GrabCut's iterations
    mask = np.full(s.shape, cv2.GC_PR_BGD, np.uint8)
    mask[fg], mask[bg] = cv2.GC_FGD, cv2.GC_BGD
    cv2.grabCut(img, mask, None, bgd, fgd, 1, cv2.GC_EVAL_FREEZE_MODEL)
    if iterations > 1:
        cv2.grabCut(img, mask, None, bgd, fgd, iterations - 1, cv2.GC_EVAL)
    return torch.from_numpy((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD))


def grabcut_box(image: torch.Tensor, saliency_map: torch.Tensor, fg_percentile: float = 95,
                bg_percentile: float = 30, iterations: int = 5, seed: int = 0) -> torch.Tensor:
    """Simonyan et al.'s weakly supervised box: GrabCut from saliency seeds (``grabcut_mask``), then
    the box of the largest connected component. Returns (x0, y0, x1, y1) long, x1/y1 exclusive."""
    return largest_component_box(grabcut_mask(image, saliency_map, fg_percentile, bg_percentile, iterations, seed))


def grabcut_boxes(images: torch.Tensor, maps: torch.Tensor, fg_percentile: float = 95, bg_percentile: float = 30,
                  iterations: int = 5, seed: int = 0, progress: bool | None = None) -> torch.Tensor:
    """``grabcut_box`` for a batch: images N x 3 x H x W, maps N x H x W -> N x 4 boxes.

    ``progress``: a progress bar (None: only for more than 500 images).
    """
    from tqdm.auto import tqdm

    if images.dim() != 4 or maps.dim() != 3 or len(images) != len(maps):
        raise ValueError(f"expected images N x 3 x H x W and maps N x H x W, got {tuple(images.shape)} "
                         f"and {tuple(maps.shape)}")
    show = progress or (progress is None and len(images) > 500)
    boxes = [grabcut_box(img, m, fg_percentile, bg_percentile, iterations, seed)
             for img, m in tqdm(zip(images, maps), total=len(images), desc="GrabCut", disable=not show)]
    return torch.stack(boxes) if boxes else torch.zeros(0, 4, dtype=torch.long)


# --- Chapter 9: faithfulness (deletion / insertion) and sanity checks -----------------------------

@torch.no_grad()
def perturbation_curves(bundle, x: torch.Tensor, maps: torch.Tensor, target=None, mode: str = "deletion",
                        steps: int = 16, baseline: str | float = "auto", batch_size: int = 512) -> torch.Tensor:
    """Petsiuk et al. (2018)'s deletion and insertion curves: N x (steps + 1) class probabilities.

    Pixels are ranked by ``maps`` (N x H x W, most important first; ties broken by position).
    ``deletion``: starting from the image, replace the top k/steps of the pixels with the baseline
    and record p_c after each step (a good map makes it fall fast: low area under the curve).
    ``insertion``: start from the baseline and copy pixels of the image in the same order (a good
    map makes it rise fast: high area). ``baseline``: "zero" (black), "blur" (a Gaussian-blurred
    copy, sigma 5 px) or a float grey level; "auto" is the paper's choice, black for deletion and
    blur for insertion. ``target``: class per image (default: the predicted class).
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', not {mode!r}")
    n, _, h, w = x.shape
    if maps.shape != (n, h, w):
        raise ValueError(f"maps must be N x H x W = {(n, h, w)} to rank the image's pixels, got {tuple(maps.shape)}")
    x = x.cpu().float()
    if baseline == "auto":
        baseline = "zero" if mode == "deletion" else "blur"
    if baseline == "zero":
        base = torch.zeros_like(x)
    elif baseline == "blur":
        base = _blurred(x, 5.0)
    elif isinstance(baseline, (int, float)):
        base = torch.full_like(x, float(baseline))
    else:
        raise ValueError(f"baseline must be 'auto', 'zero', 'blur' or a number, not {baseline!r}")
    if target is None:
        target = bundle.predict(x).argmax(1)
    target = torch.as_tensor(target).long().expand(n)
    order = maps.detach().cpu().flatten(1).argsort(dim=1, descending=True, stable=True)   # N x HW
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w).expand(n, -1))
    counts = torch.linspace(0, h * w, steps + 1).round().long()                      # pixels changed per step
    start, end = (x, base) if mode == "deletion" else (base, x)
    probs = torch.empty(n, steps + 1)
    jobs = [(i, s) for i in range(n) for s in range(steps + 1)]
    for b in range(0, len(jobs), batch_size):
        chunk = jobs[b:b + batch_size]
        idx = torch.tensor([i for i, _ in chunk])
        changed = (rank[idx] < counts[[s for _, s in chunk]][:, None]).view(-1, 1, h, w)
        batch = torch.where(changed, end[idx], start[idx])
        p = bundle.predict(batch)
        probs[idx, [s for _, s in chunk]] = p[torch.arange(len(chunk)), target[idx]]
    return probs


def curve_auc(curves: torch.Tensor) -> torch.Tensor:
    """Area under curves sampled at equal steps over [0, 1] (trapezoid rule): N values in [0, 1]."""
    c = curves.float()
    return ((c[:, 1:] + c[:, :-1]) / 2).mean(1)


def rank_correlation(a: torch.Tensor, b: torch.Tensor, absolute: bool = True) -> torch.Tensor:
    """Spearman rank correlation between paired maps (N x H x W each): N values in [-1, 1].

    ``absolute`` compares |a| with |b|, as Adebayo et al. (2018) do for signed maps. Ties get
    their average rank; a constant map (no ranking at all) gives NaN.
    """
    from scipy.stats import spearmanr

    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.detach().cpu().flatten(1).double(), b.detach().cpu().flatten(1).double()
    if absolute:
        a, b = a.abs(), b.abs()
    out = []
    for u, v in zip(a.numpy(), b.numpy()):
        out.append(float("nan") if u.std() == 0 or v.std() == 0 else spearmanr(u, v).statistic)
    return torch.tensor(out)


def randomizable_layers(model) -> list[str]:
    """Names of the modules with their own parameters and ``reset_parameters`` (convs, linears,
    BatchNorms), in forward (definition) order: the units of a cascading randomisation."""
    return [name for name, m in model.named_modules()
            if name and hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False))]


def cascading_randomization(bundle, layers=None, seed: int = 0):
    """Adebayo et al. (2018)'s model-parameter randomisation test, cascading from the top.

    Yields ``(step, randomised_bundle)`` pairs: the first has the last entry of ``layers``
    re-initialised (``reset_parameters()``, the layer's own initialisation), the next the last two,
    and so on down to the first. An entry is a layer name or a list of names randomised together
    (e.g. one stage of a network); ``step`` is its name, or the group's names joined by '+'.
    ``layers`` defaults to ``randomizable_layers(bundle.model)``, one step per layer. Each bundle
    is a copy; ``bundle`` itself is never modified. Seeded: the same ``seed`` gives the same weights.
    """
    import copy
    import dataclasses

    from .hooks import resolve_layer

    layers = randomizable_layers(bundle.model) if layers is None else list(layers)
    model = copy.deepcopy(bundle.model)
    gen = torch.Generator().manual_seed(seed)
    for entry in reversed(layers):
        group = [entry] if isinstance(entry, str) else list(entry)
        for name in group:
            _, module = resolve_layer(model, name)
            if not hasattr(module, "reset_parameters"):
                raise TypeError(f"{name!r} ({type(module).__name__}) has no reset_parameters(); "
                                f"randomisable layers: {randomizable_layers(bundle.model)}")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(0, 2 ** 31 - 1, (1,), generator=gen)))
                module.reset_parameters()
        step = "+".join(group)
        yield step, dataclasses.replace(bundle, model=copy.deepcopy(model),
                                        name=f"{bundle.name} (randomised from the top down to {step})")
