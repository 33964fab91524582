"""Chapter 9: score every attribution method of Part II on the same canvases, in one table.

    python -m lib.evaluation            # all 2,000 test canvases -> data/results/explanations.json
    python -m lib.evaluation --ms-only  # re-time the methods only (on an idle machine); scores kept

For each method: the pointing game (Zhang et al. 2016), localisation accuracy (box of the map
thresholded at a fraction of its maximum, largest connected component, IoU >= 0.5 with the
ground-truth box; at the CAM paper's 20 % and at the fraction that is best on a validation half,
chosen per method and reported on the other half), deletion and insertion AUC (Petsiuk et al.
2018) and the time per image. The notebook runs the same code on a few canvases and reads the
full table from the JSON file, which records the sha256 of the weights it was computed with.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from . import attribution as A
from . import data, metrics

RESULTS = data.DATA_DIR / "results" / "explanations.json"
FRACTIONS = tuple(round(0.05 * i, 2) for i in range(1, 20))        # thresholds tried on the validation half


SETTINGS = {"smoothgrad_samples": 16, "smoothgrad_noise": 0.15, "occlusion_window": 8, "occlusion_stride": 8,
            "occlusion_fill": "gray"}


def default_methods(bundle, mid: str = "features.19", deep: str | None = None, **settings) -> dict[str, Callable]:
    """The methods of chapter 9's table: name -> f(x, target) -> N x H x W maps.

    ``mid``/``deep``: the two Grad-CAM layers (defaults: gapnet's third stage, 16 x 16, and the
    bundle's CAM layer, the last conv features, 8 x 8). ``settings`` override ``SETTINGS``
    (SmoothGrad samples and noise; occlusion window, stride and fill).
    """
    o = {**SETTINGS, **settings}
    deep = deep or bundle.layer("cam")

    def random_map(x, target):
        # seeded by each image's 8-bit pixels: the same image gets the same map on any CPU, in any batch
        def one(img):
            key = hashlib.sha256((img * 255).round().byte().cpu().numpy().tobytes()).hexdigest()
            return torch.rand(*img.shape[-2:], generator=torch.Generator().manual_seed(int(key[:8], 16)))
        return torch.stack([one(img) for img in x])

    return {
        "random": random_map,
        "centre Gaussian": lambda x, t: metrics.centre_map(x.shape[0], tuple(x.shape[-2:])),
        "saliency": lambda x, t: A.saliency(bundle, x, t),
        "SmoothGrad": lambda x, t: A.smoothgrad(bundle, x, t, noise=o["smoothgrad_noise"],
                                                samples=o["smoothgrad_samples"]),
        "guided backprop": lambda x, t: A.gradient_map(A.guided_backprop(bundle, x, t)),
        "occlusion": lambda x, t: A.occlusion(bundle, x, t, window=o["occlusion_window"],
                                              stride=o["occlusion_stride"], fill=o["occlusion_fill"]),
        "CAM": lambda x, t: A.cam(bundle, x, t),
        f"Grad-CAM {mid}": lambda x, t: A.grad_cam(bundle, x, t, layer=mid),
        f"Grad-CAM {deep}": lambda x, t: A.grad_cam(bundle, x, t, layer=deep),
        "Guided Grad-CAM": lambda x, t: A.gradient_map(A.guided_grad_cam(bundle, x, t, layer=deep)),
    }


def compute_maps(bundle, canvases: data.Canvases, methods: dict[str, Callable], batch_size: int = 100,
                 progress: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, float], torch.Tensor]:
    """Maps of every method for the predicted class of every canvas, and milliseconds per image.

    Returns ({method: N x H x W}, {method: ms per image}, the N predicted classes).
    """
    x_all = canvases.images
    target = torch.cat([bundle.predict(x_all[i:i + 500]).argmax(1) for i in range(0, len(x_all), 500)])
    maps, ms = {}, {}
    for name, fn in tqdm(methods.items(), desc="methods", disable=not progress):
        out, t0 = [], time.perf_counter()
        for i in range(0, len(x_all), batch_size):
            out.append(fn(x_all[i:i + batch_size], target[i:i + batch_size]).detach().cpu().float())
        ms[name] = 1e3 * (time.perf_counter() - t0) / len(x_all)
        maps[name] = torch.cat(out)
    return maps, ms, target


def localisation(maps: torch.Tensor, boxes: torch.Tensor, fractions=FRACTIONS) -> dict:
    """Localisation accuracy (IoU >= 0.5) at 20 % of the maximum and at the best fraction.

    The best fraction is chosen on the first half of the canvases (validation) and the accuracy at
    it is reported on the second half (test), beside the 20 % accuracy on that same second half.
    """
    half = len(maps) // 2

    def acc(frac, sl):
        return (metrics.box_iou(metrics.threshold_box(maps[sl], frac), boxes[sl]) >= 0.5).float().mean().item()

    val = {f: acc(f, slice(0, half)) for f in fractions}
    best = max(fractions, key=lambda f: (val[f], -abs(f - 0.2)))
    return {"loc_20": acc(0.2, slice(half, None)), "best_fraction": best, "loc_best": acc(best, slice(half, None))}


def evaluate(bundle, canvases: data.Canvases, methods: dict[str, Callable] | None = None, curves: int | None = None,
             steps: int = 16, batch_size: int = 100, progress: bool = True) -> dict[str, dict]:
    """The whole table: {method: {pointing, pointing_tol4, loc_20, best_fraction, loc_best,
    deletion, insertion, ms}}. Deletion/insertion use the first ``curves`` canvases (default: all).
    """
    methods = default_methods(bundle) if methods is None else methods
    maps, ms, target = compute_maps(bundle, canvases, methods, batch_size, progress)
    n_curves = len(canvases) if curves is None else min(curves, len(canvases))
    table = {}
    for name, m in tqdm(maps.items(), desc="scoring", disable=not progress):
        row = {"pointing": metrics.pointing_game(m, canvases.boxes).float().mean().item(),
               "pointing_tol4": metrics.pointing_game(m, canvases.boxes, 4).float().mean().item()}
        row.update(localisation(m, canvases.boxes))
        x, t, mm = canvases.images[:n_curves], target[:n_curves], m[:n_curves]
        for mode in ("deletion", "insertion"):
            curve = metrics.perturbation_curves(bundle, x, mm, t, mode=mode, steps=steps)
            row[mode] = metrics.curve_auc(curve).mean().item()
        row["ms"] = ms[name]
        table[name] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
    return table


def stage_groups(model: torch.nn.Module) -> list[list[str]]:
    """The randomisable layers grouped by stage, bottom to top: a new group starts after every
    pooling layer, and whatever comes after the last one (the last stage and the classifier) is the
    last group. For gapnet: [stage 1, stage 2, stage 3, stage 4 + fc], the steps of a cascading
    randomisation by stage."""
    import bisect

    order = [name for name, _ in model.named_modules()]
    pools = [order.index(name) for name, m in model.named_modules()
             if isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d))]
    groups: list[list[str]] = [[] for _ in range(len(pools) + 1)]
    for name in metrics.randomizable_layers(model):
        groups[bisect.bisect(pools, order.index(name))].append(name)
    return [g for g in groups if g]


def sanity_check(bundle, x: torch.Tensor, methods: dict[str, Callable], groups=None, seed: int = 0,
                 progress: bool = True) -> tuple[list[str], dict[str, torch.Tensor]]:
    """Cascading randomisation (Adebayo et al. 2018): for every step of
    ``metrics.cascading_randomization(bundle, groups)``, the Spearman rank correlation (of absolute
    values) between each method's map on the randomised model and on the trained one, for the
    class the trained model predicts. Returns (step names, {method: steps x N correlations}).

    ``methods``: name -> f(bundle, x, target) -> maps (note: the bundle is an argument here, since
    every step is another model). A method whose maps stay correlated while the layers that make
    the decision are random does not explain the model: it fails the check.
    """
    target = bundle.predict(x).argmax(1)
    ref = {name: f(bundle, x, target) for name, f in methods.items()}
    steps, corr = [], {name: [] for name in methods}
    for step, rnd in tqdm(metrics.cascading_randomization(bundle, groups, seed=seed), desc="randomising",
                          disable=not progress):
        steps.append(step)
        for name, f in methods.items():
            corr[name].append(metrics.rank_correlation(ref[name], f(rnd, x, target)))
    return steps, {name: torch.stack(c) for name, c in corr.items()}


def format_table(table: dict[str, dict], ms: bool = True) -> str:
    """The table as aligned text (rates as fractions, AUCs, times as 'x.x ms')."""
    head = f"{'method':24s} {'pointing':>8s} {'tol 4px':>8s} {'loc@20%':>8s} {'loc@best':>8s} {'(frac)':>6s} " \
           f"{'deletion':>8s} {'insertion':>9s}" + (f" {'time/image':>11s}" if ms else "")
    lines = [head, "-" * len(head)]
    for name, r in table.items():
        line = (f"{name:24s} {r['pointing']:8.3f} {r['pointing_tol4']:8.3f} {r['loc_20']:8.3f} {r['loc_best']:8.3f} "
                f"{r['best_fraction']:6.2f} {r['deletion']:8.3f} {r['insertion']:9.3f}")
        if ms:
            line += f" {r['ms']:8.1f} ms"
        lines.append(line)
    return "\n".join(lines)


def weights_sha256(bundle_name: str = "gapnet") -> str:
    from .models import MODELS_DIR
    return hashlib.sha256((MODELS_DIR / f"{bundle_name}.pt").read_bytes()).hexdigest()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=None, help="number of test canvases (default: all)")
    p.add_argument("--curves", type=int, default=500, help="canvases for the deletion/insertion curves")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--ms-only", action="store_true",
                   help="recompute the maps only to time them, and update the time column of --out (scores kept)")
    args = p.parse_args(argv)
    from . import models, seed

    seed(0)
    bundle = models.load("gapnet")
    canvases = data.load_canvases("test", n=args.n)
    t0 = time.time()
    if args.ms_only:
        info = json.loads(args.out.read_text())
        if info["weights_sha256"] != weights_sha256() or info["canvases"] != len(canvases):
            raise SystemExit(f"{args.out} is for other weights or canvases: run python -m lib.evaluation")
        load = os.getloadavg()[0]
        _, ms, _ = compute_maps(bundle, canvases, default_methods(bundle))
        for name, v in ms.items():
            info["table"][name]["ms"] = round(v, 4)
        info["ms_timed"] = {"date": time.strftime("%Y-%m-%d"), "threads": torch.get_num_threads(),
                            "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
                            "minutes": round((time.time() - t0) / 60, 1)}
        print(format_table(info["table"]))
        args.out.write_text(json.dumps(info, indent=1) + "\n")
        print(f"updated the time column of {args.out}")
        return
    table = evaluate(bundle, canvases, curves=args.curves)
    print(format_table(table))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    info = {"model": bundle.name, "weights_sha256": weights_sha256(), "canvases": len(canvases),
            "curve_canvases": min(args.curves, len(canvases)), "steps": 16, "settings": SETTINGS, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "minutes": round((time.time() - t0) / 60, 1), "table": table}
    args.out.write_text(json.dumps(info, indent=1) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
