"""Generate notebooks/explorer.ipynb, the class explorer page.

Then execute it and store its outputs:
    nice -n 10 .venv/bin/python benchmarks/notebook_times.py --write notebooks/explorer.ipynb
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

HERE = Path(__file__).resolve().parent.parent
cells = Cells()
md, code = cells.md, cells.code


md(r"""
# Class explorer: every method side by side

*A tool for chapters 4 to 9: one image, one model, one class, and seven answers to "where does the network look?"*

Each chapter of Part II builds one explanation method and studies it on its own. This page puts
them all next to each other for the same decision: pick an image (a test canvas, a sample photo or
a file of your own), a model, a layer and a class, and see

- **saliency** and **SmoothGrad** ([chapter 5](05_saliency.ipynb)): the gradient of the class score
  with respect to the pixels, and its average over noisy copies;
- **guided backpropagation** ([chapter 6](06_guided_backprop.ipynb)): the same gradient with the
  ReLUs' backward pass changed;
- **occlusion** ([chapter 4](04_occlusion.ipynb)): the drop of the class probability when a window
  hides the pixel;
- **CAM** ([chapter 7](07_cam.ipynb)), where the network has a global-average-pooling head;
- **Grad-CAM** and **Guided Grad-CAM** ([chapter 8](08_grad_cam.ipynb)) at the layer you choose.

On a test canvas the ground-truth box of the item is drawn on every panel, so you can see at a
glance which methods point at the object; [chapter 9](09_evaluating_explanations.ipynb) turns
that glance into numbers.
""")

code(SETUP_CELL)

code(r"""
import statistics
import time
import lib
from lib import data, explorer, models

lib.seed(0)
canvases = data.load_canvases("test", n=200)
items = explorer.default_images(canvases)               # one test canvas per class, then sample photos
print("the course's bundles:", ", ".join(n for n in explorer.loadable_models() if n not in models.IMAGENET_MODELS))
print("images:", ", ".join(items))
""")

md(r"""
## How to use it
- **image**: a test canvas (one per class, with its box) or a sample photo; **upload** adds a file
  of your own to the menu. Uploads are read by `lib.images.load` like every image in the course:
  grayscale, transparent (RGBA), palette, CMYK and 16-bit images are converted, with a note above
  the figure saying how; huge ones are scaled down; a file that is not an image, or is too small,
  gives a message in red instead of a map. Every image is resized (short side) to the model's
  input size and centre-cropped square.
- **model**: the course's bundles (`gapnet`, `flatnet`, `vgg16-cam`, `vgg16-hed`) and any
  torchvision ImageNet network whose weights are already in the torch hub cache (online, after
  a chapter's `MODEL` switch downloaded them). `explorer.loadable_models()` makes that list:
  offline, an ImageNet name would only fail to download.
- **layer**: the model's conv layers and its default Grad-CAM layer, selected at first (for
  `gapnet`, `features.26`: the ReLU after the last conv). The layer is Grad-CAM's and Guided
  Grad-CAM's; CAM always reads the layer its GAP head pools.
- **class**: the five most probable classes with their probabilities, then the others.

A method that does not apply says why in its panel: CAM on `flatnet` (a flatten + fully connected
head, no global average pooling) and every method on `vgg16-hed` (an edge detector's features, no
classes to explain). These are the messages of the errors `lib` raises.

To keep an update under a second on a 2-core CPU, the two costly methods run with small settings
at 64 px: **SmoothGrad with 8 noisy copies** (noise 15 % of the value range) and **occlusion with a
16-pixel window moved 12 pixels at a time** (25 positions; chapter 4 uses a stride of 8, 49
positions). On `vgg16-cam` (112 px) and ImageNet networks (224 px): 4 copies, and the window (a
quarter of the side) moved by its own size. The explorer computes with one torch thread, which is
fastest for one small image on a busy 2-core machine.
""")

md(r"""
In JupyterLab or Colab the next cell is live: each change computes the seven methods for the new
setting (a setting seen before is only redrawn), and the line above the figure gives the time of
the last update. On the book's page there is no Python behind the controls: they show the stored
default setting, whose figure is also drawn under the panel.
""")

code(r"""
default = next(k for k in items if "Ankle boot" in k)
panel = explorer.explorer(images=items, image=default)
panel
""", tags=["nbval-ignore-output"])

md(r"""
The default setting as a static figure: `gapnet`, the ankle-boot canvas, its predicted class,
Grad-CAM at the last conv block's ReLU (`features.26`, the layer CAM uses too):
""")

code(r"""
ex = panel.explorer
ex.figure()
x, box = explorer.fit(items[default].image, 64, items[default].box)
for c, name, p in explorer.top_classes(ex.bundle, x):
    print(f"{name:12s} p = {p:.2f}")
