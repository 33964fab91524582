"""Generate notebooks/07_cam.ipynb (then execute it with nbconvert --execute --inplace)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

HERE = Path(__file__).resolve().parent.parent
cells = Cells()
md, code = cells.md, cells.code


md(r"""
# 7. Class activation maps (CAM)

*CS231n lecture 12: "Which pixels matter?", here with class activation mapping (Zhou et al. 2016)*

Saliency maps and guided backpropagation ([chapters 5](05_saliency.ipynb) and
[6](06_guided_backprop.ipynb)) differentiate a class score with respect to the pixels. Class activation mapping {cite}`zhou2016learning` needs no gradient at all.
It reads the answer off the architecture: when a network ends with **global average pooling
(GAP) followed by one linear layer**, the score of a class is *exactly* the average, over the
image, of a map: a weighted sum of the last conv layer's channels. That map, the class activation
map, shows where the evidence for the class lies. It costs one forward pass, and it is a
decomposition of the score, not an approximation.

The price is the architecture. This chapter computes CAM on the course's GAP network and measures
whether it points at the object. It then looks at a deep pretrained network with a CAM head
(`vgg16-cam`). Last, it takes a network whose head is *not* GAP, a classic flatten + fully connected
head, and **retrofits** a GAP head onto it, as the paper did for AlexNet and VGG16.

**Learning goals**
- Derive why, for a GAP → linear head, a class score equals the spatial mean of its class
  activation map plus the bias, and check it numerically.
- Compute and read CAMs for the top classes of an image, and score them with the pointing game.
- Explain why CAM does not apply to a flatten + fully connected head, and retrofit a GAP head on a
  frozen trunk in seconds.
- Name CAM's limits: it needs a particular head, and its resolution is that of the last conv layer.
""")

code(SETUP_CELL)

code(r"""
import time
import torch
import lib
from lib import data, features, metrics, models, plot, widgets
from lib.attribution import cam, retrofit_gap_head
from lib.images import resize
from lib.models.train import accuracy

lib.seed(0)
MODEL = None                        # online: "vgg16", "resnet50", ... runs the ImageNet section at the end
bundle = models.load("gapnet")
canvases = data.load_canvases("test")
N_EVAL = 500                        # test canvases used for the scores below (all 2000 on a GPU)
test = canvases[:N_EVAL]
print(bundle)
""")

md(r"""
## The idea: a score that is the average of a map
Let $f_k(x, y)$ be channel $k$ of the last conv layer at position $(x, y)$. For `gapnet` that is
the last ReLU, `features.26`: 256 channels on an 8x8 grid. Global average pooling turns each
channel into one number, $F_k = \frac{1}{Z}\sum_{x,y} f_k(x, y)$, with $Z = 8 \cdot 8$ positions,
and the linear layer gives the score (logit) of class $c$. Swapping the two sums is all there is
to it:

$$
y^c = \sum_k w_k^c F_k + b^c
    = \sum_k w_k^c \, \frac{1}{Z} \sum_{x,y} f_k(x, y) + b^c
    = \frac{1}{Z} \sum_{x,y} \underbrace{\sum_k w_k^c f_k(x, y)}_{M_c(x, y)} + b^c .
$$

The **class activation map** $M_c(x, y) = \sum_k w_k^c f_k(x, y)$ weights each channel by how
much the linear layer counts it for class $c$. Its average *is* the score, up to the bias, which
does not depend on the position (the paper leaves it out). So $M_c(x, y)$ says exactly how much
position $(x, y)$ adds to the score of $c$. Three lines compute it for every class at once:
""")

code(r"""
x, boxes = canvases.images[:8], canvases.boxes[:8]
layer = bundle.layer("cam")                                   # 'features.26'
f = features.activations(bundle, x, layer)[layer]             # f_k(x, y): 8 x 256 x 8 x 8
w, b = bundle.model.fc.weight.detach(), bundle.model.fc.bias.detach()   # w_k^c: 10 x 256, b^c: 10
M = torch.einsum("ck,nkhw->nchw", w, f)                       # M_c(x, y): 8 images x 10 classes x 8 x 8
with torch.no_grad():
    y = bundle(x)                                             # the scores y^c (logits)
