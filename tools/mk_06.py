"""Generate notebooks/06_guided_backprop.ipynb (then execute it with nbconvert --execute --inplace)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

HERE = Path(__file__).resolve().parent.parent
cells = Cells()
md, code = cells.md, cells.code


md(r"""
# 6. Guided backpropagation

*CS231n lecture 12: "Intermediate features via (guided) backprop" (Zeiler & Fergus 2014; Springenberg et al. 2015)*

The saliency map of [chapter 5](05_saliency.ipynb) is the gradient of a class score with respect to the pixels, and it
looks like noise scattered around the object. Zeiler and Fergus {cite}`zeiler2014visualizing`
projected single units back to the pixels with a *deconvnet*, and Springenberg et al.
{cite}`springenberg2015striving` with *guided backpropagation*; both give sharp pictures that
look like drawings of the object. Both are the gradient with **one change**: what the backward
pass does when it goes through a ReLU.

This chapter writes the three rules (plain gradient, deconvnet, guided) as the backward pass of
one small function, swaps it into a network for the duration of a `with` block, and compares the
pictures for class scores and for single units, on the canvases and on VGG16. Then it asks what
the sharpness buys: the pictures hardly change when we ask about another class
{cite}`nie2018theoretical`, which is why Grad-CAM (chapter 8) multiplies them by a map that does.

**Learning goals**
- Write the backward pass of a ReLU under the three rules and say what each one lets through.
- Implement the rules by swapping modules inside a `with` block, and say why a ReLU applied as a
  function (`F.relu`) defeats the swap.
- Project a class score or one unit of an intermediate layer back to the pixels.
- Measure how much the pictures depend on the class, and explain why sharp is not the same as faithful.
""")

code(SETUP_CELL)

code(r"""
import inspect
import torch
import lib
from lib import attribution, data, features, metrics, models, plot, widgets
from lib.attribution import guided

lib.seed(0)
MODEL = None                        # online: "vgg16", "resnet50", ... runs the ImageNet section at the end
bundle = models.load("gapnet")
canvases = data.load_canvases("test")
print(bundle)
""")

md(r"""
## Three rules at a ReLU
A ReLU computes $a = \max(x, 0)$. On the way back it receives $g = \partial y / \partial a$, the
gradient of the output $y$ with respect to its own output, and passes a signal $R$ down to $x$.
The three methods differ only here:

$$
\underbrace{R = g \cdot [x > 0]}_{\text{vanilla gradient}} \qquad
\underbrace{R = \max(g, 0)}_{\text{deconvnet}} \qquad
\underbrace{R = \max(g, 0) \cdot [x > 0]}_{\text{guided backpropagation}}
$$

The gradient (chapter 5's `attribution.input_gradient`) masks by the *forward* pass: it flows
where the unit was active. Zeiler and Fergus's
deconvnet applies the ReLU to the *backward* signal instead: only positive signals flow, wherever
they land. Guided backpropagation does both, so only signals that were active on the way up *and*
argue for the output on the way down reach the pixels. The deconvnet's other parts (transposed
filters, max-pooling "switches") are exactly what backpropagation does through a convolution and a
max-pool, so the ReLU rule is the whole difference {cite}`springenberg2015striving`.

