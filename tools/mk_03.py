"""Generate notebooks/03_max_activating_patches.ipynb (then execute it with nbconvert)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebooks" / "03_max_activating_patches.ipynb"

cells = Cells()
md, code = cells.md, cells.code


md(r'''
# 3. Maximally activating patches

*CS231n lecture 12: "Intermediate layers: maximally activating patches"*

[Chapter 1](01_filters_and_activations.ipynb) showed what a layer computes for *one* image. Here we
turn the question around: for one unit deep in the network, which pieces of which images make it
fire most? Run a whole data set through the network, record where each channel responds most
strongly, and cut out the part of the input that unit can see, its *receptive field*. Girshick et
al. {cite}`girshick2014rich` used this to show what R-CNN's pool5 units respond to; Zeiler and
Fergus {cite}`zeiler2014visualizing` showed such patches next to their deconvnet projections.

**Learning goals**
- Compute the receptive field (size, jump, start offset) of any unit of a conv/pool trunk from the
  kernels, strides, paddings and dilations, and check it against the input gradient.
- Find a channel's top-k activations over a data set and crop the input patches behind them.
- Read patch grids: shallow units see small patches (edges, colours, textures), deep units see large
  patches (parts of objects); and know what such grids cannot tell you.
''')

code(SETUP_CELL)

code(r'''
import torch
from torch import nn
import lib
from lib import data, features, models, plot, widgets

lib.seed(0)
MODEL = None                        # online: "vgg16", "resnet50", ... runs the ImageNet section at the end
bundle = models.load("gapnet")
canvases = data.load_canvases("test")
images = canvases.images            # 2000 test canvases, 3 x 64 x 64, never seen in training
print(bundle)
print(f"{len(images)} canvases of {images.shape[-1]} px")
''')

md(r'''
## Receptive fields
A unit of a conv layer is one channel at one position $(y, x)$ of its output. It depends only on a
square of the input: its *receptive field* (RF). Walk the modules from the input in forward order.
Each convolution or pooling $l$ with kernel $k_l$, stride $s_l$, padding $p_l$ and dilation $d_l$
grows the RF by $k_l - 1$ steps of the current *jump* $j$ (the distance, in input pixels, between two
neighbouring units), multiplies the jump by its stride, and its padding moves the start of the first
unit's RF to the left (or up):

$$
r_l = r_{l-1} + (k_l - 1)\, d_l\, j_{l-1}, \qquad
j_l = j_{l-1}\, s_l, \qquad
a_l = a_{l-1} - p_l\, j_{l-1},
$$

with $r_0 = 1$, $j_0 = 1$, $a_0 = 0$ for the input pixels. Unit $i$ of layer $l$ then covers input
pixels $a_l + i\, j_l$ to $a_l + i\, j_l + r_l - 1$ (per axis). ReLU and batch normalisation (in
eval mode) act on each position on its own and change nothing. The recurrence, over `gapnet`'s trunk
(its convolutions are 3x3 with padding 1, its max-pools 2x2 with stride 2), checked against
`features.receptive_field`, which does the same walk for any Sequential trunk:
''')

code(r'''
r, j, a = 1, 1, 0                   # RF size, jump, start of unit 0 (input pixels), for the input
for name, m in bundle.model.features.named_children():
    if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
        k, s, p = (v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride, m.padding))
        r, a, j = r + (k - 1) * j, a - p * j, j * s
    if isinstance(m, nn.ReLU):
        rf = features.receptive_field(bundle, f"features.{name}")
        assert (rf.size[0], rf.jump[0], rf.start[0]) == (r, j, a)
        print(f"features.{name:<3} RF {r:2d} x {r:2d} px, jump (stride) {j}, start {a:3d}, "
              f"map {images.shape[-1] // j} x {images.shape[-1] // j}")
''')

md(r'''
Two things to see in these numbers. Every max-pool doubles the jump, so every later 3x3 convolution
adds twice as many pixels as before: the RF grows slowly at first, then fast. And the RF of the last
stage is larger than the 64 px canvas, so each of its units can see the whole item, but the units
near the border see a good part of the zero padding instead. The RF box of `rf.box(y, x, 64)` is
clipped at the image border: below, the RF of the centre unit and of the corner unit (0, 0) of the
last ReLU of each stage, on one canvas.
''')

code(r'''
stages = ["features.5", "features.12", "features.19", "features.26"]
boxes, titles = [], []
for where in ("centre", "corner"):
    for layer in stages:
        rf = features.receptive_field(bundle, layer)
        n = images.shape[-1] // rf.jump[0]                       # side of the activation map
        y = x = n // 2 if where == "centre" else 0
        boxes.append(rf.box(y, x, images.shape[-1]))
        titles.append(f"{layer} ({y}, {x})\nRF {rf.size[0]} px")
plot.show_images(images[[0] * 8], titles, ncols=4, size=1.8, boxes=torch.tensor(boxes),
                 suptitle=f"{bundle.name}: receptive fields of a centre and a corner unit, clipped to the image")
''')

md(r'''
The unit test `tests/test_patches.py` checks these boxes exactly: with every ReLU replaced by the
identity and every max-pool by an average pool of the same geometry (so that no gradient is cut by a
dead ReLU or routed through one argmax), the input pixels with a non-zero gradient
$\partial f_c(y, x) / \partial \text{input}$ are exactly the clipped box, for border and interior
units, for `gapnet` and for torchvision's AlexNet.

## Top activations over the test set
For a channel $c$ of a layer, write $f_c^{(n)}(y, x)$ for its activation map on image $n$. Each
image is counted once, at its strongest position:

$$
m_c(n) = \max_{y, x} f_c^{(n)}(y, x), \qquad (y_n, x_n) = \arg\max_{y, x} f_c^{(n)}(y, x),
$$

and the $k$ images with the largest $m_c(n)$ give the channel's top-$k$ units; their receptive fields
are the patches. (Counting every position instead would often return $k$ shifted copies of one
strong peak in one image.) `features.top_activations` does this for every channel of several layers
in one batched pass over the 2000 canvases, under `torch.no_grad()`, and stops the forward pass after
the deepest layer it needs. We take a shallow layer (end of stage 2) and a deep one (end of stage 3);
the last stage sees more than the whole canvas, so its patches would all be (almost) whole canvases.
''')

code(r'''
layers = {"shallow": "features.12", "deep": "features.19"}
tops = features.top_activations(bundle, images, list(layers.values()), k=9)    # all channels, one pass
for kind, layer in layers.items():
    t, rf = tops[layer], features.receptive_field(bundle, layer)
    dead = (t.values[:, 0] <= 0).sum().item()
    print(f"{kind:8s} {layer}: {len(t.channels)} channels, map {t.map_size[0]} x {t.map_size[1]}, "
          f"RF {rf.size[0]} px, stride {rf.jump[0]}; channels never positive on {t.n_images} canvases: {dead}")
''')

md(r'''
`max_activating_patches` crops the receptive field of each top unit. Every patch has the full RF
size: the part of a border unit's RF that falls outside the canvas (into the padding) is filled with
grey, so all patches line up. One row per channel, best first; the channels are the first eight
that respond at all (a channel that is never positive has no top patches).
''')

code(r'''
def first_channels(layer, n=8):
    return (tops[layer].values[:, 0] > 0).nonzero()[:n, 0].tolist()

for kind, layer in layers.items():
    chans, rf = first_channels(layer), features.receptive_field(bundle, layer)
    patches = features.max_activating_patches(bundle, images, layer, chans, tops=tops[layer])
    plot.show_patches(patches, labels=[f"ch {c}" for c in chans], size=0.8 if kind == "shallow" else 0.9,
                      title=f"{bundle.name}, {layer} ({kind}): top 9 of {len(images)} canvases per channel, "
                            f"{rf.size[0]} px patches")
''')

md(r'''
Compare the two grids. The shallow patches are 14 px wide: look for rows that are about one colour,
one edge orientation or one texture, regardless of what the canvas showed. The deep patches are half
a canvas wide: look for rows whose patches share a *shape* (a collar, a sole, a strap, the gap between
trouser legs) even when colours differ, and for rows that are about the background instead.

## Where the patches come from
A patch alone hides its context. Below, one channel of the deep layer: the top 9 patches and, under
each, the canvas it was cut from with the unit's receptive field boxed.
''')

code(r'''
layer = layers["deep"]
t, rf = tops[layer], features.receptive_field(bundle, layer)
c = first_channels(layer)[0]
plot.show_top_units(features.max_activating_patches(bundle, images, layer, c, tops=t),
                    images[t.indices[c]], rf.boxes(t.positions[c], images.shape[-1]),
                    titles=[f"{data.CLASSES[canvases.labels[i]]}\n{v:.2f}" for i, v in
                            zip(t.indices[c].tolist(), t.values[c].tolist())],
                    image_titles=[f"canvas {i}" for i in t.indices[c].tolist()],
                    suptitle=f"{bundle.name}, {layer}, channel {c}: top 9 units (class of the canvas, activation)")
''')

md(r'''
Two questions we can answer with numbers instead of by eye, over *all* channels of each layer:
- **Class purity**: of a channel's top 9 canvases, how many share the most common class? For units
  that ignore the class this stays near what 9 random canvases give.
- **On the item**: does the centre of the top unit's RF lie on the clothing item (the canvases come
  with masks) or on the background? Compare with the fraction of canvas pixels that are item.
''')

code(r'''
def purity(labels):                                  # labels: C x k class indices of the top canvases
    return torch.stack([torch.bincount(l, minlength=10).max() for l in labels]).float().mean() / labels.shape[1]

labels = canvases.labels.long()
chance = purity(labels[torch.randint(len(labels), (256, 9), generator=torch.Generator().manual_seed(0))])
print(f"random 9 canvases: purity {chance:.2f}; item pixels: {canvases.masks.float().mean():.2f} of the canvas")
for kind, name in layers.items():
    top, field = tops[name], features.receptive_field(bundle, name)
    live = top.values[:, 0] > 0                                  # channels that respond at all
    cy, cx = field.centers(top.positions[live], images.shape[-1]).unbind(-1)
    on_item = canvases.masks[top.indices[live], cy, cx].float().mean()
    print(f"{kind:8s} {name}: purity {purity(labels[top.indices[live]]):.2f}, RF centre on the item {on_item:.2f}")
''')

md(r'''
## Explore: any layer, any channel
In JupyterLab or Colab the next cell shows a layer menu and a channel slider; everything is cropped
up front, so moving the slider only redraws. A web page has no Python to compute with, so the book
shows the default setting (a channel of the shallow layer) as a static figure under it.
''')

code(r'''
widgets.patch_explorer(bundle, images, tops, layer=layers["shallow"], channel=first_channels(layers["shallow"])[0])
''', tags=["nbval-ignore-output"])

code(r'''
layer, c = layers["shallow"], first_channels(layers["shallow"])[0]      # the widget's first setting
t, rf = tops[layer], features.receptive_field(bundle, layer)
plot.show_top_units(features.max_activating_patches(bundle, images, layer, c, tops=t),
                    images[t.indices[c]], rf.boxes(t.positions[c], images.shape[-1]),
                    titles=[f"{v:.2f}" for v in t.values[c].tolist()],
                    image_titles=[f"image {i}" for i in t.indices[c].tolist()],
                    suptitle=f"{bundle.name}, {layer}, channel {c}: top 9 of {len(images)} images, "
                             f"receptive field {rf.size[0]} px")
''')

md(r'''
## Aside: the effective receptive field
Every pixel of the RF *can* influence the unit, but not equally. Luo et al.
{cite}`luo2016understanding` measure the *effective* receptive field as the average magnitude of the
input gradient of a unit, here the sum over channels at the centre of the map, averaged over 32
canvases:

$$
\mathrm{ERF}(u, v) = \frac{1}{N} \sum_{n=1}^{N} \sum_{\text{colours}}
\left| \frac{\partial \sum_c f_c^{(n)}(y_0, x_0)}{\partial x^{(n)}(u, v)} \right| .
$$

A pixel near the centre reaches the unit through many paths, one in a corner of the RF through
only a few, so the gradient tends to concentrate in the middle. The cyan box is the theoretical RF;
the numbers say how much of the gradient falls in its central part.
''')

code(r'''
erf_layers = ["features.12", "features.19", "features.26"]
maps, spans, titles = [], [], []
for layer in erf_layers:
    rf = features.receptive_field(bundle, layer)
    y0 = x0 = images.shape[-1] // rf.jump[0] // 2                 # the centre unit
    erf = features.effective_receptive_field(bundle, images[:32], layer, position=(y0, x0))
    bx0, by0, bx1, by1 = rf.span(y0, x0)
    q = rf.size[0] // 4                                              # the central half of the RF, per side
    inner = erf[max(by0 + q, 0):by1 - q, max(bx0 + q, 0):bx1 - q].sum() / erf.sum()
    side = rf.size[0] - 2 * q
    print(f"{layer}: RF {rf.size[0]} x {rf.size[0]} px; its central {side} x {side} px "
          f"({side ** 2 / rf.size[0] ** 2:.2f} of the area) hold {inner:.2f} of the gradient")
    maps.append(erf); spans.append(rf.span(y0, x0)); titles.append(f"{layer}, RF {rf.size[0]} px")
plot.show_maps_with_boxes(maps, spans, titles, suptitle=f"{bundle.name}: effective receptive field of the centre unit")
''')

md(r'''
## With an ImageNet network (online)
The same functions work for any Sequential trunk. With internet, VGG16's ImageNet weights download
once; its conv4_3 units see 92 px and conv5_3 units 196 px of a 224 px image, so use photos, e.g. a
folder of your own, resized to 224 px (and fewer of them: VGG16 is much slower than `gapnet`).
To run the next cell, set `MODEL` at the top of the chapter (offline it is `None`, and the cell only says so).

''')

code(r"""
net = models.imagenet(MODEL)            # MODEL is set at the top: None offline, e.g. "vgg16" or "alexnet" online
if net:
    s = net.input_size
    photos = torch.cat([data.sample_image(n, size=s)[..., :s, :s] for n in data.SAMPLE_IMAGES])
    layer = net.layers["default"]                                    # the last conv block
    try:
        rf = features.receptive_field(net, layer)     # needs a Sequential trunk: VGG, AlexNet (not ResNet, GoogLeNet)
    except features.ReceptiveFieldError as e:
        print(e)
    else:
        print(layer, rf)
        tops = features.top_activations(net, photos, layer, k=4)
        plot.show_patches(features.max_activating_patches(net, photos, layer, list(range(8)), tops=tops))
