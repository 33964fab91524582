"""Time lib's explanation methods against the peers (Captum, pytorch-grad-cam) and write a Markdown table.

    python benchmarks/peers.py [--quick] [--only REGEX] [--no-write]

Every comparison runs lib and the peer on the same model, images, classes and settings, in one
process, interleaved round-robin over the rounds (the order flips every round), together with one
plain forward pass of the same batch (``torch.no_grad()``), the unit. Ratios are per round, then
the median. Each pair is checked to compute the same map (``check`` column); a pair that disagrees
stops the script.

- Models: ResNet-50 with random weights (torchvision init, ``torch.manual_seed(0)``) at 224 px,
  and the course's gapnet at 64 px; batches of 1 and 16 images, each explained for its predicted
  class, given explicitly to both sides (so neither spends a forward pass finding it).
- Peers are used as their documentation shows: on a deep copy of the network (parameters
  ``requires_grad=True``, as loaded) behind the bundle's preprocessing, so the inputs and maps are
  in the same display space as lib's.
- Torch threads: the default (``torch.get_num_threads()``, 2 on the course machine).

Settings, equal on both sides (see ``SETTINGS``):

- saliency: ``lib.saliency`` vs ``captum.attr.Saliency(abs=True)``, then max over colour channels.
- SmoothGrad: ``lib.smoothgrad(noise=0.15, samples=25)`` vs ``NoiseTunnel(Saliency)`` with
  ``nt_type='smoothgrad', nt_samples=25, stdevs=0.15, abs=False`` (lib averages the signed
  gradients, then max_c |.|). Every image is min-max scaled to exactly [0, 1] beforehand, so lib's
  sigma = 0.15 x (max - min) is Captum's stdevs = 0.15. Internal batch: Captum's
  ``nt_samples_batch_size=k`` puts k x N noisy copies through each pass, so lib gets
  ``batch_size = k x N``. The noise itself is random on both sides, so the check runs both with
  *lib's* noise patterns fed into Captum (``_SameNoise``) and asserts the maps are equal; the timed
  maps (independent noise) are reported by their correlation.
- occlusion: ``lib.occlusion(fill=0.5)`` vs ``captum.attr.Occlusion`` on the softmax with
  ``sliding_window_shapes=(3, w, w), strides=(3, s, s), baselines=0.5``, channel 0 of its
  (channel-constant) map. Captum's ``perturbations_per_eval=p`` puts p x N occluded copies through
  each pass, so lib gets ``batch_size = p x N``.
- Grad-CAM: ``lib.grad_cam`` vs ``pytorch_grad_cam.GradCAM`` at the same layer (ResNet-50:
  ``layer4``; gapnet: its last ReLU), both ReLU'd and bilinearly upsampled to the input; the maps
  are compared after min-max scaling (``lib.images.normalize_map``), which pytorch-grad-cam applies.
- guided backprop: ``lib.guided_backprop(rule='guided')`` vs
  ``pytorch_grad_cam.GuidedBackpropReLUModel``, the raw input gradients. The peer explains only
  image 0 of a batch (``output[0, target]``), so for a batch it is called once per image.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import math
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib import data, images, models  # noqa: E402
from lib.device import torch_threads  # noqa: E402
from lib.attribution import grad_cam, guided_backprop, occlusion, saliency, smoothgrad  # noqa: E402
from lib.images import normalize_map  # noqa: E402

from captum.attr import NoiseTunnel, Occlusion, Saliency  # noqa: E402
from pytorch_grad_cam import GradCAM, GuidedBackpropReLUModel  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

OUT = ROOT / "benchmarks" / "peers.md"
BATCHES = (1, 16)
METHODS = ("saliency", "SmoothGrad", "occlusion", "Grad-CAM", "guided backprop")
PEER = {"saliency": "Captum", "SmoothGrad": "Captum", "occlusion": "Captum", "Grad-CAM": "pytorch-grad-cam",
        "guided backprop": "pytorch-grad-cam"}
GRADCAM_LIMIT = 1.1          # Grad-CAM: at most this many forward passes (upsampling included)
TIE = 1.05                   # lib/peer up to this is a tie: the same passes, and the noise of a shared machine

#: Per model: image side; occlusion window, stride and occluded copies per pass; SmoothGrad noisy
#: copies per image and pass (Captum's nt_samples_batch_size) for each batch size.
SETTINGS = {
    "resnet50": dict(size=224, window=112, stride=56, occ_copies=64, sg_k={1: 25, 16: 1},
                     sg_check={1: 5, 16: 2}),
    "gapnet": dict(size=64, window=16, stride=8, occ_copies=256, sg_k={1: 25, 16: 25},
                   sg_check={1: 25, 16: 5}),
}
NOISE, SAMPLES = 0.15, 25

#: Timed rounds per (method, model, batch): (rounds, rounds with the peer, warm-up round first).
#: Every round times lib; the peer is timed in the first ``peer`` rounds only (Grad-CAM: the
#: target is lib vs the forward pass, and pytorch-grad-cam is 3x slower). Without a
#: warm-up round (cases that take minutes) the maps of the first timed round are checked, after it.
#: --quick: a third of the rounds (at least 1), and never more peer rounds than rounds.
#: A busy machine runs everything several times slower, so a row also stops after its time budget
#: (seconds of timed rounds, a third with --quick) once it has MIN_ROUNDS rounds (or all it plans).
DEFAULT_PLAN = (7, 7, True)
BUDGET_S = {None: 20.0, "Grad-CAM": 40.0, "SmoothGrad": 60.0, "occlusion": 30.0}
MIN_ROUNDS = 3
CONTROL_ROUNDS, CONTROL_BUDGET_S = {("resnet50", 16): 3}, 15.0   # Grad-CAM at one thread (see _control)
BLOCK_S, MAX_CALLS = 0.2, 50   # fast rows are timed in blocks of k calls (k of the slowest call take >= BLOCK_S)
PLAN = {
    ("Grad-CAM", "resnet50", 1): (41, 5, True), ("Grad-CAM", "gapnet", 1): (41, 7, True),
    ("Grad-CAM", "gapnet", 16): (41, 7, True), ("Grad-CAM", "resnet50", 16): (7, 2, True),
    ("saliency", "resnet50", 16): (1, 1, False), ("guided backprop", "resnet50", 16): (1, 1, False),
    ("SmoothGrad", "resnet50", 1): (5, 5, True), ("SmoothGrad", "resnet50", 16): (1, 1, False),
    ("occlusion", "resnet50", 1): (5, 5, True), ("occlusion", "resnet50", 16): (3, 3, False),
    ("SmoothGrad", "gapnet", 16): (5, 5, False), ("occlusion", "gapnet", 16): (5, 5, False),
    ("guided backprop", "gapnet", 16): (3, 3, True),
}


def _plan(key, quick: bool) -> tuple[int, int, bool, float]:
    rounds, peer, warm = PLAN.get(key, DEFAULT_PLAN)
    budget = BUDGET_S.get(key[0], BUDGET_S[None])
    if quick:
        rounds = max(1, rounds // 3)
        peer = max(1, min(rounds, peer // 3))
        budget /= 3
    return rounds, peer, warm, budget


# --------------------------------------------------------------------------- inputs and peer models
def _photos(n: int, size: int) -> torch.Tensor:
    """``n`` photos from data/images, centre-cropped to size x size, and their mirror images."""
    paths = sorted((data.DATA_DIR / "images").glob("*.jpg"))
    out = []
    for p in paths:
        img = images.load(p, size=size)
        h, w = img.shape[-2:]
        top, left = (h - size) // 2, (w - size) // 2
        out.append(img[..., top:top + size, left:left + size])
    x = torch.cat(out)
    return torch.cat([x, x.flip(-1)])[:n]


class Preprocessed(nn.Module):
    """What a peer gets: a copy of the bundle's network behind its preprocessing (display space in)."""

    def __init__(self, bundle):
        super().__init__()
        self.net = copy.deepcopy(bundle.model).eval()
        self.net.requires_grad_(True)
        self.pre = bundle.preprocess

    def forward(self, x):
        return self.net(self.pre(x))


