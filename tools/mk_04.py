"""Generate notebooks/04_occlusion.ipynb (then execute it with nbconvert --execute --inplace)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

HERE = Path(__file__).resolve().parent.parent
cells = Cells()
md, code = cells.md, cells.code


md(r"""
# 4. Occlusion experiments

*CS231n lecture 12: "Which pixels matter? Saliency via occlusion" (Zeiler & Fergus 2014)*

The most direct way to ask a classifier *where* it looks needs no access to its insides: hide a
part of the image and see whether the answer changes. Zeiler and Fergus {cite}`zeiler2014visualizing`
slid a gray square over ImageNet photos and plotted the probability of the correct class as a
function of the square's position. When the square covers the dog's face, the probability of
"Pomeranian" collapses; when it covers the background, nothing happens. The result is a map of
the pixels the decision depends on, computed with nothing but forward passes.

This chapter builds that map, checks it against Captum's implementation, scores it with the
pointing game on canvases whose objects we know, and measures what it costs: one forward pass per
position of the square, so halving the stride quadruples the bill.

**Learning goals**
- State the occlusion map as an equation and compute it in a few lines: slide, fill, forward,
  subtract, average.
- Explain why the map is built from the softmax *probability* of the class, and what that hides.
- Choose the window, stride and fill, and say what each changes in the map.
- Predict and measure the cost, about $(H/\text{stride})^2$ forward passes per image.
- Score the maps with the pointing game against ground-truth boxes.
""")

code(SETUP_CELL)

code(r"""
import time
import torch
import lib
from lib import attribution, data, metrics, models, plot, widgets
from lib.attribution import occlusion, occlusion_passes, occlusion_probs

lib.seed(0)
MODEL = None                        # online: "vgg16", "resnet50", ... runs the ImageNet section at the end
bundle = models.load("gapnet")
canvases = data.load_canvases("test")
print(bundle)
""")

md(r"""
## The experiment, one square at a time
We take the first colourful test canvas that the network classifies correctly (see
[chapter 1](01_filters_and_activations.ipynb) for the network and its data), put a 16x16 gray
square on it at a few positions along one row, and read the probability of the true class each
time. `attribution.occlude` makes the occluded copy; `bundle.predict` returns softmax probabilities.
""")

code(r"""
with torch.no_grad():
    pred = bundle(canvases.images[:64]).argmax(1)
colour = (canvases.images[:64].amax(1) - canvases.images[:64].amin(1)).mean((1, 2))   # mean saturation
i = int(((pred == canvases.labels[:64]) & (colour > 0.2)).nonzero()[0])   # first correct canvas in colour
x, c, box = canvases.images[[i]], int(canvases.labels[i]), canvases.boxes[i]
name = data.CLASSES[c]