print("f:", tuple(f.shape), "  M:", tuple(M.shape))
print("y^c == mean of M_c + b^c for all 8 canvases x 10 classes:", torch.allclose(y, M.mean((2, 3)) + b, atol=1e-4))
""")

md(r"""
The same check, written out for the first canvas and its four highest-scoring classes:
""")

code(r"""
print(f"{'class':12s} {'score y^c':>10s} {'mean M_c':>9s} {'+ b^c':>7s} {'= sum':>7s}")
for c in y[0].argsort(descending=True)[:4].tolist():
    m = M[0, c].mean()
    print(f"{data.CLASSES[c]:12s} {y[0, c]:10.3f} {m:9.3f} {b[c]:7.3f} {m + b[c]:7.3f}")
""")

md(r"""
`lib.attribution.cam` does exactly this: it captures $f$ with a forward hook, weights it with the
linear layer's rows for the requested classes (default: the predicted class) and, unless told
otherwise, upsamples the 8x8 map bilinearly to the 64x64 input so it can be laid over the image.
""")

code(r"""
pred = y.argmax(1)
small = cam(bundle, x, target=pred, upsample=False)           # 8 x 8 x 8: M_c of the predicted class
print("cam() == M[predicted class]:", torch.allclose(small, M[torch.arange(8), pred], atol=1e-5))
print("upsampled:", tuple(cam(bundle, x).shape))
""")

md(r"""
## Where the evidence is: the two most probable classes
Below, for eight test canvases: the canvas with its ground-truth box, the CAM of the most probable
class, and the CAM of the second most probable class. Each overlay is scaled to its own
minimum and maximum (`lib.images.overlay`). The colour shows *where* within one map the evidence
is, not how strong it is compared with another map; the explorer further down prints the values.
""")

code(r"""
p, top = bundle.predict(x).topk(2, dim=1)                     # probabilities and indices of the top 2
cam1 = cam(bundle, x, target=top[:, 0])                       # 8 x 64 x 64
cam2 = cam(bundle, x, target=top[:, 1])
name = lambda cs, ps: [f"{data.CLASSES[c]} {q:.2f}" for c, q in zip(cs.tolist(), ps.tolist())]
titles = {"input": [f"true: {data.CLASSES[t]}" for t in canvases.labels[:8].tolist()],
          "top-1 CAM": name(top[:, 0], p[:, 0]), "top-2 CAM": name(top[:, 1], p[:, 1])}
plot.show_overlay_rows(x, {"top-1 CAM": cam1, "top-2 CAM": cam2}, titles=titles, boxes=boxes,
                       suptitle=f"{bundle.name}: CAM of the two most probable classes (class, probability)")
""")

md(r"""
The top-1 map usually lies on the item; its maximum is what the pointing game below scores. The
top-2 map answers a different question: which part of the image looks most like the runner-up?
Where the two classes are easily confused (shirt and T-shirt, pullover and coat), it often covers
the same item; where the runner-up has a low probability, it may light up background texture.
A map can also be negative: $M_c(x, y) < 0$ where the features speak *against* the class.

## Does CAM point at the object?
The pointing game {cite}`zhang2016top` counts a hit when the map's maximum falls inside the
ground-truth box or, stricter, on the item's own pixels (its mask). A map that ignores the model
sets the bar: a Gaussian centred on the canvas hits the box often, because the items are large,
so the centre of the canvas often lies inside the box.
""")

code(r"""
maps = cam(bundle, test.images)                               # CAM of the predicted class, N_EVAL x 64 x 64
centre = metrics.centre_map(len(test), 64)
for label, m in {"CAM (predicted class)": maps, "centre Gaussian (no model)": centre}.items():
    box = metrics.pointing_game(m, test.boxes).float().mean()
    mask = metrics.pointing_game(m, test.masks).float().mean()
    print(f"{label:28s} hits: box {box:.3f}, mask {mask:.3f}   ({len(test)} test canvases)")