class _SameNoise(NoiseTunnel):
    """Captum's NoiseTunnel, but drawing lib.smoothgrad's noise patterns instead of ``torch.normal``
    (the correctness check only: it makes the two SmoothGrads comparable to float precision)."""

    def __init__(self, method, patterns):
        super().__init__(method)
        self.patterns, self.used = patterns, 0

    def _add_noise_to_input(self, input, stdev, nt_samples_partition):
        k, n = nt_samples_partition, input.shape[0]
        noise = self.patterns[self.used:self.used + k]             # samples used..used+k-1 of every image
        self.used += k
        return input.repeat_interleave(k, dim=0) + stdev * noise.repeat(n, 1, 1, 1)


def _lib_patterns(shape, samples: int, seed: int = 0) -> torch.Tensor:
    """The noise patterns lib.smoothgrad draws for ``seed`` (see smoothgrad_steps)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randn(tuple(shape), generator=gen) for _ in range(samples)])


# --------------------------------------------------------------------------- comparisons
def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    """The smallest per-image Pearson correlation of two batches of maps."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return float(((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-300)).min())


def _agree(what: str, ours: torch.Tensor, theirs: torch.Tensor, tol: float) -> str:
    rel, r = _rel(ours, theirs), _corr(ours, theirs)
    if not (rel <= tol and r >= 0.999):
        raise AssertionError(f"{what}: lib and peer disagree (max rel. diff {rel:.2e} > {tol:.0e}, or r = {r:.5f})")
    return f"rel {rel:.0e}"