Three units, one of each kind: active with a negative gradient, inactive with a positive one,
active with a positive one:
""")

code(r"""
x = torch.tensor([2.0, -1.0, 3.0])      # what came into the ReLU on the way up
g = torch.tensor([-1.0, 2.0, 1.0])      # the gradient arriving from above on the way back
print("vanilla   ", g * (x > 0))
print("deconvnet ", g.clamp(min=0))
print("guided    ", g.clamp(min=0) * (x > 0))
""")

md(r"""
## Swapping the ReLUs in a network
`lib` puts these three lines in the backward pass of a `torch.autograd.Function` (its forward is
the ordinary ReLU):
""")

code(r"""
print(inspect.getsource(guided._ModifiedReLUFunction.backward))
""")

md(r"""
`guided.modified_relus(model, rule)` replaces every `nn.ReLU` module of the model (the in-place
ones included) by a `ModifiedReLU` that calls this function, through `lib.hooks.patch`; when the
`with` block ends, even by an exception, the original modules are put back. This is simpler and
sturdier than the module backward hooks many implementations use, which break on in-place ReLUs
(torchvision's VGG and ResNet use `ReLU(inplace=True)`, and so does our network):
""")

code(r"""
relu = bundle.model.features[2]
print("before:", relu)
with guided.modified_relus(bundle.model, "guided"):
    print("inside:", bundle.model.features[2])
print("after: ", bundle.model.features[2], "(the same object:", bundle.model.features[2] is relu, ")")
""")

md(r"""
The swap reaches only ReLU *modules*. A network that calls `F.relu` inside its `forward` has
nothing to swap, and a method that went ahead would silently return the plain gradient there.
`attribution.guided_backprop` watches the forward pass for such calls and refuses. torchvision's
GoogLeNet is such a network (random weights here; the architecture is what matters):
""")

code(r"""
googlenet = models.load("googlenet", weights=None)
try:
    attribution.guided_backprop(googlenet, torch.rand(1, 3, 64, 64))
except guided.ReLUPatchError as e:
    print("ReLUPatchError:", e)
""")

md(r"""
## Explaining a class score
`attribution.guided_backprop(bundle, x, target=None, rule="guided")` returns the gradient of the
class score (default: the predicted class) with respect to the input, one 3-channel image per
input image, raw and signed. To draw it, `attribution.gradient_image` maps 0 to grey and scales
each image by its 99th percentile of $|g|$; `attribution.gradient_map` gives one number per pixel,
$\max_c |g_c|$, the N x H x W map every method of this part returns.
""")

code(r"""
x = canvases.images[:6]
with torch.no_grad():
    pred = bundle(x).argmax(1)
grads = {rule: attribution.guided_backprop(bundle, x, rule=rule) for rule in guided.RULES}
rows = {"input": x, **{rule: attribution.gradient_image(g) for rule, g in grads.items()}}
plot.show_image_rows(rows, titles={"input": [data.CLASSES[p] for p in pred]}, boxes=canvases.boxes[:6],
                     suptitle=f"{bundle.name}: gradient of the predicted class's score, three ReLU rules")
""")

md(r"""
How much of each picture lies on the object? For the first 48 test canvases: the share of
$\sum |g|$ (the `gradient_map`) that falls on the object's pixels, and the pointing game (does the
map's maximum fall in the object's box?) that chapter 9 uses to compare all methods.
""")

code(r"""
n = 48
xn, masks, boxes = canvases.images[:n], canvases.masks[:n], canvases.boxes[:n]
for rule in guided.RULES:
    m = attribution.gradient_map(attribution.guided_backprop(bundle, xn, rule=rule))
    on_object = ((m * masks).sum((1, 2)) / m.sum((1, 2))).mean()
    hits = metrics.pointing_game(m, boxes).float().mean()
    print(f"{rule:10s} share of |gradient| on the object: {on_object:.2f}   pointing game: {hits:.2f}")
print(f"(the objects cover {masks.float().mean():.2f} of a canvas on average)")
""")

md(r"""
## Does the picture depend on the class?
An explanation of "why *this* class" should change when we ask about another class. Below, the
gradient for the predicted class and for the runner-up class (the second-highest score), and the
cosine similarity of the two gradient images (1: the same picture up to scale).
""")

code(r"""
with torch.no_grad():
    top2 = bundle(x).topk(2).indices
rows, titles = {"input": x}, {}
for rule in ("vanilla", "guided"):
    g1 = attribution.guided_backprop(bundle, x, target=top2[:, 0], rule=rule)
    g2 = attribution.guided_backprop(bundle, x, target=top2[:, 1], rule=rule)
    sim = torch.nn.functional.cosine_similarity(g1.flatten(1), g2.flatten(1))
    print(f"{rule:8s} similarity, predicted vs runner-up class: mean {sim.mean():.2f} "
          f"(lowest {sim.min():.2f}, highest {sim.max():.2f})")
    rows[f"{rule}\npredicted"], rows[f"{rule}\nrunner-up"] = attribution.gradient_image(g1), attribution.gradient_image(g2)
    titles[f"{rule}\nrunner-up"] = [data.CLASSES[c] for c in top2[:, 1]]