""")

md(r"""
## Explore: any canvas, any class
Pick a canvas and a class. The panels show the raw 8x8 map $M_c$ (red where it adds to the
score, blue where it subtracts), the map upsampled over the canvas, and, underneath, the score
next to the mean of the map plus the bias. In JupyterLab or Colab the next cell is live; the book
shows the default setting as a static figure below it.
""")

code(r"""
widgets.cam_explorer(bundle, x, boxes=boxes)
""", tags=["nbval-ignore-output"])

code(r"""
c = int(pred[0])
note = f"score $y^c$ = {y[0, c]:.3f};   mean of $M_c$ = {M[0, c].mean():.3f}, $b^c$ = {b[c]:.3f}, sum = {M[0, c].mean() + b[c]:.3f}"
plot.show_cam(x[0], M[0, c], box=boxes[0], note=note, title=f"{bundle.name}: CAM of '{data.CLASSES[c]}' (predicted)")
""")

md(r"""
## A deep pretrained network with a CAM head: `vgg16-cam`
Zhou et al. turned VGG16 into a CAM network by removing everything after a late conv layer and
adding conv 3x3 → ReLU → GAP → linear, then fine-tuning. `vgg16-cam` is that recipe on ImageNet
VGG16 conv layers (see [the models](../book/models.md): the `vgg16-hed` weights, cut at conv4_3,
with block 4 and the new head fine-tuned here on the canvases). It takes canvases upscaled to
112 pixels, and its CAM layer `head.1` is 14x14, finer than `gapnet`'s 8x8. Its maps are computed
at 112 pixels and resized back to the 64-pixel canvas to sit beside `gapnet`'s.
""")

code(r"""
vgg = models.load("vgg16-cam")
print(vgg)
x112 = resize(x, 112)                                         # the size vgg16-cam was trained at
pv = vgg.predict(x112).argmax(1)
cam_v = resize(cam(vgg, x112), 64)                            # 14 x 14 -> 112 px -> back to 64 px
titles = {"gapnet CAM (8x8)": [data.CLASSES[c] for c in pred.tolist()],
          "vgg16-cam CAM (14x14)": [data.CLASSES[c] for c in pv.tolist()]}
plot.show_overlay_rows(x, {"gapnet CAM (8x8)": cam1, "vgg16-cam CAM (14x14)": cam_v}, titles=titles,
                       boxes=boxes, suptitle="CAM of each network's predicted class")
""")

md(r"""
Online, any torchvision network whose head is GAP → linear works the same way: ResNets
(`avgpool` + `fc`, CAM layer `layer4`, 2048 x 7 x 7 at 224 pixels) and GoogLeNet;
VGG16 and AlexNet do not (CAM then says so and points to Grad-CAM). To run the next cell, set `MODEL` at the top of the chapter (offline it is `None`, and the cell only says so).

""")

code(r"""
net = models.imagenet(MODEL)            # MODEL is set at the top: None offline, e.g. "resnet50" online
if net:
    photo = data.sample_image("chelsea", size=net.input_size)
    p, top = net.predict(photo).topk(2)
    try:
        maps = torch.cat([cam(net, photo, target=int(c)) for c in top[0]])    # ResNet: layer4 -> avgpool -> fc
    except lib.attribution.NotGapModelError as e:                                    # VGG16, AlexNet: flatten -> fc
        print(e)
    else:
        plot.show_overlays(photo.expand(2, -1, -1, -1), maps,
                           titles=[f"{net.classes[int(c)]} {q:.2f}" for c, q in zip(top[0], p[0])])
