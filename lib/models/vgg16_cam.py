"""``vgg16-cam``: the CAM paper's VGG16 recipe on the offline ``vgg16-hed`` trunk.

Zhou et al. (2016) turn VGG16 into a CAM network by removing everything after a late conv layer
and adding conv 3x3 -> ReLU -> global average pooling -> linear, then fine-tuning. Here:

- trunk: ``vgg16-hed`` up to conv4_3 (``features.0`` ... ``features.22``, names as in VGG16);
  cut at conv4_3 because, measured on frozen features, conv4_3 reached 69% on the canvases and
  conv5_3 only 58% (HED's fine-tuning made the deepest block edge-specific), and because the
  map stays 14x14 at 112 px instead of 7x7;
- head: ``head`` = conv 3x3 (512 -> 256) + ReLU (the CAM features, ``head.1``), ``pool`` (GAP), ``fc``;
- training (``python -m lib.models.vgg16_cam``): canvases upscaled to 112 px; block 1-3 frozen
  (their output is computed once and cached), first the head alone, then block 4 and the head
  together at a 10x smaller learning rate for block 4.

Only the weights that differ from the .h5 are committed (block 4 and the head, float16), in
``data/models/vgg16-cam.pt`` with its sha256; ``load("vgg16-cam")`` assembles them.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import data
from ..device import seed as seed_all
from ..images import resize
from .hed import VGG16Features, load_hed_state
from . import save_weights

SIZE = 112
CUT = 23            # features[:23] ends with conv4_3's ReLU (features.22)
FROZEN = 17         # features[:17] (blocks 1-3 and the third pool) stay as in the .h5
WEIGHTS = data.DATA_DIR / "models" / "vgg16-cam.pt"


class VGG16CAM(nn.Module):
    """VGG16 conv layers up to conv4_3 + the CAM head (conv 3x3, ReLU, GAP, linear)."""

    def __init__(self, num_classes: int = 10, width: int = 256):
        super().__init__()
        self.features = VGG16Features().features[:CUT]
        self.head = nn.Sequential(nn.Conv2d(512, width, 3, padding=1), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.head(self.features(x))), 1))


def build(trained: Path | None = WEIGHTS) -> VGG16CAM:
    """The network with the .h5 trunk and, if given, the trained block 4 + head on top."""
    model = VGG16CAM()
    state = load_hed_state()
    model.load_state_dict({k: v for k, v in state.items() if k.startswith("features.")
                           and int(k.split(".")[1]) < CUT}, strict=False)
    if trained is not None:
        tuned = torch.load(trained, map_location="cpu", weights_only=True)
        missing = model.load_state_dict({k: v.float() for k, v in tuned.items()}, strict=False)
        assert not missing.unexpected_keys, missing.unexpected_keys
    return model.eval()


@torch.no_grad()
def _cache(model: VGG16CAM, images: torch.Tensor, stop: int, batch: int = 64, desc: str = "caching") -> torch.Tensor:
    from .hed import caffe_preprocess
    out = []
    for i in tqdm(range(0, len(images), batch), desc=desc, mininterval=10):
        out.append(model.features[:stop](caffe_preprocess(resize(images[i:i + batch], (SIZE, SIZE)))))
    return torch.cat(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--canvases", type=int, default=6000)
    p.add_argument("--head-epochs", type=int, default=2)
    p.add_argument("--joint-epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=WEIGHTS)
    args = p.parse_args(argv)

    seed_all(args.seed)
    t0 = time.time()
    items, labels = data.fashion_mnist("train")
    gen = data.CanvasGenerator(items, labels, data.background_photos("train"), seed=args.seed + 1)
    train = data.to_canvases(gen.sample(args.canvases))
    model = build(trained=None)
    for prm in model.features.parameters():
        prm.requires_grad_(False)
    cached = _cache(model, train.images, FROZEN)                     # N x 256 x 14 x 14
    block4 = model.features[FROZEN:]
    head = nn.ModuleList([model.head, model.fc])

    def run(epochs: int, tune_block4: bool, lr: float) -> None:
        for prm in block4.parameters():
            prm.requires_grad_(tune_block4)
        groups = [{"params": head.parameters(), "lr": lr}]
        if tune_block4:
            groups.append({"params": block4.parameters(), "lr": lr / 10})
        opt = torch.optim.AdamW(groups, weight_decay=1e-4)
        steps = epochs * (len(cached) // args.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=steps,
                                                    pct_start=0.1)
        model.train()
        bar = tqdm(range(steps), desc="block 4 + head" if tune_block4 else "head", mininterval=10)
        g = torch.Generator().manual_seed(args.seed)
        order = torch.cat([torch.randperm(len(cached), generator=g) for _ in range(epochs)])
        for step in bar:
            idx = order[step * args.batch_size:(step + 1) * args.batch_size]
            with torch.set_grad_enabled(tune_block4):
                f = block4(cached[idx])
            loss = F.cross_entropy(model.fc(torch.flatten(model.pool(model.head(f)), 1)), train.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        model.eval()

    run(args.head_epochs, False, args.lr)
    run(args.joint_epochs, True, args.lr)
    minutes = (time.time() - t0) / 60

    tuned = {k: v.half() for k, v in model.state_dict().items()
             if not k.startswith("features.") or int(k.split(".")[1]) >= FROZEN}
    save_weights(tuned, args.out)
    info = {"canvases": args.canvases, "size": SIZE, "head_epochs": args.head_epochs,
            "joint_epochs": args.joint_epochs, "batch_size": args.batch_size, "lr": args.lr,
            "seed": args.seed, "minutes": round(minutes, 1), "torch": torch.__version__}
    from . import load
    from .train import evaluate
    info.update(evaluate(load("vgg16-cam", device="cpu", weights_path=args.out), data.load_canvases("test")))
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info, indent=1))
    print(f"saved {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB) after {minutes:.1f} min")


if __name__ == "__main__":
    main()