""", tags=["imagenet"])

md(r'''
## What to notice
- The receptive field follows from the architecture alone: kernels, strides, paddings, dilations.
  Pooling (any stride) makes every later layer grow it faster.
- Shallow channels respond to small, simple patterns; deep channels to larger structures, and their
  top patches can look alike even when their colours differ.
- Counting one unit per image makes the top-k a statement about *images*; padding border patches
  to the full RF keeps the unit's position within its patch fixed.
- A patch grid shows what *maximises* a unit on *this* data set, not everything the unit does: the
  ninth-best patch can already look different from the first, and a different data set can give a
  different picture. The numbers (purity, on-item fraction) are a check on what the eye sees.
- The theoretical RF is an upper bound; most of the influence comes from its centre (the effective
  receptive field).

## Exercises
1. Build `net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, dilation=4, padding=4))`,
   predict the receptive field of layer `"1"` by hand with the recurrence and check with
   `features.receptive_field(net, "1")`. Then plot
   `features.effective_receptive_field(models.Bundle("toy", net), torch.rand(8, 3, 64, 64), "1")`:
   a dilated RF has holes. Which dilation closes them?
2. Use `k=50` for one deep channel and look at patches 1-9 against 41-50. At what rank do the patches
   stop sharing a pattern?
3. Compute top activations counting every position (not one per image): how many of the top 9 come
   from the same canvas, for a shallow and a deep layer? (Hint: `features.activations` and
   `torch.topk` on the flattened maps of 200 canvases.)
4. Compare the patches with 9 *random* units of the same layer (`crop_patches` with random indices and
   positions). Which of your impressions from the grids survive?
5. Run the purity and on-item numbers for every ReLU of the trunk. How do they change with depth?

## References
- {cite}`cs231n2017lecture12`, "Maximally activating patches".
- {cite}`girshick2014rich` (R-CNN: top regions of pool5 units), {cite}`zeiler2014visualizing`
  (top-9 patches per feature map beside their deconvnet projections).
- {cite}`luo2016understanding` (the effective receptive field).
- {cite}`krizhevsky2012imagenet` (AlexNet, used in the tests), {cite}`simonyan2015very` (VGG16),
  {cite}`xiao2017fashion` (Fashion-MNIST).
''')

cells.write(OUT)