# --------------------------------------------------------------------------- the cases
class Case:
    """One row: lib and peer callables, their check, and the forward pass of the same batch."""

    def __init__(self, method, model, bundle, peers, x, t):
        self.method, self.model, self.batch = method, model, len(x)
        self.bundle, self.x, self.t = bundle, x, t
        s, n = SETTINGS[model], len(x)
        b, xs, tl = bundle, x, t.tolist()
        if method == "saliency":
            sal = Saliency(peers["captum"])
            self.lib = lambda: saliency(b, xs, t, batch_size=n)
            self.peer = lambda: sal.attribute(xs, target=t, abs=True).amax(1)
        elif method == "SmoothGrad":
            k = s["sg_k"][n]
            nt = NoiseTunnel(Saliency(peers["captum"]))
            self.settings = f"noise 0.15, 25 samples, {k * n} copies/pass"
            self.lib = lambda: smoothgrad(b, xs, t, noise=NOISE, samples=SAMPLES, batch_size=k * n, seed=0)
            self.peer = lambda: nt.attribute(xs, nt_type="smoothgrad", nt_samples=SAMPLES, nt_samples_batch_size=k,
                                             stdevs=NOISE, target=t, abs=False).abs().amax(1)
        elif method == "occlusion":
            w, st, p = s["window"], s["stride"], max(1, s["occ_copies"] // n)
            occ = Occlusion(lambda z: peers["captum"](z).softmax(1))
            self.settings = f"window {w}, stride {st}, {p * n} copies/pass"
            self.lib = lambda: occlusion(b, xs, t, window=w, stride=st, fill=0.5, batch_size=p * n)
            self.peer = lambda: occ.attribute(xs, sliding_window_shapes=(3, w, w), strides=(3, st, st),
                                              baselines=0.5, target=t, perturbations_per_eval=p)[:, 0]
        elif method == "Grad-CAM":
            layer = b.layer("gradcam")
            cam = peers["gradcam"]
            self.settings = f"layer {layer}"
            self.lib = lambda: grad_cam(b, xs, t, layer=layer, batch_size=n)
            self.peer = lambda: torch.from_numpy(cam(input_tensor=xs, targets=[ClassifierOutputTarget(c) for c in tl]))
        elif method == "guided backprop":
            gb = peers["guided"]
            self.lib = lambda: guided_backprop(b, xs, t, rule="guided", batch_size=n)
            self.peer = lambda: torch.from_numpy(np.stack(
                [gb(xs[i:i + 1].clone(), target_category=c) for i, c in enumerate(tl)])).permute(0, 3, 1, 2)
        else:
            raise ValueError(method)
        self.peers = peers

    def forward(self):
        with torch.no_grad():
            return self.bundle(self.x)

    def check(self, ours, theirs) -> str:
        """Assert lib's and the peer's maps agree (``ours``/``theirs``: their first outputs)."""
        what = f"{self.method} {self.model} batch {self.batch}"
        if self.method == "SmoothGrad":
            # the same noise patterns on both sides: then the maps must be equal to float precision.
            # ResNet-50: fewer samples than 25 (same settings otherwise), to save minutes of passes
            k, n = SETTINGS[self.model]["sg_k"][self.batch], self.batch
            samples = SETTINGS[self.model]["sg_check"][n]
            kk = min(k, samples)
            nt = _SameNoise(Saliency(self.peers["captum"]), _lib_patterns(self.x.shape[1:], samples))
            theirs_same = nt.attribute(self.x, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=kk,
                                       stdevs=NOISE, target=self.t, abs=False).abs().amax(1)
            ours_same = smoothgrad(self.bundle, self.x, self.t, noise=NOISE, samples=samples, batch_size=kk * n,
                                   seed=0)
            note = _agree(what + " (same noise)", ours_same, theirs_same, 1e-4)
            return f"{note} ({samples} samples, same noise); r {_corr(ours, theirs):.2f} (own noise)"
        if self.method == "Grad-CAM":
            return _agree(what, normalize_map(ours), theirs, 1e-4) + " (min-max scaled)"
        if self.method == "guided backprop" and self.batch > 1:
            # the peer runs the images one at a time: batched convolutions round differently, and
            # the guided rule's max(g, 0) at every ReLU lets a rounding-size change flip a few values
            return _agree(what, ours, theirs, 1e-2) + " (peer one image at a time)"
        return _agree(what, ours, theirs, 1e-4)


def _cases(only: str | None):
    """(bundle, peers, Case) for every row, built lazily per model (peers: deep copies of the network)."""
    for model in ("resnet50", "gapnet"):
        names = [(m, model, n) for n in BATCHES for m in METHODS]
        if only:
            names = [k for k in names if re.search(only, f"{k[0]} {k[1]} {k[2]}", re.I)]
        if not names:
            continue
        torch.manual_seed(0)
        bundle = models.load(model, weights=None) if model == "resnet50" else models.load(model)
        size = SETTINGS[model]["size"]
        x = _photos(16, size) if model == "resnet50" else data.load_canvases("test", 16).images
        x = normalize_map(x)          # each image min-max scaled to exactly [0, 1], so that SmoothGrad's
                                      # sigma (a fraction of the value range) is Captum's stdevs
        with torch.no_grad():
            t = bundle(x).argmax(1)
        gc_model = Preprocessed(bundle)
        peers = {"captum": Preprocessed(bundle), "guided": GuidedBackpropReLUModel(Preprocessed(bundle)),
                 "gradcam": GradCAM(gc_model, [gc_model.net.get_submodule(bundle.layer("gradcam"))])}
        for method, _, n in names:
            yield Case(method, model, bundle, peers, x[:n], t[:n])


# --------------------------------------------------------------------------- timing
def _time(case: Case, rounds: int, peer_rounds: int, warm: bool, budget: float) -> dict:
    """Time the case: up to ``rounds`` rounds of [forward pass, lib, peer] (the order flips every round;
    the peer only in the first ``peer_rounds``); stop after ``budget`` seconds once ``MIN_ROUNDS``
    rounds are done. Ratios are per round (the calls of one round ran at nearly the same time)."""
    calls = [("fwd", case.forward), ("lib", case.lib), ("peer", case.peer)]
    first, check, k = {}, None, 1
    if warm:                                              # warm-up round, whose maps are checked
        slowest = 0.0
        for name, f in calls:
            t0 = time.perf_counter()
            first[name] = f()
            slowest = max(slowest, time.perf_counter() - t0)
        k = max(1, min(MAX_CALLS, math.ceil(BLOCK_S / slowest)))   # calls per timing
        check = case.check(first["lib"], first["peer"])
    times = {name: [] for name, _ in calls}
    start = time.perf_counter()
    for r in range(rounds):
        if r >= min(MIN_ROUNDS, rounds) and time.perf_counter() - start > budget:
            break
        for name, f in (calls if r % 2 == 0 else calls[::-1]):
            if name == "peer" and r >= peer_rounds:
                continue
            t0 = time.perf_counter()
            for _ in range(k):
                out = f()
            times[name].append((time.perf_counter() - t0) / k)
            first.setdefault(name, out)
    if not warm:
        check = case.check(first["lib"], first["peer"])

    def ratios(a, b):
        return sorted(x / y for x, y in zip(times[a], times[b]))

    med = statistics.median
    lp, lf = ratios("lib", "peer"), ratios("lib", "fwd")
    n_lib, n_peer = len(times["lib"]), len(times["peer"])
    return {"fwd": times["fwd"], "med": {k: med(v) for k, v in times.items()},
            "lib/peer": med(lp), "lib/fwd": med(lf), "peer/fwd": med(ratios("peer", "fwd")),
            "range": {"lib/peer": (lp[0], lp[-1], len(lp)), "lib/fwd": (lf[0], lf[-1], len(lf))},
            "check": check, "rounds": (f"{n_lib}" if n_peer >= n_lib else f"{n_lib} ({n_peer} peer)")
            + (f" x {k} calls" if k > 1 else "")}


def _control(case: Case, rounds: int, budget: float) -> dict:
    """lib/fwd of the case at ONE torch thread (a control for the Grad-CAM target: no OpenMP thread
    waits for another, which on a busy machine costs a scheduler slice per parallel operation)."""
    with torch_threads(1):
        t0 = time.perf_counter()
        case.forward()
        case.lib()
        k = max(1, min(MAX_CALLS, math.ceil(BLOCK_S / (time.perf_counter() - t0))))
        times = {"fwd": [], "lib": []}
        start = time.perf_counter()
        for r in range(rounds):
            if r >= MIN_ROUNDS and time.perf_counter() - start > budget:
                break
            for name, f in ((("fwd", case.forward), ("lib", case.lib))[::1 if r % 2 == 0 else -1]):
                t0 = time.perf_counter()
                for _ in range(k):
                    f()
                times[name].append((time.perf_counter() - t0) / k)
    lf = sorted(a / b for a, b in zip(times["lib"], times["fwd"]))
    return {"lib/fwd": statistics.median(lf), "range": (lf[0], lf[-1], len(lf)),
            "fwd": statistics.median(times["fwd"]), "lib": statistics.median(times["lib"])}


def _fmt(res: dict, key: str) -> str:
    """A median ratio, with the smallest and largest per-round ratio when there are 3 rounds or more."""
    lo, hi, n = res["range"][key]
    return f"{res[key]:.2f}" + (f" ({lo:.2f}-{hi:.2f})" if n >= 3 else "")


def _target(method: str, res: dict) -> tuple[str, str]:
    if method == "Grad-CAM":
        return f"lib ≤ {GRADCAM_LIMIT:g} fwd", "yes" if res["lib/fwd"] <= GRADCAM_LIMIT else "NO"
    if method in ("SmoothGrad", "occlusion"):
        r = res["lib/peer"]
        return "lib ≤ peer", "yes" if r <= 1.0 else "tie" if r <= TIE else "NO"
    return "—", ""


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


NOTES = """\
How to read it. Each row times one plain forward pass of the same batch (`torch.no_grad()`, the
unit), lib and the peer in the same process, round-robin (the order flips every round); `fwd ms`,
`lib ms`, `peer ms` are medians of wall-clock times, and the ratios are medians of the per-round
ratios, with the smallest and largest in brackets when there are 3 rounds or more. Rows of fast
calls time blocks of k calls each (`rounds`: "x k calls"; k of the row's slowest call take at
least 0.2 s), divided by k. The machine is
shared (see the load average above): with other jobs on its 2 cores the 2 OpenMP threads wait for
each other and the same call swings by 2-10x within minutes (a gapnet forward pass takes 5 ms on a
quiet machine and up to 300 ms on a busy one), so single timings mean little and rows timed in one
round can be off by tens of per cent either way. Even on a quiet machine, calls that hold hundreds
of copies in memory vary from round to round (SmoothGrad on gapnet at batch 16, 400 copies per
pass, timed alone in 6 rounds: lib/peer 0.91-1.18, median 1.01), so read a row's range, not only
its median. A lib/peer up to 1.05 is reported as a *tie*.
Rows timed in fewer rounds (see `rounds`): SmoothGrad on
ResNet-50 at batch 16 (25 x 16 = 400 forward and backward passes per call, about a minute each:
one round), saliency and guided backprop on ResNet-50 at batch 16 (one round), occlusion there and
guided backprop on gapnet at batch 16 (three). The first call of a large batch pays for growing the
process's memory, so rows whose first round would be skewed by it start with an untimed warm-up
round (SmoothGrad on ResNet-50 at batch 1 measured lib/peer 1.17-1.19 without one, its first lib
call 1.5x the later ones). Grad-CAM times pytorch-grad-cam in fewer rounds
than lib and the forward pass, which its target compares. Every row also stops after a time
budget (20-60 s of timed rounds) once it has 3 rounds, so on a busy machine it gets fewer.

Same computation. `check`: lib's map against the peer's before timing (after it for rows without
a warm-up round): max |lib - peer| / max |peer| (`rel`) and a per-image correlation of at least
0.999, else the script stops. SmoothGrad draws random noise on both sides, so it is checked with
lib's noise patterns fed into Captum's NoiseTunnel (`same noise`, fewer samples on ResNet-50); the
timed maps, each with its own noise, are then only similar (`r`, smallest per-image correlation).
Guided backprop at batch 16 differs by up to about 1e-2 of the largest value because the peer
runs one image at a time (batched convolutions round differently, and the guided rule's
max(g, 0) at every ReLU turns rounding near 0 into a different value); the correlation is 1.0000.

Why the numbers are what they are.
- Grad-CAM: lib makes the layer's output A a leaf of the autograd graph (the image does not
  require a gradient and the parameters are frozen), so nothing below A is recorded and the
  backward pass runs from the class score down to A only (the classifier head): about one forward
  pass, bilinear upsampling included. pytorch-grad-cam calls `loss.backward()` on a model whose
  parameters require gradients, so it back-propagates through the whole network and computes
  every parameter's gradient: about three forward passes. What lib adds to the forward pass is
  small but fixed per call (freezing and restoring the parameters, the hook, the autograd call,
  the map and its upsampling: about 1 ms on gapnet at 1 thread), so the smallest case, gapnet at
  batch 1 (a 5-7 ms forward pass), is the one closest to the limit. On a busy machine the extra
  operations also cost OpenMP waits (each parallel operation waits for a descheduled thread), which
  the control line above, at 1 torch thread, leaves out.
- SmoothGrad, occlusion and saliency: with equal settings, lib and Captum run the same network
  passes on the same number of copies per pass, which is nearly all of the time; what differs is
  bookkeeping (noise, masks, sums: well under 1 %). Parity is the expected result, and the
  measured lib/peer scatters around 1 by the machine's noise.
- Guided backprop: pytorch-grad-cam explains only image 0 of a batch (`output[0, target]`), so a
  batch of 16 is 16 calls, each also computing parameter gradients; lib runs the batch at once.
"""


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a third of the rounds (a smoke run, noisier)")
    ap.add_argument("--only", help="only the rows matching this regex on 'method model batch'")
    ap.add_argument("--no-write", action="store_true", help=f"do not write {OUT.relative_to(ROOT)}")
    args = ap.parse_args(argv)

    t_start, load_start = time.perf_counter(), _loadavg()
    rows, fwd = [], {}
    for case in _cases(args.only):
        key = (case.method, case.model, case.batch)
        t0 = time.perf_counter()
        res = _time(case, *_plan(key, args.quick))
        fwd.setdefault((case.model, case.batch), []).extend(res["fwd"])
        rows.append((case, res))
        print(f"# {case.method} {case.model} batch {case.batch}: lib {res['med']['lib'] * 1e3:.0f} ms, "
              f"peer {res['med']['peer'] * 1e3:.0f} ms, fwd {res['med']['fwd'] * 1e3:.0f} ms, "
              f"lib/peer {_fmt(res, 'lib/peer')}, lib/fwd {_fmt(res, 'lib/fwd')}, "
              f"{res['check']} "
              f"[{time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)
    for case, res in rows:                              # the Grad-CAM target's control at one thread
        if case.method == "Grad-CAM":
            t0 = time.perf_counter()
            res["control"] = _control(case, CONTROL_ROUNDS.get((case.model, case.batch), 21) // (3 if args.quick else 1),
                                      CONTROL_BUDGET_S / (3 if args.quick else 1))
            c = res["control"]
            print(f"# Grad-CAM {case.model} batch {case.batch} at 1 thread: lib/fwd {c['lib/fwd']:.2f} "
                  f"({c['range'][0]:.2f}-{c['range'][1]:.2f}) [{time.perf_counter() - t0:.0f} s]",
                  file=sys.stderr, flush=True)
    total = time.perf_counter() - t_start

    lines = [
        "# lib against Captum and pytorch-grad-cam",
        "",
        f"Written by `benchmarks/peers.py`{' --quick' if args.quick else ''} ({total / 60:.1f} min) on "
        f"{datetime.date.today().isoformat()}: torch {torch.__version__}, Captum {_version('captum')}, "
        f"grad-cam {_version('grad-cam')}; CPU {_cpu()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads (the default); load average {load_start} at the start, "
        f"{_loadavg()} at the end. Models: ResNet-50 with random weights (224 px) and gapnet (64 px).",
        "",
        "| method | model | batch | fwd ms | lib ms | peer ms | lib/peer | lib/fwd | peer/fwd | target | met "
        "| rounds | check | settings (both sides) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|:---:|---:|---|---|",
    ]
    for case, res in rows:
        target, met = _target(case.method, res)
        m = res["med"]
        f = statistics.median(fwd[(case.model, case.batch)])
        lines.append(
            f"| {case.method} | {case.model} | {case.batch} | {f * 1e3:.0f} | {m['lib'] * 1e3:.0f} | "
            f"{m['peer'] * 1e3:.0f} ({PEER[case.method]}) | {_fmt(res, 'lib/peer')} | {_fmt(res, 'lib/fwd')} | "
            f"{res['peer/fwd']:.2f} | {target} | {met} | {res['rounds']} | {res['check']} | "
            f"{getattr(case, 'settings', '')} |")
    controls = [(c, r["control"]) for c, r in rows if "control" in r]
    if controls:
        lines += ["", "Control for the Grad-CAM target, the same rows at 1 torch thread (no OpenMP thread waits "
                  "for another): lib/fwd " + "; ".join(
                      f"{c.model} batch {c.batch}: {k['lib/fwd']:.2f} ({k['range'][0]:.2f}-{k['range'][1]:.2f}, "
                      f"{k['range'][2]} rounds, fwd {k['fwd'] * 1e3:.0f} ms)" for c, k in controls) + "."]
    missed = [(c, r) for c, r in rows if _target(c.method, r)[1] in ("NO", "tie")]
    lines += ["", "Targets: Grad-CAM at most 1.1 forward passes (lib/fwd); SmoothGrad and occlusion no slower "
              "than Captum at the same settings (lib/peer). "
              + ("All met." if not missed else "Not met outright: " + "; ".join(
                  f"{c.method} {c.model} batch {c.batch} ({_target(c.method, r)[1]}, lib/peer {r['lib/peer']:.2f}, "
                  f"lib/fwd {r['lib/fwd']:.2f})" for c, r in missed) + "; see below."), "", NOTES]
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        OUT.write_text(table)
        print(f"written to {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
