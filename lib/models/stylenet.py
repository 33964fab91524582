"""Fast style transfer: one feed-forward network for several styles.

``StyleNet`` is Johnson et al.'s (2016) image-transformation network (down-sampling convs, five
residual blocks, up-sampling convs; about 1.7 M parameters) with *conditional instance
normalisation* (Dumoulin et al. 2017): every normalisation layer has one scale and shift per
style, so one set of conv weights holds all the styles, and mixing the scales and shifts
interpolates between them.

``python -m lib.models.stylenet`` trains it here on crops of the course's training photos with
the ``vgg16-hed`` loss network (content at conv2_2, style Grams at conv1_2, conv2_2, conv3_3,
conv4_3, as Johnson et al.), and writes ``data/models/stylenet.pt`` (+ .sha256, .json).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import data

__all__ = ["StyleNet", "STYLES", "WEIGHTS", "load_stylenet", "train"]

#: The styles of the committed network, in order (data/images/<name>.jpg).
STYLES = ("starry_night", "elephants", "truchet")
WEIGHTS = data.DATA_DIR / "models" / "stylenet.pt"
CONTENT_LAYER = "conv2_2"
STYLE_LAYERS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3")
MIN_CROP_STD = 0.02   # training crops flatter than this are drawn again (see _crops)


class CondInstanceNorm(nn.Module):
    """Instance normalisation with one (gamma, beta) per style; ``mix`` (N x styles) blends them."""

    def __init__(self, channels: int, n_styles: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(n_styles, channels))
        self.beta = nn.Parameter(torch.zeros(n_styles, channels))

    def forward(self, x: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):   # statistics in float32 even under bf16 autocast
            x = F.instance_norm(x.float(), eps=1e-5)
            mix = mix.float()
            return x * (mix @ self.gamma)[:, :, None, None] + (mix @ self.beta)[:, :, None, None]


class _ConvNorm(nn.Module):
    def __init__(self, cin, cout, k, n_styles, stride=1, upsample=False, relu=True):
        super().__init__()
        self.upsample, self.relu = upsample, relu
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=k // 2, padding_mode="reflect")
        self.norm = CondInstanceNorm(cout, n_styles)

    def forward(self, x, mix):
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.norm(self.conv(x), mix)
        return F.relu(x) if self.relu else x


class _Residual(nn.Module):
    def __init__(self, c, n_styles):
        super().__init__()
        self.a = _ConvNorm(c, c, 3, n_styles)
        self.b = _ConvNorm(c, c, 3, n_styles, relu=False)

    def forward(self, x, mix):
        return x + self.b(self.a(x, mix), mix)


class StyleNet(nn.Module):
    """Display-space image in, stylised display-space image of the same size out (in [0, 1])."""

    def __init__(self, n_styles: int = len(STYLES), styles: Sequence[str] = STYLES):
        super().__init__()
        self.styles = tuple(styles)[:n_styles]
        self.n_styles = n_styles
        self.down = nn.ModuleList([_ConvNorm(3, 32, 9, n_styles), _ConvNorm(32, 64, 3, n_styles, stride=2),
                                   _ConvNorm(64, 128, 3, n_styles, stride=2)])
        self.res = nn.ModuleList([_Residual(128, n_styles) for _ in range(5)])
        self.up = nn.ModuleList([_ConvNorm(128, 64, 3, n_styles, upsample=True),
                                 _ConvNorm(64, 32, 3, n_styles, upsample=True)])
        self.out = nn.Conv2d(32, 3, 9, padding=4, padding_mode="reflect")

    def style_mix(self, style, n: int, device) -> torch.Tensor:
        """N x styles weights from a style index, a name, or a weight vector (e.g. [0.5, 0.5, 0])."""
        if isinstance(style, str):
            if style not in self.styles:
                raise ValueError(f"unknown style {style!r}: this network knows {', '.join(self.styles)}")
            style = self.styles.index(style)
        if isinstance(style, int):
            if not 0 <= style < self.n_styles:
                raise ValueError(f"style index {style} out of range: the network has {self.n_styles} styles")
            mix = F.one_hot(torch.tensor(style), self.n_styles).float()
        else:
            mix = torch.as_tensor(style, dtype=torch.float32)
            if mix.shape[-1] != self.n_styles:
                raise ValueError(f"a style mix needs {self.n_styles} weights, got shape {tuple(mix.shape)}")
        mix = mix.to(device)
        return mix.expand(n, -1) if mix.dim() == 1 else mix

    def forward(self, x: torch.Tensor, style=0) -> torch.Tensor:
        h, w = x.shape[-2:]
        mix = self.style_mix(style, x.shape[0], x.device)
        y = x
        for layer in self.down:
            y = layer(y, mix)
        for layer in self.res:
            y = layer(y, mix)
        for layer in self.up:
            y = layer(y, mix)
        y = torch.sigmoid(self.out(y))
        return y if y.shape[-2:] == (h, w) else F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)


def load_stylenet(device=None, weights_path: Path | None = None) -> StyleNet:
    """The committed multi-style network (sha256 checked), in eval mode."""
    from . import _load_weights
    from ..device import best_device

    net = _load_weights(StyleNet(), Path(weights_path) if weights_path else WEIGHTS, "python -m lib.models.stylenet",
                        "about 25 minutes of CPU")
    return net.to(device or best_device()).eval()


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def _crops(photos: list[np.ndarray], n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """``n`` random square crops (random side 0.5-1 of the short side, flipped half the time) resized to
    ``size``. Flat crops (pixel standard deviation under ``MIN_CROP_STD``, e.g. a uniform border) are
    drawn again: their instance-norm statistics are degenerate and their gradients overflow."""
    from ..images import resize

    out = []
    while len(out) < n:
        p = photos[torch.randint(len(photos), (1,), generator=g).item()]
        h, w = p.shape[:2]
        side = int(min(h, w) * (0.5 + 0.5 * torch.rand(1, generator=g).item()))
        y = torch.randint(h - side + 1, (1,), generator=g).item()
        x = torch.randint(w - side + 1, (1,), generator=g).item()
        crop = torch.from_numpy(np.ascontiguousarray(p[y:y + side, x:x + side])).permute(2, 0, 1).float() / 255
        if crop.std() < MIN_CROP_STD:
            continue
        if torch.rand(1, generator=g).item() < 0.5:
            crop = crop.flip(-1)
        out.append(resize(crop[None], (size, size)))
    return torch.cat(out)


def style_losses(bundle, y: torch.Tensor, x: torch.Tensor, targets: dict, style_idx: torch.Tensor):
    """(content, style, tv) losses per image of outputs ``y`` for inputs ``x``; ``targets[layer]``
    holds one Gram matrix per style (styles x C x C), ``style_idx`` picks each image's."""
    from ..synthesis import activations, total_variation
    from ..synthesis.style import content_loss
    from ..synthesis.texture import texture_loss

    layers = list(dict.fromkeys([*STYLE_LAYERS, CONTENT_LAYER]))
    feats = activations(bundle, layers, y)
    with torch.no_grad():
        ref = activations(bundle, [CONTENT_LAYER], x)[CONTENT_LAYER]
    c = content_loss(feats[CONTENT_LAYER], ref)
    s = texture_loss(feats, {k: targets[k][style_idx] for k in STYLE_LAYERS})
    return c, s, total_variation(y)