""", tags=["imagenet"])

md(r"""
## When the head is not GAP: `flatnet`
AlexNet and VGG16 end differently: they *flatten* the last conv maps into one long vector and
apply fully connected layers, $y = W_2\,\mathrm{ReLU}(W_1\,\mathrm{vec}(f) + b_1) + b_2$. Every
(channel, x, y) has its own weights, and a ReLU sits between the two layers, so no single map
averages to the score. `flatnet` is such a network: four conv stages like `gapnet`'s, but narrower,
then flatten → linear → ReLU → linear. It was trained briefly on the same canvases (its model card
is in [the models](../book/models.md)). CAM refuses it and says what to do instead:
""")

code(r"""
flat = models.load("flatnet")
print(flat)
print(flat.model.classifier)
try:
    cam(flat, x)
except Exception as e:                                        # NotGapModelError
    print(f"\n{type(e).__name__}: {e}")
""")

md(r"""
## Retrofitting a GAP head
Zhou et al. made AlexNet, VGG16 and GoogLeNet CAM-ready by removing the layers after a late conv
layer and adding conv 3x3 (1024 channels) → ReLU → GAP → linear, then fine-tuning the whole
network. The cheapest version of the recipe keeps the trunk **frozen**. The trunk's features $f$
of the training images can then be computed once and cached, and only the small new head is
trained on them: seconds on a CPU. With $g_j = \mathrm{ReLU}(V * f)_j$, the output of the new conv,
the new head computes

$$
y^c = \sum_j w_j^c \, \frac{1}{Z} \sum_{x,y} g_j(x, y) + b^c
    = \frac{1}{Z} \sum_{x,y} M_c(x, y) + b^c, \qquad M_c(x, y) = \sum_j w_j^c g_j(x, y),
$$

so CAM is exact again, at the new conv's ReLU (`head.1`). `retrofit_gap_head` copies `flatnet`
up to its last conv ReLU (`features.23`, 64 x 8 x 8), drops the fully connected head, adds the new
head and trains it on freshly drawn *training* canvases: Fashion-MNIST training items on the
training photos, none of which appear in the test canvases.
""")

code(r"""
items, labels = data.fashion_mnist("train")
gen = data.CanvasGenerator(items, labels, data.background_photos("train"), seed=7)
train = data.to_canvases(gen.sample(2000))                   # 2000 fresh training canvases
t0 = time.perf_counter()
retro = retrofit_gap_head(flat, "features.23", train.images, train.labels,
                          width=64, kernel_size=3, steps=40, batch_size=256, lr=1e-2, seed=0)
print(f"trunk features of {len(train)} canvases cached, head trained in {time.perf_counter() - t0:.1f} s")
print(retro)
print(retro.model.head, retro.model.pool, retro.model.fc, sep="\n")
""")

md(r"""
The new bundle's model is the frozen trunk (a copy: `flat` itself is untouched) followed by the
new head; its `pool` and `fc` are what `cam` looks for. Forty steps over 2000 cached feature maps
are a few epochs, enough for a head this small (one conv, one linear layer). Did it learn, and how does it compare
with the fully connected head it replaces, on the same test canvases?
""")

code(r"""
losses = retro.model.train_losses
print(f"head training loss: {sum(losses[:5]) / 5:.2f} (first 5 steps) -> {sum(losses[-5:]) / 5:.2f} (last 5)")
print(f"accuracy on {len(test)} test canvases:")
for bnd in (flat, retro):
    print(f"  {bnd.name:36s} {accuracy(bnd, test):.2f}")
""")

md(r"""
And now CAM works on it. Below, `flatnet`'s own prediction, then the retrofitted network's CAM of
its predicted class, beside `gapnet`'s CAM of its own prediction:
""")

code(r"""
pf, pr = flat.predict(x).argmax(1), retro.predict(x).argmax(1)
cam_r = cam(retro, x)
truth = canvases.labels[:8].tolist()
titles = {"input": [f"true: {data.CLASSES[t]}\nflatnet: {data.CLASSES[c]}" for t, c in zip(truth, pf.tolist())],
          "retrofitted CAM": [data.CLASSES[c] for c in pr.tolist()],
          "gapnet CAM": [data.CLASSES[c] for c in pred.tolist()]}
