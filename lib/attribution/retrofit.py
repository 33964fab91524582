"""Retrofitting a GAP head so that CAM applies (Zhou et al. 2016, section 2).

CAM is exact only for networks whose head is global average pooling -> one linear layer. For
others (AlexNet, VGG16, any flatten + fully connected head), the paper removes the layers after a
late conv layer, adds conv 3x3 -> ReLU -> GAP -> linear, and fine-tunes. ``retrofit_gap_head``
does the cheapest version of that recipe: the trunk stays frozen, its features of the training
images are computed once and cached, and only the new head is trained on them, which takes seconds.

    y^c = sum_k w_k^c * (1/Z) sum_xy f_k(x, y) + b^c = (1/Z) sum_xy M_c(x, y) + b^c

holds for the new head by construction, with f = the new conv's ReLU output (``head.1``).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..device import seed as seed_all
from ..hooks import frozen, output_of, resolve_layer

__all__ = ["GapHeadModel", "retrofit_gap_head", "truncate"]


def truncate(model: nn.Module, layer: str, example: torch.Tensor) -> nn.Module:
    """A copy of ``model`` whose modules that run only after ``layer`` are replaced by ``nn.Identity``.

    ``example`` (a model-space batch) is run once to see which modules the forward pass enters
    before ``layer``'s output exists; the others (e.g. a flatten + FC classifier) are dropped, so
    the copy holds only the trunk's parameters. The original model is not touched.
    """
    model = copy.deepcopy(model)
    name, _ = resolve_layer(model, layer)
    entered: set[nn.Module] = set()
    handles = [m.register_forward_pre_hook(lambda m, _i: entered.add(m)) for m in model.modules()]
    try:
        with torch.no_grad(), frozen(model):
            output_of(model, name, example)
    finally:
        for h in handles:
            h.remove()
    named = dict(model.named_modules())
    keep = {n for n, m in named.items() if m in entered}
    keep |= {n for n in named if name == n or name.startswith(n + ".") or n == ""}   # the layer and its ancestors
    keep |= {p for n in list(keep) for p in _prefixes(n)}                            # ancestors of entered modules
    dropped: list[str] = []
    for n in named:
        if n in keep or any(n.startswith(d + ".") for d in dropped):
            continue
        parent_name, _, child = n.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, nn.Identity())
        dropped.append(n)
    return model


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts))]


class GapHeadModel(nn.Module):
    """A trunk (a copy of a network, run up to ``layer``) + the CAM head: conv -> ReLU -> GAP -> linear.

    Layer names: ``trunk.<the original names>``, ``head.0`` (the new conv), ``head.1`` (its ReLU:
    the features f_k(x, y) that CAM weights), ``pool`` (GAP) and ``fc`` (linear), so
    ``lib.attribution.cam`` recognises the head. ``train_losses`` holds the head's training losses.
    """

    def __init__(self, trunk: nn.Module, layer: str, in_channels: int, num_classes: int, width: int = 64,
                 kernel_size: int = 3):
        super().__init__()
        self.trunk, self.trunk_layer = trunk, layer
        self.head = nn.Sequential(nn.Conv2d(in_channels, width, kernel_size, padding=kernel_size // 2),
                                  nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)
        self.train_losses: list[float] = []

    def trunk_features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's output at ``trunk_layer`` for a model-space batch."""
        return output_of(self.trunk, self.trunk_layer, x)

    def classify(self, f: torch.Tensor) -> torch.Tensor:
        """Logits from trunk features: the new head alone."""
        return self.fc(torch.flatten(self.pool(self.head(f)), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.trunk_features(x))


def retrofit_gap_head(bundle, layer: str | None, images: torch.Tensor, labels: torch.Tensor, width: int = 64,
                      kernel_size: int = 3, steps: int = 100, batch_size: int = 128, lr: float = 5e-3,
                      weight_decay: float = 1e-4, seed: int = 0, feature_batch: int = 250,
                      progress: bool = False):
    """A new bundle: ``bundle``'s network up to ``layer`` (frozen) + a GAP head trained on the images.

    ``layer``: the conv features to build on (default: the bundle's default layer), e.g. the last
    conv ReLU. ``images`` (display space, N x 3 x H x W) and ``labels`` (N) train the head:
    the trunk's features are computed once (``feature_batch`` at a time) and cached, then the head
    (conv ``kernel_size`` x ``kernel_size`` to ``width`` channels, ReLU, GAP, linear) is trained for
    ``steps`` AdamW steps of ``batch_size`` with a one-cycle schedule peaking at ``lr``.
    Deterministic for a given ``seed`` on a given device (it calls ``lib.seed(seed)``). ``bundle``
    and its model are left as they were; the new bundle holds a copy of the trunk, whose parameters
    the training never changes. The cached features live on ``bundle.device``: N x C x h x w floats.
    The new bundle's ``layers``: ``cam``/``gradcam``/``default`` = ``head.1``, ``trunk`` = the
    trunk's ``layer``, and the original bundle's other layers that remain, prefixed with ``trunk.``.
    """
    from ..models import Bundle

    classes = bundle.require_classes("retrofit_gap_head")
    layer = resolve_layer(bundle.model, layer or bundle.layer("default"))[0]     # a name; unknown: close matches
    labels = torch.as_tensor(labels).long()
    if images.dim() != 4 or len(images) != len(labels):
        raise ValueError(f"expected images N x 3 x H x W and N labels, got {tuple(images.shape)} and {len(labels)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"labels must lie in 0..{len(classes) - 1} (the bundle's {len(classes)} classes)")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be at least 1, got {steps} and {batch_size}")
    device = bundle.device
    gen = seed_all(seed)

    trunk = truncate(bundle.model, layer, bundle.preprocess(images[:1].to(device)))
    with torch.no_grad(), frozen(trunk):
        feats = torch.cat([output_of(trunk, layer, bundle.preprocess(images[i:i + feature_batch].to(device)))
                           for i in range(0, len(images), feature_batch)])
    if feats.dim() != 4:
        raise ValueError(f"layer {layer!r} gives {tuple(feats.shape[1:])} per image; a GAP head needs conv "
                         f"feature maps (C x H x W). Pick a conv layer, e.g. the last conv ReLU.")
    model = GapHeadModel(trunk, layer, feats.shape[1], len(classes), width, kernel_size).to(device)
    head = nn.ModuleList([model.head, model.fc])

    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    # one-cycle schedule (warm-up over 20% of the steps, at least 1.5 steps so very short runs work too)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=min(0.75, max(0.2, 1.5 / steps))) if steps > 1 else None
    y = labels.to(device)
    batches: list[torch.Tensor] = []          # epochs of shuffled full batches, as many as the steps need
    while len(batches) < steps:
        perm = torch.randperm(len(feats), generator=gen)
        batches += [perm[i:i + batch_size] for i in range(0, max(1, len(feats) - batch_size + 1), batch_size)]
    model.eval()          # the trunk's BatchNorm/dropout stay in eval mode; the head has neither
    with frozen(trunk):
        for step in tqdm(range(steps), desc="GAP head", disable=not progress):
            idx = batches[step].to(device)
            loss = F.cross_entropy(model.classify(feats[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            model.train_losses.append(loss.item())
    model.eval()
    pretty = f"conv{kernel_size}x{kernel_size}-{width} -> ReLU -> GAP -> linear"
    layers = {k: f"trunk.{v}" for k, v in bundle.layers.items() if f"trunk.{v}" in dict(model.named_modules())}
    layers.update({"default": "head.1", "cam": "head.1", "gradcam": "head.1", "features": "pool",
                   "trunk": f"trunk.{layer}"})
    return Bundle(name=f"{bundle.name} + GAP head (retrofitted)", model=model, preprocess=bundle.preprocess,
                  deprocess=bundle.deprocess, classes=classes, input_size=bundle.input_size, layers=layers,
                  description=f"{bundle.name} up to {layer} (frozen) + a {pretty} head trained on "
                              f"{len(feats)} images for {steps} steps")

