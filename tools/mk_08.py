"""Generate notebooks/08_grad_cam.ipynb (then execute it with nbconvert --execute --inplace)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

HERE = Path(__file__).resolve().parent.parent
cells = Cells()
md, code = cells.md, cells.code


md(r"""
# 8. Grad-CAM

*CS231n lecture 12: "Which pixels matter?", here with gradient-weighted class activation mapping (Selvaraju et al. 2017)*

CAM ([chapter 7](07_cam.ipynb)) reads a class map straight off a network whose head is global
average pooling and one linear layer. Grad-CAM {cite}`selvaraju2017gradcam` drops that condition:
it weights the feature maps of *any* conv layer by the spatial mean of the class score's gradient,
so it works on any architecture, at any depth, and on a GAP network it gives exactly CAM. It is
coarse (the layer's resolution) but *class-discriminative*, the opposite of guided backpropagation
([chapter 6](06_guided_backprop.ipynb)), which is sharp but hardly depends on the class; their
product, Guided Grad-CAM, is sharp and class-discriminative. Negating the gradient gives
*counterfactual* maps: the regions that argue against the class.

**Learning goals**
- Compute Grad-CAM from a forward hook and one call to `torch.autograd.grad`, and say why it costs
  about one forward pass.
- Show that on a GAP network Grad-CAM is CAM divided by the number of positions.
- Read Grad-CAM for different classes, counterfactual maps and Guided Grad-CAM, on images with
  two objects.
- Choose the layer: measure how resolution, localisation and class-specificity change with depth.
""")

code(SETUP_CELL)

code(r"""
import time
from itertools import combinations
import torch
import lib
from lib import attribution, data, hooks, images, metrics, models, plot, widgets

lib.seed(0)
MODEL = None                        # online: "vgg16", "resnet50", ... runs the ImageNet section at the end
bundle = models.load("gapnet")
canvases = data.load_canvases("test")
print(bundle)
""")

md(r"""
## The idea in five lines
Let $y^c$ be the score of class $c$ before the softmax and $A^k$ ($k = 1 \dots K$) the feature maps
of a conv layer, $Z$ positions each. Grad-CAM weights each map by how much, on average over the
positions, the score increases with it,

$$ \alpha_k^c = \frac{1}{Z} \sum_{i} \sum_{j} \frac{\partial y^c}{\partial A^k_{ij}}, $$

and keeps the positive part of the weighted sum,

$$ L^c_{\text{Grad-CAM}} = \mathrm{ReLU}\Big( \sum_k \alpha_k^c A^k \Big), $$

which is then upsampled (bilinearly) to the image. The ReLU keeps the positions that speak *for*
the class. In code: a forward hook records $A$ (`hooks.capture`), `torch.autograd.grad` returns
$\partial y^c / \partial A$ and nothing else, and the parameters are frozen (`hooks.frozen`), so
no parameter gradient is computed or stored:
""")

code(r"""
x, layer = canvases.images[:6], "features.26"
with hooks.frozen(bundle.model), hooks.capture(bundle.model, layer) as rec:
    logits = bundle(x.clone().requires_grad_(True))        # parameters are frozen: the input carries the graph
    c = logits.argmax(1)                                    # explain the predicted class
    A = rec[layer]                                          # N x K x h x w, recorded by the forward hook
    (dA,) = torch.autograd.grad(logits.gather(1, c[:, None]).sum(), A)   # dy^c/dA; stops at A
alpha = dA.mean((2, 3))                                     # alpha_k^c: spatial mean of the gradient
L = torch.relu(torch.einsum("nk,nkhw->nhw", alpha, A.detach()))         # ReLU(sum_k alpha_k^c A^k)
print("A:", tuple(A.shape), " alpha:", tuple(alpha.shape), " map:", tuple(L.shape))
print("equal to attribution.grad_cam:", torch.allclose(L, attribution.grad_cam(bundle, x, layer=layer, upsample=False), atol=1e-6))
""")

md(r"""
`attribution.grad_cam(bundle, x, target=None, layer=None, counterfactual=False, upsample=True, relu=True)`
does exactly this for a batch (the target defaults to the predicted class, the layer to the
bundle's), and returns raw N x H x W maps. The backward pass goes from the score down to $A$ and
no further, so the cost is about that of one forward pass; back-propagating to the pixels, as
saliency maps and guided backpropagation do, costs more:
""")

code(r"""
xb = canvases.images[:32]
t0 = time.perf_counter()
with torch.no_grad():
    bundle(xb)
t1 = time.perf_counter()
attribution.grad_cam(bundle, xb)
t2 = time.perf_counter()
attribution.guided_backprop(bundle, xb)
t3 = time.perf_counter()
print(f"32 canvases: forward only {1000 * (t1 - t0):.0f} ms, Grad-CAM {1000 * (t2 - t1):.0f} ms, "
      f"guided backpropagation to the pixels {1000 * (t3 - t2):.0f} ms")
""")

md(r"""
## Grad-CAM generalises CAM
On a network whose head is global average pooling followed by a linear layer (ours), the score is

$$ y^c = \sum_k w_k^c \, \frac{1}{Z} \sum_{ij} A^k_{ij} + b^c
\quad\Rightarrow\quad \frac{\partial y^c}{\partial A^k_{ij}} = \frac{w_k^c}{Z}
\quad\Rightarrow\quad \alpha_k^c = \frac{w_k^c}{Z}, $$

so before its ReLU, Grad-CAM at the layer CAM uses is CAM divided by $Z$ (the paper's section 3.1).
For our last layer, $Z = 8 \times 8 = 64$:
""")

code(r"""
m_cam = attribution.cam(bundle, x, upsample=False)                         # chapter 7
m_grad = attribution.grad_cam(bundle, x, layer="features.26", relu=False, upsample=False)
Z = m_cam.shape[1] * m_cam.shape[2]
print(f"Z = {Z};  CAM == Z x Grad-CAM (before the ReLU):", torch.allclose(m_cam, Z * m_grad, atol=1e-4))
print("and after it:", torch.allclose(m_cam.clamp(min=0), Z * attribution.grad_cam(bundle, x, upsample=False), atol=1e-4))
""")

md(r"""
## Other classes, counterfactuals, and Guided Grad-CAM
For the first six test canvases (boxes: where the item really is): Grad-CAM for the predicted
class and for the runner-up class; the **counterfactual** map, which negates the gradients,

$$ L^c_{\text{counterfactual}} = \mathrm{ReLU}\Big( \sum_k \Big(-\frac{1}{Z}\sum_{ij} \frac{\partial y^c}{\partial A^k_{ij}}\Big) A^k \Big), $$

and shows the regions whose removal would make the network *more* confident in $c$; guided
backpropagation (chapter 6); and **Guided Grad-CAM**, their pixel-wise product
$G^c = R^c_{\text{guided}} \odot \mathrm{up}(L^c)$ (`attribution.guided_grad_cam`).
""")

code(r"""
with torch.no_grad():
    top2 = bundle(x).topk(2).indices
first, second = top2[:, 0], top2[:, 1]
rows = {"input": x,
        "Grad-CAM\npredicted": images.overlay(x, attribution.grad_cam(bundle, x, target=first)),
        "Grad-CAM\nrunner-up": images.overlay(x, attribution.grad_cam(bundle, x, target=second)),
        "counter-\nfactual": images.overlay(x, attribution.grad_cam(bundle, x, target=first, counterfactual=True)),
        "guided\nbackprop": attribution.gradient_image(attribution.guided_backprop(bundle, x, target=first)),
        "Guided\nGrad-CAM": attribution.gradient_image(attribution.guided_grad_cam(bundle, x, target=first))}
plot.show_image_rows(rows, titles={"input": [data.CLASSES[k] for k in first], "Grad-CAM\nrunner-up": [data.CLASSES[k] for k in second]},
                     boxes=canvases.boxes[:6], size=1.5, suptitle=f"{bundle.name}: Grad-CAM at features.26")
""")

md(r"""
### Two objects, two explanations
A canvas holds one item, so "where is the class?" has one answer. To test class-discrimination we
paste the item of one test canvas (its mask) onto another whose item is elsewhere and of another
class: two objects, A and B, in one image. A class-discriminative map for A should sit on A, and
the map for B on B.
""")

code(r"""
def apart(a, b):                        # boxes (x0, y0, x1, y1) that do not overlap
    return bool(a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])

pairs = {}                              # one partner j for each background canvas i
for i, j in combinations(range(40), 2):
    if i not in pairs and canvases.labels[i] != canvases.labels[j] and apart(canvases.boxes[i], canvases.boxes[j]):
        pairs[i] = j
ia, ib = list(pairs), list(pairs.values())
two = torch.where(canvases.masks[ib][:, None], canvases.images[ib], canvases.images[ia])   # paste B onto A
ta, tb = canvases.labels[ia], canvases.labels[ib]
mask_a, mask_b = canvases.masks[ia] & ~canvases.masks[ib], canvases.masks[ib]
print(f"{len(two)} two-object images")
""")

md(r"""
The four on which the network gives both classes the highest probability (the smaller of the two):
""")

code(r"""
with torch.no_grad():
    p = bundle(two).softmax(1)
k = torch.minimum(p[range(len(two)), ta], p[range(len(two)), tb]).topk(4).indices
xs = two[k]
rows = {"input": xs,
        "Grad-CAM A": images.overlay(xs, attribution.grad_cam(bundle, xs, target=ta[k])),
        "Grad-CAM B": images.overlay(xs, attribution.grad_cam(bundle, xs, target=tb[k])),
        "guided\nbackprop A": attribution.gradient_image(attribution.guided_backprop(bundle, xs, target=ta[k])),
        "Guided\nGrad-CAM A": attribution.gradient_image(attribution.guided_grad_cam(bundle, xs, target=ta[k])),
        "Guided\nGrad-CAM B": attribution.gradient_image(attribution.guided_grad_cam(bundle, xs, target=tb[k]))}
titles = {"input": [f"p={p[n, ta[n]]:.2f}, p={p[n, tb[n]]:.2f}" for n in k.tolist()],
          "Grad-CAM A": [data.CLASSES[c] for c in ta[k]], "Grad-CAM B": [data.CLASSES[c] for c in tb[k]]}
plot.show_image_rows(rows, titles=titles, size=1.7, suptitle=f"{bundle.name}: one image, two classes")
""")

md(r"""
Over all the two-object images: which share of each map lies on the object of its own class, and
which on the other object? Guided backpropagation (chapter 6) for comparison.
""")

code(r"""
def share(maps, masks):
    return ((maps * masks).sum((1, 2)) / maps.sum((1, 2)).clamp_min(1e-12)).mean()

for name, method in (("Grad-CAM", attribution.grad_cam), ("guided backprop", attribution.guided_backprop_map)):
    ma, mb = method(bundle, two, target=ta), method(bundle, two, target=tb)
    own, other = (share(ma, mask_a) + share(mb, mask_b)) / 2, (share(ma, mask_b) + share(mb, mask_a)) / 2
    print(f"{name:16s} share on its own class's object: {own:.2f}   on the other object: {other:.2f}")
""")

md(r"""
## Which layer? Resolution against class-specificity
Grad-CAM works at any conv layer. Going deeper, the maps get coarser (64 → 32 → 16 → 8 positions
across for our four stages) but each position sees more of the image and is more about the class.
`attribution.grad_cam_layers` computes all four from one forward and one backward pass.

In JupyterLab or Colab the next cell shows a layer menu and a class menu ("predicted" is each
image's own top class); the book shows all four layers for the predicted class as a static figure
instead.
""")

stages = '["features.5", "features.12", "features.19", "features.26"]'
code(rf"""
stages = {stages}    # the last ReLU of each stage
widgets.gradcam_explorer(bundle, x, stages, boxes=canvases.boxes[:6])
""", tags=["nbval-ignore-output"])

code(r"""
maps = attribution.grad_cam_layers(bundle, x, stages, upsample=False)         # the overlay upsamples
plot.show_overlay_rows(x, {f"{layer}\n({m.shape[1]}x{m.shape[2]})": m for layer, m in maps.items()},
                       boxes=canvases.boxes[:6], suptitle=f"{bundle.name}: Grad-CAM of the predicted class at each stage")
""")

md(r"""
Two numbers per layer. **Localisation**: the pointing game {cite}`zhang2016top` (is the map's
maximum inside the object's box?) on the first 200 test canvases (raise `n` on a faster machine).
**Class-specificity**: on the two-object images, the share of the map on its own class's object
divided by its share on both objects (0.5: no preference).
""")

code(r"""
n, hits = 200, {layer: [] for layer in stages}
for i in range(0, n, 100):                       # batches of 100 keep the memory small
    batch = attribution.grad_cam_layers(bundle, canvases.images[i:i + 100], stages)
    for layer in stages:
        hits[layer].append(metrics.pointing_game(batch[layer], canvases.boxes[i:i + 100]))
maps_a = attribution.grad_cam_layers(bundle, two, stages, target=ta)
maps_b = attribution.grad_cam_layers(bundle, two, stages, target=tb)
for layer in stages:
    own = (share(maps_a[layer], mask_a) + share(maps_b[layer], mask_b)) / 2
    other = (share(maps_a[layer], mask_b) + share(maps_b[layer], mask_a)) / 2
    print(f"{layer:12s} pointing game: {torch.cat(hits[layer]).float().mean():.2f}   "
          f"class-specificity: {own / (own + other):.2f}")
""")

md(r"""
### A deeper network: vgg16-cam
`vgg16-cam` (see [the models](../book/models.md)) is VGG16's ImageNet conv layers up to conv4_3 with
the CAM paper's head, fine-tuned on the canvases at 112 pixels. Grad-CAM reads conv2_2
(`features.8`, 56x56 positions), conv3_3 (`features.15`, 28x28), conv4_3 (`features.22`, 14x14)
and the head's conv (`head.1`, 14x14, the layer CAM uses), with the same widget:
""")

code(r"""
vgg = models.load("vgg16-cam")
xv, boxes_v = images.resize(canvases.images[:4], 112), canvases.boxes[:4] * 112 / 64
vgg_layers = ["features.8", "features.15", "features.22", "head.1"]
widgets.gradcam_explorer(vgg, xv, vgg_layers, boxes=boxes_v)
""", tags=["nbval-ignore-output"])

code(r"""
vmaps = attribution.grad_cam_layers(vgg, xv, vgg_layers, upsample=False)     # the overlay upsamples
plot.show_overlay_rows(xv, {f"{layer}\n({m.shape[1]}x{m.shape[2]})": m for layer, m in vmaps.items()},
                       boxes=boxes_v, suptitle=f"{vgg.name}: Grad-CAM of the predicted class at four depths")
""")

md(r"""
## Online: ImageNet networks
With internet, the same calls explain torchvision's ImageNet models. The
default layer is the last conv block (`layer4` for ResNet-50, `features.29` for VGG16); ImageNet
class 281 is "tabby cat", 282 "tiger cat".
To run the next cell, set `MODEL` at the top of the chapter (offline it is `None`, and the cell only says so).

""")

code(r"""
net = models.imagenet(MODEL)            # MODEL is set at the top: None offline, e.g. "resnet50" online
if net:
    photo = data.sample_image("chelsea", size=net.input_size)
    top = net.predict(photo).topk(2).indices[0].tolist()          # e.g. "tabby cat" and "tiger cat"
    cams = {net.classes[c]: attribution.grad_cam(net, photo, target=c) for c in top}
    cams["counterfactual"] = attribution.grad_cam(net, photo, counterfactual=True)
    plot.show_overlay_rows(photo, cams, suptitle=f"{net.name}, layer {net.layers['default']}")
    g = attribution.guided_grad_cam(net, photo)                    # Guided Grad-CAM
    plot.show_images(attribution.gradient_image(g), ["Guided Grad-CAM"], ncols=1, size=4)
""", tags=["imagenet"])

md(r"""
## What to notice
- Grad-CAM needs only the feature maps of one layer and the gradient of the score with respect to
  them: a forward hook and `torch.autograd.grad`, no change to the network, any architecture.
- On a GAP network it *is* CAM, up to the constant $1/Z$: CAM's weights $w_k^c$ are what the
  gradient averages to when the head is linear.
- Grad-CAM is coarse but class-discriminative: on the two-object images the map for each class
  sits on its own object, while guided backpropagation shows both objects whatever the class.
  Guided Grad-CAM keeps the detail and gains the class.
- Counterfactual maps point at what argues against the class: often the other object, or
  background texture that resembles another class.
- The layer matters: shallow layers give fine but noisy and hardly class-specific maps; the last
  conv layer gives coarse maps that localise and discriminate best (compare the printed numbers).

## Exercises
1. Use the softmax probability $p^c$ instead of the score $y^c$ in the five-line computation (replace
   `logits` by `logits.softmax(1)` in the gradient). How do the maps change on a canvas the network
   is very sure about, and why did Selvaraju et al. use the score?
2. Compute Grad-CAM at `features.24` (the last convolution, before batch normalisation and the ReLU)
   and at `features.26` with `relu=False`. How do they differ, and what does the final ReLU of the
   network do to the negative evidence?
3. On the two-object images, compute the counterfactual map of class A. How much of it lies on
   object B? On the background?
4. Repeat the pointing game with `tolerance=4` and with the masks instead of the boxes, and compare
   with CAM (chapter 7) and with the `metrics.centre_map` baseline. Is Grad-CAM at `features.19` better
   than the centre baseline?
5. Online: compare Grad-CAM of ResNet-50 at `layer4` for "tabby cat" and "tiger cat" on the photo
   above. Are the two maps as different as for our two-object images? Why not?

## References
- {cite}`selvaraju2017gradcam` (Grad-CAM, counterfactuals, Guided Grad-CAM), {cite}`zhou2016learning`
  (CAM), {cite}`springenberg2015striving` (guided backpropagation).
- {cite}`zhang2016top` (the pointing game), {cite}`adebayo2018sanity` (sanity checks, chapter 9).
- {cite}`jacobgilpytorchcam` (pytorch-grad-cam, whose `GradCAM` the tests compare with),
  {cite}`simonyan2015very` (VGG16), {cite}`cs231n2017lecture12`.
""")

cells.write(HERE / "notebooks" / "08_grad_cam.ipynb")