plot.show_overlay_rows(x, {"retrofitted CAM": cam_r, "gapnet CAM": cam1}, titles=titles, boxes=boxes,
                       suptitle=f"{retro.name} and gapnet: CAM of the predicted class")
maps_r = cam(retro, test.images)
print(f"pointing game of the retrofitted CAM: box {metrics.pointing_game(maps_r, test.boxes).float().mean():.2f}, "
      f"mask {metrics.pointing_game(maps_r, test.masks).float().mean():.2f}   ({len(test)} test canvases)")
""")

md(r"""
## What to notice
- **CAM is exact, not approximate.** For a GAP → linear head, the score equals the mean of the map
  plus the bias, to float rounding. Nothing is lost and nothing is estimated, which no
  gradient-based map can claim.
- **It is cheap.** One forward pass and one weighted sum of channels; no backward pass.
- **It is coarse.** The map has the last conv layer's resolution, 8x8 for `gapnet` and 14x14 for
  `vgg16-cam`, and is then blown up bilinearly. It finds the item, but it cannot trace a sleeve
  or a strap.
- **Top-1 and top-2 maps differ.** The same features, weighted by another row of the linear layer,
  point at other evidence. This is what *class-discriminative* means.
- **It needs the head.** A flatten + FC head has no such map. A retrofitted GAP head restores CAM,
  but the explanation is then of the *new* network. Compare the accuracies above: a frozen trunk
  whose features were learned for another head does not always give the new head everything it
  needs, which is why the paper fine-tuned the whole network.
- **The step beyond:** Grad-CAM replaces the weights $w_k^c$ by the spatially averaged gradients
  of the score, which applies to any architecture and gives back CAM (up to a ReLU and a scale)
  for a GAP head: [chapter 8](08_grad_cam.ipynb).

## Exercises
1. **The upsampled mean.** Check the identity for `vgg16-cam` (its CAM layer is `head.1`, its
   linear layer `fc`). Then compare the mean of the *upsampled* map, `cam(vgg, x112)`, with the
   mean of the 14x14 map. Are they equal? Why not exactly?
2. **Resolution against accuracy.** Retrofit the head on an earlier layer of `flatnet`,
   `"features.16"` (the last ReLU of stage 3, 16x16), with the same training canvases. Compare
   accuracy and the pointing game (box and mask) with the head on `"features.23"`. What do you
   gain and what do you lose?
3. **A 1x1 head.** Use `kernel_size=1`: the new conv then mixes channels at each position but
   sees no neighbours. How do the accuracy and the maps change? And with `width=16` or `256`?
4. **Negative evidence.** For a misclassified test canvas (find one with code), draw the CAM of the
   true class and of the predicted class. Where is $M_c$ most negative? Does the true class's map
   still sit on the item?
5. **Or explain the original.** Grad-CAM ([chapter 8](08_grad_cam.ipynb)) needs no new head:
   with `from lib.attribution import grad_cam`, compute `grad_cam(flat, test.images,
   layer="features.23")` and score it with the pointing game beside the retrofitted CAM. Which
   of the two explains `flatnet` itself, and which explains a different network? Then derive
   $\partial y^c / \partial f_k(x, y)$ for a GAP → linear head, to see why Grad-CAM gives back
   CAM there.

## References
- {cite}`zhou2016learning`: CAM, the GAP head and the retrofitting of AlexNet, VGG16 and GoogLeNet.
- {cite}`lin2014network`: global average pooling as a classifier head (Network in Network).
- {cite}`oquab2015object`: weakly supervised localisation from a classifier (global max pooling).
- {cite}`zhang2016top`: the pointing game. {cite}`selvaraju2017gradcam`: Grad-CAM (chapter 8).
- {cite}`simonyan2015very` (VGG16), {cite}`xiao2017fashion` (Fashion-MNIST),
  {cite}`cs231n2017lecture12`.
""")

cells.write(HERE / "notebooks" / "07_cam.ipynb")