titles["input"] = [data.CLASSES[c] for c in top2[:, 0]]
plot.show_image_rows(rows, titles=titles, suptitle=f"{bundle.name}: predicted class vs runner-up class")
""")

md(r"""
The plain gradient changes with the class; the guided pictures barely do. Nie et al.
{cite}`nie2018theoretical` showed why: with both masks, the backward pass mostly reconstructs
the image's edges inside the active units, whatever the class at the top, and Adebayo et al.
{cite}`adebayo2018sanity` found that guided backpropagation looks much the same even when the
network's weights are randomised (chapter 9 runs that check). Sharp is not the same as faithful.

## Intermediate units: what Zeiler and Fergus projected
Instead of a class score, take one unit of an intermediate layer $\ell$: channel $k$ of its
activation $A^{\ell}$, at the position where it is strongest,

$$ y = \max_{i, j} A^{\ell}_{k, i j}, $$

which is Zeiler and Fergus's choice: they kept the strongest activation of a feature map and set
all others to zero before projecting down. `guided_backprop(bundle, x, layer=..., channel=...)`
does this (`reduce="sum"` takes the whole map instead); without `channel` it takes each image's
most active channel. Here, for the first four canvases, the most active channel of the last conv
layer:
""")

code(r"""
layer = "features.26"
x4 = canvases.images[:4]
units = {rule: attribution.guided_backprop(bundle, x4, layer=layer, rule=rule) for rule in guided.RULES}
plot.show_image_rows({"input": x4, **{rule: attribution.gradient_image(g) for rule, g in units.items()}},
                     boxes=canvases.boxes[:4],
                     suptitle=f"{bundle.name}: each canvas's most active channel of {layer}, three rules")
""")

md(r"""
### A real ImageNet network: VGG16
`vgg16-hed` (see [the models](../book/models.md)) holds VGG16's ImageNet conv layers, fine-tuned
for edges; it has no classifier, so we explain units. The three most active channels of conv5_3
(`features.29`) on a photo of a cat, each projected from its strongest activation under the three
rules. Each conv5_3 unit sees up to 196 x 196 pixels; the projection shows which of them it used.
""")

code(r"""
vgg = models.load("vgg16-hed")     # online: models.load("vgg16") gives the original ImageNet VGG16
photo = data.sample_image("chelsea", size=128)
acts = features.activations(vgg, photo, "features.29")["features.29"][0]
top = acts.flatten(1).amax(1).topk(3).indices
print("strongest conv5_3 channels:", top.tolist())
batch = photo.expand(3, -1, -1, -1)
rows = {rule: attribution.gradient_image(attribution.guided_backprop(vgg, batch, layer="features.29", channel=top, rule=rule))
        for rule in guided.RULES}
plot.show_image_rows({"input": batch, **rows}, titles={"input": [f"channel {c}" for c in top.tolist()]}, size=2.2,
                     suptitle=f"{vgg.name}: the three strongest conv5_3 units of the photo, three rules")
""")

md(r"""
## Explore: any layer, any channel
Pick a layer and a channel of `gapnet` for one canvas; the three pictures show what drives that
channel's strongest unit. It starts at `features.19` (the third stage), at the channel most active
on this canvas. In JupyterLab or Colab the next cell shows a layer menu and a channel
slider (each new setting takes three backward passes, then it is cached); the book shows the
default setting as a static figure instead. Early layers have small receptive fields, so their
pictures are small patches; the deeper the layer, the more of the object they cover.
""")

code(r"""
layers = [f"features.{i}" for i in (2, 5, 9, 12, 16, 19, 23, 26)]   # every ReLU of the trunk
widgets.guided_explorer(bundle, canvases.images[:1], layers, layer="features.19")   # starts at its most active channel
""", tags=["nbval-ignore-output"])

code(r"""
x1 = canvases.images[:1]
a = features.activations(bundle, x1, "features.19")["features.19"][0]
k = int(a.flatten(1).amax(1).argmax())                                  # the most active channel
unit = {rule: attribution.guided_backprop(bundle, x1, layer="features.19", channel=k, rule=rule) for rule in guided.RULES}
plot.show_images(torch.cat([x1, *[attribution.gradient_image(g) for g in unit.values()]]), ["input", *unit],
                 ncols=4, size=2.2, suptitle=f"{bundle.name}: features.19, channel {k}, its strongest activation")