WINDOW, STRIDE = 16, 8
row = int(box[1] + box[3]) // 2 - WINDOW // 2             # a row through the middle of the object
row = max(0, min(64 - WINDOW, row // STRIDE * STRIDE))
lefts = range(0, 64 - WINDOW + 1, STRIDE)
copies = torch.cat([attribution.occlude(x, row, left, WINDOW, fill="gray") for left in lefts])
probs = bundle.predict(torch.cat([x, copies]))[:, c]
print(f"canvas {i}, class '{name}': p = {probs[0]:.3f} unoccluded")
plot.show_images(copies, [f"p = {p:.2f}" for p in probs[1:]], ncols=7, boxes=box.expand(len(copies), 4),
                 suptitle=f"{bundle.name}: p({name}) with a {WINDOW}x{WINDOW} gray square moving along one row")
""")

md(r"""
Positions where the square lands on the item usually lower the probability more than those on the
background. Repeating this for every position of the square, on a grid with spacing `STRIDE`, is
the whole method.

## The occlusion map
Let $p_c(x) = \mathrm{softmax}(z(x))_c$ be the probability of class $c$ for image $x$, and
$x_{W \leftarrow f}$ the image with the pixels of window $W$ replaced by the fill $f$. The windows
start at $0, s, 2s, \dots$ in each direction until the image is covered (the last one is cut off at
the border when they do not tile it exactly). A pixel $(i, j)$ is covered by several windows
$\mathcal{W}(i, j)$; its value is the average drop over them:

$$
M_c(i, j) \;=\; \frac{1}{|\mathcal{W}(i, j)|} \sum_{W \in \mathcal{W}(i, j)}
\Big[\, p_c(x) - p_c\big(x_{W \leftarrow f}\big) \Big].
$$

Positive: hiding the pixel costs the class probability (it was evidence *for* $c$). Negative:
hiding it *raises* the probability (it was evidence against $c$, or for a competitor).

`attribution.occlusion` does exactly this: it builds the occluded copies, runs them through the
model `batch_size` at a time under `torch.no_grad()`, and averages the drops per pixel.

**Why the probability, not the logit?** Zeiler and Fergus plotted the probability of the correct
class, and there are good reasons to. It is bounded, so a drop of 0.3 means the same on every
image and for every class, and the maps can be compared and scored. And it is what the decision is
made of: the softmax couples the classes, so a square can lower $p_c$ either by removing evidence
for $c$ or by *adding* evidence for another class, and both change the answer. The price is
saturation: when the network is very sure ($p_c \approx 1$), its logit can fall a lot while $p_c$
barely moves, and the map looks flat except where a square flips the decision. Exercise 3 compares
with the logit.
""")

code(r"""
m = occlusion(bundle, x, target=c, window=WINDOW, stride=STRIDE, fill="gray")
print(f"{occlusion_passes(x, WINDOW, STRIDE)} occluded copies; map {tuple(m.shape)}, "
      f"values from {m.min():.3f} to {m.max():.3f} (units of probability)")
plot.show_occlusion(x[0], m[0], WINDOW, STRIDE, occluded=attribution.occlude(x, 0, 0, WINDOW)[0], box=box,
                    title=f"{bundle.name}: occlusion map of '{name}' (gray fill)")
""")

md(r"""
Left: the first two windows (solid, then one stride to the right, dashed). Middle: the map over the
canvas, each map scaled to its own range. Right: the raw map with a colour scale centred on zero
(red: hiding it lowers $p_c$; blue: raises it). The map is constant on 8x8 cells, because all
pixels of a cell are covered by the same 16x16 windows (four of them, fewer at the border).

### Where the square flips the decision
Zeiler and Fergus also drew, for each position of the square, the probability of the true class
and the *most probable class*. `occlusion_probs` returns the raw experiment: the class
probabilities of every occluded copy, one per window position (7x7 positions here).
""")

code(r"""
p, grid = occlusion_probs(bundle, x, window=WINDOW, stride=STRIDE)
top = grid[0].argmax(-1)
flipped = [data.CLASSES[k] for k in top.unique().tolist() if k != c]
print(f"grid of window positions: {tuple(grid.shape[1:3])}; lowest p({name}) = {grid[0, ..., c].min():.3f}")
print(f"positions where another class wins: {int((top != c).sum())} of {top.numel()}"
      + (f" ({', '.join(flipped)})" if flipped else ""))
plot.show_occluder_positions(x[0], grid[0], c, data.CLASSES, WINDOW, STRIDE, box=box,
                             title=f"{bundle.name}: the square centred at each position")
""")

md(r"""
## Several canvases and their boxes
The first eight test canvases, with the true class as target. The green box is the ground truth
(the network never saw it); the cross marks the map's maximum, which is what the pointing game
scores next.
""")

code(r"""
sub = canvases[:8]
maps8 = occlusion(bundle, sub.images, target=sub.labels, window=WINDOW, stride=STRIDE)
p_true = bundle.predict(sub.images)[torch.arange(8), sub.labels]
titles = [f"{data.CLASSES[y]} ({q:.2f})" for y, q in zip(sub.labels.tolist(), p_true.tolist())]
plot.show_overlays(sub.images, maps8, boxes=sub.boxes, peaks=metrics.map_peaks(maps8), titles=titles,
                   suptitle=f"{bundle.name}: occlusion maps (window {WINDOW}, stride {STRIDE}), true class (its p)")
plot.show_signed_maps(maps8, titles=titles, boxes=sub.boxes,
                      suptitle="the same maps, raw: red = hiding it lowers p(true class), blue = raises it")
""")

md(r"""
Look at the raw maps' ranges (the number in each corner). Where the network is unsure the drops
can be large; where it is very sure they can be tiny, and the overlay, which stretches every map
to its own range, makes both look equally confident. Raw maps keep that difference; normalise only
for display.

## The pointing game
Zhang et al. {cite}`zhang2016top` score a map by one question: does its maximum fall on the object?
They allow 15 pixels of tolerance on 224-pixel images, about 4 pixels on our 64-pixel canvases.
`metrics.pointing_game` returns one hit or miss per canvas. Occlusion costs 50 forward passes per
canvas at this setting, so on a CPU we score a fixed subset, **the first `N_POINT` test canvases**,
and put two references beside it on the same canvases: CAM ([chapter 7](07_cam.ipynb), one forward
pass) and a
centre Gaussian that ignores the image.
""")

code(r"""
N_POINT = 32            # the first 32 test canvases; on a GPU, len(canvases) scores all 2000
pg = canvases[:N_POINT]
t0 = time.perf_counter()
maps = torch.cat([maps8, occlusion(bundle, pg.images[8:], target=pg.labels[8:], window=WINDOW, stride=STRIDE)])
print(f"{N_POINT} occlusion maps, {N_POINT * (occlusion_passes(64, WINDOW, STRIDE) + 1)} forward passes in all "
      f"(the first 8 maps come from above; the other {N_POINT - 8} took {time.perf_counter() - t0:.1f} s)")
candidates = {"occlusion": maps,
              "CAM": attribution.cam(bundle, pg.images, target=pg.labels),
              "centre Gaussian": metrics.centre_map(N_POINT, 64)}
print(f"pointing-game hit rate on the first {N_POINT} test canvases (boxes)")
for method, mp in candidates.items():
    hits = [metrics.pointing_game(mp, pg.boxes, tolerance=tol).float().mean().item() for tol in (0, 4)]
    print(f"  {method:16s} tolerance 0 px: {hits[0]:.3f}   4 px: {hits[1]:.3f}")
""")

md(r"""
Thirty-two canvases is a small sample: one canvas is about 3 points of hit rate, so read
differences of a few points as noise. A detail matters here: the map is constant on 8x8 cells, so
its maximum is a whole plateau of tied pixels; `metrics.map_peaks` takes the tied pixel nearest the
plateau's centre (taking the first in reading order would put the peak in the cell's top-left
corner, up to 7 pixels from the evidence). A smaller stride (exercise 2) makes the cells smaller, at
a price.

[Chapter 9](09_evaluating_explanations.ipynb) scores occlusion on all 2,000 test canvases, for the
class the model predicts, with an 8 px patch moved in steps of 8 px (64 passes per canvas), beside
every other method; that table was computed once, offline:
""")

code(r"""
import json
from lib import evaluation
table = json.loads(evaluation.RESULTS.read_text())["table"]
for method in ("occlusion", "CAM", "centre Gaussian"):
    print(f"  {method:16s} all 2000 canvases, tolerance 0 px: {table[method]['pointing']:.3f}   "
          f"4 px: {table[method]['pointing_tol4']:.3f}")
""")

md(r"""
## Window, stride and fill
**The fill** decides what "hidden" means. A gray square is itself a feature: a flat patch with
sharp edges that no canvas contains. The image's mean colour is less conspicuous; a blurred copy
of the image removes the detail under the window but keeps its colours and coarse shading, the
least new evidence but also the least hidden; black is the classic choice of many codes
(Captum's default baseline is 0, which is black in display space).
""")

code(r"""
fills = {"gray": m}
for f in ("mean", "blur", 0.0):
    fills[f] = occlusion(bundle, x, target=c, window=WINDOW, stride=STRIDE, fill=f)
r0, c0 = (int(box[1] + box[3]) // 2 - WINDOW // 2), (int(box[0] + box[2]) // 2 - WINDOW // 2)
shown = torch.cat([attribution.occlude(x, r0, c0, WINDOW, fill=f) for f in fills])
names = ["gray 0.5", "image mean", "blurred image", "black 0.0"]
plot.show_images(shown, [f"fill: {n}" for n in names], ncols=4, size=2,
                 suptitle="what the square shows, centred on the object")
plot.show_signed_maps(torch.cat(list(fills.values())), titles=[f"max drop {v.max():.3f}" for v in fills.values()],
                      boxes=box.expand(4, 4), ncols=4, size=2, shared=True,
                      suptitle=f"{bundle.name}: occlusion maps of '{name}' with each fill (shared colour scale)")
""")

md(r"""
**The window** should be about the size of the parts that matter. Much smaller than the object,
and the rest of the object still identifies it: the probability hardly moves and the map is weak
and noisy. Much larger, and every window touches the object, so the map is a blurred blob. On
ImageNet photos (224 pixels) Zeiler and Fergus used squares of a few tens of pixels; on our 64-pixel
canvases, whose items are 28 to 44 pixels wide, 8 to 16 pixels play that role.

**The stride** sets the map's resolution, and the cost. With $n(L) = \lceil (L - w)/s \rceil + 1$
window positions along a side of $L$ pixels, one image needs $n(H)\,n(W) \approx (H/s)^2$ forward
passes (plus one for the unoccluded image). Halving the stride quadruples the work:
""")

code(r"""
for stride in (8, 4):
    t0 = time.perf_counter()
    occlusion(bundle, x, target=c, window=WINDOW, stride=stride, batch_size=256)
    dt = time.perf_counter() - t0
    print(f"window {WINDOW}, stride {stride}: {occlusion_passes(64, WINDOW, stride):4d} forward passes (+1), "
          f"{dt * 1000:.0f} ms for one 64 px canvas")
for size in (64, 224):
    counts = [f"stride {s} -> {occlusion_passes(size, size // 4, s)} passes" for s in (16, 8, 4, 2, 1)]
    print(f"{size} px image, window {size // 4}:", ", ".join(counts))
""")

md(r"""
A gradient map ([chapter 5](05_saliency.ipynb)) costs one forward and one backward pass, whatever the resolution.
Occlusion's cost grows with the square of the resolution, and on a 224-pixel image at stride 1 it
runs tens of thousands of forward passes. In exchange it asks the model a question anyone can
understand, treats it as a black box, and does not depend on gradients, which can be noisy or
saturated. Batching is what makes it bearable: the copies are independent, so `batch_size` of them
go through the network at once.

### A check against Captum
Captum {cite}`kokhlikyan2020captum` implements the same method as `captum.attr.Occlusion`; with
the probability as the output, the same window (over all three channels), stride and fill, its
map equals ours. Note that Captum perturbs whatever its forward function receives: here
display-space images, so the baseline 0.5 is the same mid-gray.
""")

code(r"""
from captum.attr import Occlusion

ref = Occlusion(lambda z: bundle(z).softmax(1)).attribute(
    x, sliding_window_shapes=(3, WINDOW, WINDOW), strides=STRIDE, baselines=0.5, target=c, perturbations_per_eval=64)
print("Captum's map equals ours (to 1e-5):", bool((ref[:, 0] - m).abs().max() < 1e-5))
""")

md(r"""
## Explore: window, stride and fill
In JupyterLab or Colab the next cell shows three menus for the canvas above. Each setting is
computed the first time you pick it (the widget prints how many forward passes it took) and kept,
so going back to it is instant; small strides take a few seconds on a CPU. The book shows the
default setting as a static figure below it.
""")

code(r"""
widgets.occlusion_explorer(bundle, x, target=c, box=box, window=WINDOW, stride=STRIDE, fill="gray")
""", tags=["nbval-ignore-output"])

code(r"""
plot.show_occlusion(x[0], m[0], WINDOW, STRIDE, occluded=attribution.occlude(x, 0, 0, WINDOW)[0], box=box,
                    title=f"{bundle.name}: occlusion map for '{name}' (fill gray)")
""")

md(r"""
## Online: an ImageNet network
With internet (Colab), the same functions run on torchvision's ImageNet models; on a 224-pixel
photo a 32-pixel window at stride 16 costs 169 forward passes, a few seconds on a GPU.
To run the next cell, set `MODEL` at the top of the chapter (offline it is `None`, and the cell only says so).

""")

code(r"""
net = models.imagenet(MODEL)            # MODEL is set at the top: None offline, e.g. "vgg16" online
if net:
    photo = data.sample_image("chelsea", size=net.input_size)      # a cat
    cls = int(net.predict(photo).argmax())
    m = occlusion(net, photo, target=cls, window=32, stride=16, batch_size=64, progress=True)
    plot.show_occlusion(photo[0], m[0], 32, 16, title=f"{net.name}: {net.classes[cls]}")
""", tags=["imagenet"])

md(r"""
## What to notice
- The map needs only forward passes: no gradients, no hooks, no knowledge of the architecture.
  It answers a counterfactual question, "what if this part were not there?", which is why it is
  often used to check other maps.
- It is only as good as its fill. Every fill is a new pattern the network may react to, and the
  map mixes "this pixel was evidence" with "this square is itself evidence for something else".
  Negative values (blue) are often that.
- Window and stride set the scale of the answer. A window smaller than the redundancy of the
  object gives almost nothing; the stride sets the map's resolution, and the cost grows as
  $(H/\text{stride})^2$.
- The probability saturates: a very confident prediction gives small drops everywhere, so raw maps
  of different images have very different ranges. Keep maps raw; normalise only to draw them.
- On a CPU the pointing game could score only a subset here; the same number for all 2000 canvases
  takes about 100,000 forward passes, minutes on a GPU (chapter 9's table has it at stride 8).

## Exercises
1. Draw the maps of the first eight canvases with `window=8` and with `window=32` (stride half the
   window). Which gives the highest maximum drop? Which looks most like the item's silhouette?
2. Re-run the pointing game with `stride=4`. Does the hit rate change at tolerance 0 and at 4 px?
   Use `occlusion_passes` to predict the time before you run it, then check.
3. Make a logit map with Captum: `Occlusion(lambda z: bundle(z))` with the same window, stride
   and baseline. On the most confident of the eight canvases, compare it with the probability map.
   Where does the probability map saturate?
4. Find a canvas where some position of the square makes another class win (use
   `occlusion_probs` and `argmax(-1)`). Which class, and what did the square cover?
5. The fill's contrast: on a canvas whose item is bright, does `fill=0.0` (black) or `fill=1.0`
   (white) give the larger drops? And on a dark item? What does that say about what "hiding" means
   to the network?

## References
- {cite}`zeiler2014visualizing`, section 4.2 "Occlusion Sensitivity" and figure 7.
- {cite}`cs231n2017lecture12`, "Which pixels matter? Saliency via occlusion".
- {cite}`zhang2016top` (the pointing game), {cite}`kokhlikyan2020captum` (Captum's `Occlusion`),
  {cite}`zhou2016learning` (CAM, the reference on the same canvases), {cite}`xiao2017fashion` (Fashion-MNIST).
""")

cells.write(HERE / "notebooks" / "04_occlusion.ipynb")
