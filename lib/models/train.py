"""Train the shipped GAP-CNN on Fashion-MNIST canvases:  python -m lib.models.train

Reproduces ``data/models/gapnet.pt`` (and its ``.sha256``) and the committed test canvases
``data/canvases/test.npz.xz`` from Debian's ``dataset-fashion-mnist``, ``opencv-doc`` and
``mate-backgrounds`` packages (fetched with ``apt-get download`` when missing) and the sample
photos of scikit-image, scikit-learn and matplotlib.

Training canvases are drawn fresh for every chunk of steps (items from the Fashion-MNIST
training split on the training photos); test canvases use the Fashion-MNIST test split on
photos never used for training. No model selection is done on the test canvases: the
weights saved are those after the last step.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from .. import data
from ..device import seed as seed_all
from .gapnet import GapNet
from . import save_weights

TEST_SEED = 20240601
N_TEST = 2000
# steps:peak learning rate[:bf16] of each one-cycle run, each continuing from the last (the committed weights)
RUNS = ("2800:2e-3", "2000:5e-4", "6000:1e-3:bf16", "4000:8e-4:bf16")
EMA_DECAY = 0.999   # the last run keeps this moving average of the weights, and it is what is saved


def make_test_canvases(path: Path = data.DATA_DIR / "canvases" / "test.npz.xz", n: int = N_TEST) -> str:
    """Generate and store the fixed test canvases; returns their sha256."""
    items, labels = data.fashion_mnist("test")
    gen = data.CanvasGenerator(items, labels, data.background_photos("test"), seed=TEST_SEED)
    path.parent.mkdir(parents=True, exist_ok=True)
    return data.save_canvases(gen.sample(n), path)


def train_steps(model: torch.nn.Module, batches, steps: int, lr: float = 2e-3,
                weight_decay: float = 5e-4, progress: bool = True, ema=None, bf16: bool = False) -> list[float]:
    """Train ``model`` for ``steps`` steps on an iterator of (images, labels) display-space batches.

    AdamW with a one-cycle learning-rate schedule; returns the loss of every step. ``ema``, a
    ``torch.optim.swa_utils.AveragedModel`` of ``model``, is updated after every step. ``bf16``
    runs forward and backward under bfloat16 autocast (weights and optimiser state stay float32):
    about 2.5x faster on a CPU with AVX512-BF16, and what the GPU machine would use too.
    """
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    losses = []
    bar = tqdm(range(steps), desc="training", disable=not progress, mininterval=5)
    for step in bar:
        x, y = next(batches)
        x = x.contiguous(memory_format=torch.channels_last)
        device_type = next(model.parameters()).device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if ema is not None:
            ema.update_parameters(model)
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    model.eval()
    return losses


def canvas_batches(gen: data.CanvasGenerator, batch_size: int, chunk: int = 8192):
    """Endless (images, labels) batches, drawing ``chunk`` fresh canvases at a time."""
    while True:
        c = data.to_canvases(gen.sample(chunk))
        for i in range(0, chunk - batch_size + 1, batch_size):
            yield c.images[i:i + batch_size], c.labels[i:i + batch_size]


def _at(images: torch.Tensor, size: int | None) -> torch.Tensor:
    from ..images import resize
    return images if size is None or images.shape[-1] == size else resize(images, (size, size))


@torch.no_grad()
def accuracy(model, canvases: data.Canvases, batch_size: int = 250, size: int | None = None) -> float:
    """Top-1 accuracy of ``model`` (a module or a ``Bundle``) on canvases, resized to ``size`` if given."""
    was_training = getattr(model, "training", False)
    if was_training:
        model.eval()
    correct = 0
    for i in range(0, len(canvases), batch_size):
        logits = model(_at(canvases.images[i:i + batch_size], size))
        correct += (logits.argmax(1).cpu() == canvases.labels[i:i + batch_size]).sum().item()
    if was_training:
        model.train()
    return correct / len(canvases)


def evaluate(bundle, canvases: data.Canvases, tolerances=(0, 4), batch_size: int = 250) -> dict:
    """Accuracy and pointing-game hit rates of CAM and of three model-free baselines.

    Canvases are resized to the bundle's input size for the model; CAM maps are resized back to
    the canvas size to be scored against the ground-truth boxes.
    """
    from .. import metrics
    from ..attribution import cam
    from ..images import resize

    size = canvases.images.shape[-1]
    cams = [resize(cam(bundle, _at(canvases.images[i:i + batch_size], bundle.input_size)), (size, size))
            for i in range(0, len(canvases), batch_size)]
    maps = {"CAM (predicted class)": torch.cat(cams),
            "centre Gaussian": metrics.centre_map(len(canvases), size),
            "blurred brightness": metrics.brightness_map(canvases.images),
            "local contrast": metrics.contrast_map(canvases.images)}
    out = {"accuracy": round(accuracy(bundle, canvases, size=bundle.input_size), 4), "pointing_game": {}}
    for name, m in maps.items():
        out["pointing_game"][name] = {
            f"{kind}_tol{t}": round(metrics.pointing_game(m, truth, t).float().mean().item(), 4)
            for kind, truth in (("box", canvases.boxes), ("mask", canvases.masks)) for t in tolerances}
    return out


def canvas_figure(path: Path = data.DATA_DIR / "models" / "canvases.png", n: int = 16) -> None:
    """The picture of test canvases with their boxes used by the book's intro and the model card."""
    import matplotlib
    matplotlib.use("Agg")
    from .. import plot

    c = data.load_canvases("test", n=n)
    fig = plot.show_images(c.images, [data.CLASSES[y] for y in c.labels.tolist()], ncols=8, size=1.3, boxes=c.boxes,
                           show=False)
    fig.savefig(path, dpi=80)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", default=list(RUNS), metavar="STEPS:LR[:bf16]",
                   help="one-cycle runs, each from the previous run's weights on fresh canvases "
                        "(canvas seed = seed + run index); ':bf16' trains that run under bfloat16 "
                        "autocast; default: %(default)s")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--ema", type=float, default=EMA_DECAY,
                   help="decay of the exponential moving average of the weights (and BatchNorm statistics) "
                        "kept over the last run; the average is what is saved (0: no average)")
    p.add_argument("--init", type=Path, default=None,
                   help="start from these weights, skipping the first --skip runs (which produced them)")
    p.add_argument("--skip", type=int, default=0, help="with --init: how many runs the weights already had")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=data.DATA_DIR / "models" / "gapnet.pt")
    p.add_argument("--canvases-only", action="store_true", help="only regenerate data/canvases/test.npz.xz")
    p.add_argument("--evaluate", default=None, metavar="BUNDLE",
                   help="only evaluate a bundle's committed weights (accuracy, pointing game), e.g. gapnet or "
                        "vgg16-cam, and draw the canvas figure")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.evaluate:
        from . import load
        print(json.dumps(evaluate(load(args.evaluate), data.load_canvases("test")), indent=1))
        canvas_figure()
        return
    digest = make_test_canvases()
    print(f"test canvases: {N_TEST}, sha256 {digest[:16]}...")
    if args.canvases_only:
        return

    items, labels = data.fashion_mnist("train")
    photos = data.background_photos("train")
    seed_all(args.seed)
    model = GapNet().to(memory_format=torch.channels_last)
    runs = [(args.seed + i, int(n), float(lr), rest == ["bf16"])
            for i, (n, lr, *rest) in enumerate(r.split(":") for r in args.runs)]
    if any(len(r.split(":")) not in (2, 3) or r.split(":")[2:] not in ([], ["bf16"]) for r in args.runs):
        p.error(f"--runs takes STEPS:LR or STEPS:LR:bf16, got {args.runs}")
    if args.init is not None:
        model.load_state_dict(torch.load(args.init, map_location="cpu", weights_only=True))
    elif args.skip:
        p.error("--skip needs --init")
    t0 = time.time()
    curves, ema, losses = {}, None, []
    test = data.load_canvases("test")
    for i, (seed, steps, lr, bf16) in enumerate(runs[args.skip:], start=args.skip):
        seed_all(seed)
        if i == len(runs) - 1 and args.ema:
            ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)
        gen = data.CanvasGenerator(items, labels, photos, seed=seed)
        t = time.time()
        run_losses = train_steps(model, canvas_batches(gen, args.batch_size), steps, lr=lr, ema=ema,
                                  bf16=bf16)
        curves[f"run{i + 1}"] = {"steps": steps, "lr": lr, "seed": seed, "bf16": bf16,
                                 "minutes": round((time.time() - t) / 60, 1),
                                 "loss_curve": [round(float(np.mean(run_losses[j:j + 100])), 4)
                                                for j in range(0, len(run_losses), 100)],
                                 "test_accuracy": round(accuracy(model, test), 4)}
        print(f"run {i + 1}: {steps} steps at peak lr {lr:g}, test accuracy {curves[f'run{i + 1}']['test_accuracy']}")
        losses += run_losses
    if ema is not None:
        model = ema.module
        model.eval()
    minutes = (time.time() - t0) / 60
    model = model.to(memory_format=torch.contiguous_format)
    acc = accuracy(model, test)
    print(f"trained {len(losses)} steps of {args.batch_size} in {minutes:.1f} min; "
          f"final loss {np.mean(losses[-100:]):.3f}; test accuracy {acc:.4f}")

    sha = save_weights(model.state_dict(), args.out)
    info_path = args.out.with_suffix(".json")
    info = json.loads(info_path.read_text()) if args.init is not None and info_path.exists() else {}
    info.update(curves)
    info.update({"runs": args.runs, "batch_size": args.batch_size, "seed": args.seed, "ema": args.ema,
                 "widths": list(model.widths), "test_accuracy": round(acc, 4),
                 "torch": torch.__version__, "threads": torch.get_num_threads()})
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    print(f"saved {args.out} (sha256 {sha[:16]}...)")


if __name__ == "__main__":
    main()