""")

md(r"""
## Online: the original ImageNet networks
With internet, the same calls run on torchvision's ImageNet models; class scores can be explained
too, since they have a classifier.
To run the next cell, set `MODEL` at the top of the chapter (offline it is `None`, and the cell only says so).

""")

code(r"""
net = models.imagenet(MODEL)            # MODEL is set at the top: None offline, e.g. "vgg16" online
if net:
    photo = data.sample_image("chelsea", size=net.input_size)
    g = attribution.guided_backprop(net, photo)                                   # predicted class
    units = attribution.guided_backprop(net, photo, layer=net.layers["default"], channel=None)   # strongest unit
    d = attribution.guided_backprop(net, photo, rule="deconvnet")  # ResNets reuse one nn.ReLU: swapped once, all uses covered
    plot.show_images(torch.cat([photo, *[attribution.gradient_image(m) for m in (g, units, d)]]),
                     ["input", "guided, class", "guided, strongest unit", "deconvnet"], ncols=4, suptitle=net.name)
""", tags=["imagenet"])

md(r"""
## What to notice
- The three methods are one gradient computation with three different ReLU rules; everything
  else (convolutions, pooling) is back-propagated as usual.
- The deconvnet ignores the forward pass at the ReLUs (only the max-pooling switches remember it),
  so its pictures are the least specific to the object: texture everywhere. Guided backpropagation
  keeps both masks and gives the sharpest, most object-like pictures (compare the printed shares
  of $|g|$ on the object with the objects' area).
- Sharp is not class-discriminative: the guided pictures for two different classes are almost the
  same, while the plain gradient changes. Guided backpropagation shows what in the image the
  active units respond to, more than why the network chose a class.
- A unit's projection covers at most its receptive field, so it grows with depth: a small patch
  for `features.2`, a whole object part for conv5_3 of VGG16.
- The implementation is a module swap inside a `with` block, restored on exit; ReLUs applied with
  `F.relu` cannot be swapped, and the method refuses rather than return a mix of rules.

## Exercises
1. For a unit of the first ReLU (`layer="features.2"`), check that the three rules give exactly the
   same gradient (`torch.equal`). Explain why from the three equations. From which layer on do they differ?
2. Project a `features.26` unit with `reduce="sum"` instead of the default `"max"`. How does the
   picture change, and why did Zeiler and Fergus keep only the strongest activation?
3. Sanity check: wrap an untrained `models.GapNet()` in a bundle
   (`models.Bundle("random", models.GapNet().eval(), classes=data.CLASSES, input_size=64)`) and
   compare its guided backpropagation on the same canvases with the trained network's. What does
   that say about what the sharp edges show? (Chapter 9 does this systematically.)
4. Captum's `GuidedBackprop` also works by hooking `nn.ReLU` modules. Run it on the random-weight
   GoogLeNet above and compare its result with `guided_backprop(..., rule="vanilla")`. What happened?

## References
- {cite}`cs231n2017lecture12`, section "Intermediate features via (guided) backprop".
- {cite}`zeiler2014visualizing` (the deconvnet), {cite}`springenberg2015striving` (guided
  backpropagation), {cite}`simonyan2013deep` (the gradient, and its link to the deconvnet).
- {cite}`nie2018theoretical` and {cite}`adebayo2018sanity`: why the pictures look like edge maps, and
  why that is a warning.
- {cite}`kokhlikyan2020captum` (Captum, whose `GuidedBackprop` and `Deconvolution` the tests compare with),
  {cite}`simonyan2015very` (VGG16), {cite}`xie2015holistically` (HED).
""")

cells.write(HERE / "notebooks" / "06_guided_backprop.ipynb")