""")

md(r"""
## How long an update takes
One update is what the widget does when a control changes: the seven methods
(`explorer.explain_all`) and the figure, drawn to PNG (`explorer.timed_update` does both without
the widget). Eight settings: four canvases, each for its predicted class at the default layer and
for its runner-up class at `features.17`. With one thread, the CPU time the process spends is the
time an update takes on an idle machine; the wall-clock time is longer when other programs share
the cores, so both are printed and the check uses the CPU time.
""")

code(r"""
bundle = ex.bundle
explorer.timed_update(bundle, canvases.images[:1])                    # warm-up
wall, cpu, per_method = [], [], {name: [] for name in explorer.METHODS}
for i in range(4):
    top2 = [c for c, _, _ in explorer.top_classes(bundle, canvases.images[i:i + 1], k=2)]
    for target, layer in ((top2[0], None), (top2[1], "features.17")):
        c0 = time.process_time()
        seconds, r = explorer.timed_update(bundle, canvases.images[i:i + 1], target, layer, box=canvases.boxes[i])
        cpu.append(time.process_time() - c0)
        wall.append(seconds)
        for name, s in r.seconds.items():
            per_method[name].append(s)
t, t_wall = statistics.median(cpu), statistics.median(wall)
print(f"median update over {len(cpu)} settings: {t:.1f} s of CPU time ({t_wall:.1f} s wall-clock)")
print("under 1 s:", t < 1.0)
print("median per method:", ", ".join(f"{name} {1000 * statistics.median(v):.0f} ms" for name, v in per_method.items()))
""")

md(r"""
## Which maps depend on the class?
Switching the class is the quickest test of a method: a map that explains *this* class should
change when the class does. For the first six canvases, the correlation between each method's
map for the predicted class and for the runner-up (1: the same map, 0: unrelated, below 0: the
opposite; gradient images compared by their largest absolute channel):
""")

code(r"""
import torch
corr = {name: [] for name in explorer.METHODS}
for i in range(6):
    xi = canvases.images[i:i + 1]
    first, second = (explorer.explain_all(bundle, xi, c) for c, _, _ in explorer.top_classes(bundle, xi, k=2))
    for name in explorer.METHODS:
        a, b = (m.abs().amax(0) if m.dim() == 3 else m for m in (first.maps[name], second.maps[name]))
        corr[name].append(float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]))
for name, v in corr.items():
    print(f"{name:16s} {statistics.median(v):5.2f}")
""")

md(r"""
## Where a method does not apply
`flatnet` has a flatten + fully connected head, so CAM has no map to read, and its panel says to
use Grad-CAM, which works at any conv layer:
""")

code(r"""
flat = models.load("flatnet")
r = explorer.explain_all(flat, x)
explorer.show_explanations(x, r, box=box, class_name=f"{flat.classes[r.target]} (p={r.probs[r.target]:.2f})",
                           suptitle=f"{flat.name}: {default}")
print({name: why[:60] + "..." for name, why in r.reasons.items()})
""")

md(r"""
`vgg16-hed` has no classifier at all, so every class-based method refuses; the widget shows the
same message in all seven panels:
""")

code(r"""
hed = models.load("vgg16-hed")
xh, _ = explorer.fit(items[default].image, hed.input_size)
print(explorer.explain_all(hed, xh).reasons["Grad-CAM"])
""")

md(r"""
And a deeper network with a CAM head, `vgg16-cam` at 112 pixels (its smaller settings, see above),
where CAM and Grad-CAM read a 14x14 layer instead of `gapnet`'s 8x8:
""")

code(r"""
vgg = models.load("vgg16-cam")
xv, box_v = explorer.fit(items[default].image, vgg.input_size, items[default].box)
r = explorer.explain_all(vgg, xv)
explorer.show_explanations(xv, r, box=box_v, class_name=f"{vgg.classes[r.target]} (p={r.probs[r.target]:.2f})",
                           suptitle=f"{vgg.name}: {default}")
""")

md(r"""
## What to notice
- On a GAP network, Grad-CAM at the last layer is CAM up to a constant and its ReLU (chapter 8),
  and both are coarse: 8x8 positions for `gapnet`. Guided Grad-CAM keeps their place and adds
  guided backpropagation's edges.
- Guided backpropagation hardly depends on the class: its maps for the first and second class
  are almost the same (a correlation near 1 in the table above), while CAM's and Grad-CAM's
  change the most (chapter 6's point, and the sanity checks of chapter 9). Switch the class in
  the widget and watch which panels move.
- Occlusion is the only method that edits the image and measures the probability: hiding the
  item lowers the first class and raises the runner-up, hence its negative correlation. With
  SmoothGrad it is the costliest method, even at 25 window positions.
- Saliency and SmoothGrad are pixel-sharp and speckled; with only 8 noisy copies SmoothGrad is
  still noisy (chapter 5 shows it settle with more).
- The photos are far from what `gapnet` was trained on (Fashion-MNIST items pasted on photo
  crops): its top-5 on a cat are guesses, and the maps show what each guess rests on.

## Where the methods come from
- [4. Occlusion](04_occlusion.ipynb): windows, strides and fills.
- [5. Saliency maps](05_saliency.ipynb): the gradient, SmoothGrad's noise and sample count.
- [6. Guided backpropagation](06_guided_backprop.ipynb): the three ReLU backward rules.
- [7. CAM](07_cam.ipynb): the GAP head, and retrofitting one onto `flatnet`.
- [8. Grad-CAM](08_grad_cam.ipynb): any layer, counterfactuals, Guided Grad-CAM.
- [9. Evaluating explanations](09_evaluating_explanations.ipynb): which of these maps localise, and
  which survive the sanity checks.
""")

cells.write(HERE / "notebooks" / "explorer.ipynb")