def train(steps: int = 2000, batch_size: int = 4, size: int = 128, style_size: int = 256, lr: float = 1e-3,
          style_weight: float = 0.6, style_warmup: int = 300, tv_weight: float = 1.0, seed: int = 0, bf16: bool = False,
          device=None, progress: bool = True, photos: list[np.ndarray] | None = None,
          curve_every: int = 100) -> tuple[StyleNet, dict]:
    """Train a ``StyleNet`` on the ``STYLES``; returns it (eval mode) and a record of the run
    (its ``loss_curve``: mean total, content and style loss over every ``curve_every`` steps).

    The style weight ramps up linearly over the first ``style_warmup`` steps: the network first
    learns to reproduce its input, then to paint it. Without the ramp it settled on painting a
    texture whatever the input (measured at style weight 1: content loss 0.97 on a test photo
    after 300 steps; 0.79-0.97 after 400 steps with a 200-step ramp)."""
    from .. import images, models
    from ..device import best_device, seed as seed_all
    from ..synthesis.texture import gram_targets

    device = torch.device(device) if device else best_device()
    g = seed_all(seed)
    loss_net = models.load("vgg16-hed", device=device)
    style_images = [images.load(data.DATA_DIR / "images" / f"{s}.jpg", size=style_size) for s in STYLES]
    per_style = [gram_targets(loss_net, s.to(device), STYLE_LAYERS) for s in style_images]
    targets = {k: torch.cat([t[k] for t in per_style]) for k in STYLE_LAYERS}
    photos = photos if photos is not None else data.background_photos("train", short_side=256)
    net = StyleNet().to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    curve, t0, skipped = [], time.time(), 0
    from ..hooks import frozen
    with frozen(loss_net.model):
        bar = tqdm(range(steps), desc="stylenet", disable=not progress, mininterval=5)
        for step in bar:
            x = _crops(photos, batch_size, size, g).to(device)
            idx = torch.randint(len(STYLES), (batch_size,), generator=g)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                y = net(x, F.one_hot(idx, len(STYLES)).float())
                c, s, t = style_losses(loss_net, y.float(), x, targets, idx.to(device))
                ramp = min(1.0, (step + 1) / style_warmup) if style_warmup else 1.0
                loss = (c + ramp * style_weight * s + tv_weight * t).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), float("inf"))
            if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
                skipped += 1                       # a non-finite step (bf16 overflow) is dropped, not taken
                if skipped > max(10, steps // 100):
                    raise FloatingPointError(f"{skipped} non-finite steps out of {step + 1}: training diverged "
                                             "(try without --bf16, or a lower learning rate)")
                continue
            opt.step()
            curve.append([loss.item(), c.mean().item(), s.mean().item()])
            if step % 50 == 0:
                bar.set_postfix(loss=f"{np.mean([r[0] for r in curve[-50:]]):.3f}", skipped=skipped)
    net.eval()
    record = {"steps": steps, "batch_size": batch_size, "size": size, "style_size": style_size, "lr": lr,
              "style_weight": style_weight, "style_warmup": style_warmup, "tv_weight": tv_weight, "seed": seed,
              "bf16": bf16, "skipped_steps": skipped,
              "styles": list(STYLES), "minutes": round((time.time() - t0) / 60, 1), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "device": str(device),
              "loss_curve": [[round(float(v), 4) for v in np.mean(curve[i:i + curve_every], axis=0)]
                             for i in range(0, len(curve), curve_every)]}
    return net, record


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--style-weight", type=float, default=0.6)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (about 2x faster on a CPU with AVX512-BF16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=Path, default=WEIGHTS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from . import save_weights

    net, record = train(args.steps, args.batch_size, args.size, style_weight=args.style_weight, seed=args.seed,
                        bf16=args.bf16, device=args.device)
    sha = save_weights({k: v.cpu() for k, v in net.state_dict().items()}, args.out)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"trained {args.steps} steps in {record['minutes']} min; saved {args.out} (sha256 {sha[:16]}...)")


if __name__ == "__main__":
    main()
