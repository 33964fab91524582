"""``flatnet``: a small CNN whose head is *not* global average pooling:  python -m lib.models.flatnet

Chapter 7 needs a network that CAM cannot explain as it is: four conv stages (as ``GapNet``, but
narrower and with one conv in the first stage), then the classic head of AlexNet and VGG: flatten the last conv maps and apply fully
connected layers. Flattening keeps a separate weight for every (channel, x, y), so the class score
is no longer the spatial mean of a map and ``lib.attribution.cam`` refuses it (``NotGapModelError``).
``lib.attribution.retrofit_gap_head`` then puts a conv -> ReLU -> GAP -> linear head on its last
conv features, as Zhou et al. (2016) did for VGG16 and AlexNet.

Trained briefly here (``python -m lib.models.flatnet``) with ``lib.models.train``'s helpers on the
same fresh training canvases as ``gapnet``; the model card is ``data/models/flatnet.md``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import data
from . import save_weights

WEIGHTS = data.DATA_DIR / "models" / "flatnet.pt"


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class FlatNet(nn.Module):
    """Four conv stages (one conv, then three of two; 64 -> 32 -> 16 -> 8 px for a 64 px canvas),
    flatten, two linear layers.

    Layer names (``named_modules``): ``features.<i>`` for the conv trunk (``features.<last>`` is the
    last ReLU, 8 x 8 maps), ``classifier`` = flatten (``classifier.0``), linear
    (``classifier.1``), ReLU, linear (``classifier.3``, the logits). No ``pool``/``fc``: not a GAP model.
    """

    def __init__(self, num_classes: int = 10, widths: tuple[int, ...] = (16, 32, 64, 64), hidden: int = 128,
                 size: int = 64):
        super().__init__()
        w1, w2, w3, w4 = widths
        layers: list[nn.Module] = []
        layers += _conv(3, w1) + [nn.MaxPool2d(2)]                      # 64 -> 32 (one conv: cheap to train)
        layers += _conv(w1, w2) + _conv(w2, w2) + [nn.MaxPool2d(2)]     # 32 -> 16
        layers += _conv(w2, w3) + _conv(w3, w3) + [nn.MaxPool2d(2)]     # 16 -> 8
        layers += _conv(w3, w4) + _conv(w4, w4)                         # 8 x 8
        self.features = nn.Sequential(*layers)
        side = size // 8
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(w4 * side * side, hidden), nn.ReLU(inplace=True),
                                        nn.Linear(hidden, num_classes))
        self.widths, self.hidden = tuple(widths), hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    @property
    def last_conv_layer(self) -> str:
        """Name of the last ReLU of the trunk (the features a retrofitted GAP head reads)."""
        return f"features.{len(self.features) - 1}"


def main(argv=None) -> None:
    from ..device import seed as seed_all
    from .train import accuracy, canvas_batches, train_steps

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=700)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (one-cycle AdamW)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", type=Path, default=WEIGHTS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    items, labels = data.fashion_mnist("train")
    gen = data.CanvasGenerator(items, labels, data.background_photos("train"), seed=args.seed)
    seed_all(args.seed)
    model = FlatNet().to(memory_format=torch.channels_last)
    t0 = time.time()
    losses = train_steps(model, canvas_batches(gen, args.batch_size), args.steps, lr=args.lr)
    minutes = (time.time() - t0) / 60
    model = model.to(memory_format=torch.contiguous_format).eval()
    test = data.load_canvases("test")
    acc = accuracy(model, test)
    print(f"trained {args.steps} steps of {args.batch_size} in {minutes:.1f} min; "
          f"final loss {np.mean(losses[-100:]):.3f}; test accuracy {acc:.4f}")

    sha = save_weights(model.state_dict(), args.out)
    info = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
            "widths": list(model.widths), "hidden": model.hidden,
            "parameters": sum(p.numel() for p in model.parameters()), "minutes": round(minutes, 1),
            "test_accuracy": round(acc, 4), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "loss_curve": [round(float(np.mean(losses[i:i + 100])), 4) for i in range(0, len(losses), 100)]}
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"saved {args.out} ({args.out.stat().st_size / 2**20:.2f} MiB, sha256 {sha[:16]}...)")


if __name__ == "__main__":
    main()
