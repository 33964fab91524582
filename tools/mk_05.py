"""Generate notebooks/05_saliency.ipynb (then execute it with nbconvert --execute --inplace)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

HERE = Path(__file__).resolve().parent.parent
cells = Cells()
md, code = cells.md, cells.code


md(r"""
# 5. Saliency maps

*CS231n lecture 12: "Saliency maps", "Saliency maps: segmentation without supervision" (Simonyan et al. 2013)*

[Occlusion](04_occlusion.ipynb) asks which pixels matter by hiding them, one window at a time: hundreds
of forward passes per image. Simonyan, Vedaldi and Zisserman {cite}`simonyan2013deep` asked the
network directly: *how much would the class score change if this pixel changed a little?* That is a
derivative, and backpropagation computes it for every pixel at once, in one backward pass. The map
of its magnitude is the **saliency map**.

Gradients are noisy, so we also build SmoothGrad {cite}`smilkov2017smoothgrad`, which averages the
gradient over noisy copies of the image. Finally we do what the paper did to show that the maps
know where the object is: turn them into bounding boxes with GrabCut {cite}`rother2004grabcut`,
without ever training on a box, and score the boxes against the canvases' ground truth.

**Learning goals**
- Derive the saliency map from a first-order Taylor expansion of the class score, and compute it
  with one backward pass.
- Explain why the map uses the class *score* (logit) and not the softmax probability.
- See how local the linear approximation is, and how SmoothGrad's noise level and sample count
  trade speckle against blur.
- Turn a saliency map into a box (seeds, GrabCut, largest connected component) and judge it by
  IoU against honest baselines.
""")

code(SETUP_CELL)

code(r"""
import dataclasses
import time
import torch
import lib
from lib import attribution as A, data, metrics, models, plot, widgets

lib.seed(0)
MODEL = None                        # online: "vgg16", "resnet50", ... runs the ImageNet section at the end
bundle = models.load("gapnet")
canvases = data.load_canvases("test")
print(bundle)
""")

md(r"""
## The idea: the network is almost linear near an image
Let $S_c(I)$ be the score of class $c$ for image $I$ (the logit, before the softmax). Near a given
image $I_0$, a first-order Taylor expansion replaces the network by a linear function:

$$ S_c(I) \approx w^\top I + b, \qquad w = \left.\frac{\partial S_c}{\partial I}\right|_{I_0}. $$

For a linear classifier $w$ would be its weight vector, and $|w|$ would say how strongly each pixel
sways the score. For a deep network $w$ is the weight vector of the best linear model *at this
image*. The saliency map of an image with three colour channels takes, at every pixel $(i, j)$, the
largest magnitude over the channels:

$$ M_{ij} = \max_{c'} \left| w_{h(i, j, c')} \right|, $$

where $h(i, j, c')$ is the index of pixel $(i, j)$, channel $c'$ in the flattened vector $w$.

`A.input_gradient` computes $w$ with one forward and one backward pass. Inside, the few lines that
matter are (the parameters are frozen by `lib.hooks.frozen`, so no gradient is computed for them):

```python
x = x.detach().clone().requires_grad_(True)
score = bundle(x).gather(1, target[:, None]).sum()    # S_c of every image (images are independent)
(w,) = torch.autograd.grad(score, x)                 # dS_c/dI, N x 3 x H x W
```

The gradient is taken with respect to the **display-space** image (values in [0, 1]); autograd
follows the bundle's `preprocess` by the chain rule, so for an ImageNet model, which subtracts a mean
and divides by a standard deviation per channel, each channel's gradient is the model-space gradient
divided by that channel's standard deviation. (`gapnet` takes display space as it is.)
""")

code(r"""
x, truth = canvases.images[:8], canvases.boxes[:8]
with torch.no_grad():
    logits = bundle(x)
pred = logits.argmax(1)
w = A.input_gradient(bundle, x)                 # dS_c/dI for the predicted class c
M = w.abs().amax(1)                             # M_ij = max over channels of |w|
print("gradient:", tuple(w.shape), " saliency map:", tuple(M.shape))
print("same as A.saliency:", torch.equal(M, A.saliency(bundle, x)))
""")

code(r"""
titles = {"input": [data.CLASSES[p] for p in pred.tolist()]}
plot.show_localisation(x, {"saliency": M}, truth=truth, titles=titles, cmap="gray",
                       suptitle=f"{bundle.name}: saliency maps of the predicted class (box: ground truth)")
""")

md(r"""
### How local is "near"?
The linear model predicts that moving the image by a small step $\varepsilon d$ (with $\|d\| = 1$)
changes the score by $\varepsilon\, w^\top d$. We check that against the network along a random
direction. One subtlety first: canvases are 8-bit images, and in flat regions two pixels of a
max-pooling window can be *exactly* equal, where the network has a kink and the gradient is only a
one-sided slope. A tiny jitter (0.001) moves the image off those kinks.
""")

code(r"""
g = lib.seed(0)
x0 = x[:1] + 1e-3 * torch.randn(x[:1].shape, generator=g)            # off the 8-bit kinks
c = int(bundle(x0).argmax())
w0 = A.input_gradient(bundle, x0, target=c)
d = torch.randn(x0.shape, generator=g)
d /= d.norm()                                                        # a random unit direction
with torch.no_grad():
    for eps in (0.01, 0.1, 1.0, 10.0):
        actual = bundle(x0 + eps * d)[0, c] - bundle(x0)[0, c]
        linear = eps * (w0 * d).sum()
        print(f"step {eps:5}: actual change / linear prediction = {float(actual / linear):6.2f}")
""")

md(r"""
The ratio stays within about 10 % of 1 for the two smallest steps and drifts off for the larger
ones. A unit-norm step spread over 12,288 values changes each pixel by about $\varepsilon / 110$, so
the linear model holds for changes well below one gray level (1/255) and is already a quarter off
at about two gray levels ($\varepsilon = 1$), long before the image looks any different. The gradient is a very local explanation, and it varies quickly from point to point;
that is what makes raw saliency maps speckled, and what SmoothGrad (below) averages away.

### Why the score and not the probability?
The softmax probability $p_c = e^{S_c} / \sum_k e^{S_k}$ has the gradient

$$ \frac{\partial p_c}{\partial I} = p_c \left( \frac{\partial S_c}{\partial I} - \sum_k p_k \frac{\partial S_k}{\partial I} \right), $$

which mixes in every other class: $p_c$ rises when the *other* scores fall, so its gradient can point
at pixels that are evidence against the competitors rather than for class $c$. And when the network
is confident ($p_c \to 1$) the bracket cancels and the map fades, however much the pixels matter to
$S_c$. Simonyan et al. therefore use the score. To see the difference, wrap the model in a softmax:
""")

code(r"""
softmax_bundle = dataclasses.replace(bundle, model=torch.nn.Sequential(bundle.model, torch.nn.Softmax(1)))
w_prob = A.input_gradient(softmax_bundle, x, target=pred)              # dp_c/dI
p = logits.softmax(1)[torch.arange(len(x)), pred]
cos = torch.nn.functional.cosine_similarity(w.flatten(1), w_prob.flatten(1))
for i in range(len(x)):
    print(f"canvas {i}: p_c = {p[i]:.3f}   max|dS_c/dI| = {w[i].abs().max():.3f}   "
          f"max|dp_c/dI| = {w_prob[i].abs().max():.4f}   cosine = {cos[i]:.2f}")
""")

md(r"""
The most confident canvases have the faintest probability gradients, and where the cosine is well
below 1 the probability's map points at different pixels than the score's.

## SmoothGrad: average the gradient over noisy copies
Smilkov et al. {cite}`smilkov2017smoothgrad` observed that the gradient fluctuates sharply at small
scales (we just saw how local it is), and that averaging it over copies of the image with Gaussian
noise added keeps what is stable:

$$ \hat{w} = \frac{1}{n} \sum_{k=1}^{n} \left.\frac{\partial S_c}{\partial I}\right|_{I + \varepsilon_k},
\qquad \varepsilon_k \sim \mathcal{N}(0, \sigma^2), \qquad
\hat{M}_{ij} = \max_{c'} \left| \hat{w}_{h(i, j, c')} \right|. $$

The noise level is $\sigma / (\max I - \min I)$, a fraction of the image's value range; the paper
finds 10-20 % works best. We average the signed gradients and then take the magnitude, so
directions that flip from copy to copy cancel; `magnitude=True` averages $|w|$ instead, a variant
Smilkov et al. also discuss. Here are copies at a few noise levels, then the maps with 15 % noise and 25 samples:
""")

code(r"""
levels = (0.05, 0.15, 0.3, 0.5)
span = float(x[0].max() - x[0].min())                     # sigma = noise level x the image's value range
eps = torch.randn(x[:1].shape, generator=lib.seed(0))
noisy = torch.cat([x[:1] + s * span * eps for s in levels])
plot.show_images(noisy, [f"noise {s:g}" for s in levels], ncols=4, size=1.8,
                 suptitle="what SmoothGrad feeds the network: one canvas plus Gaussian noise")
""")

code(r"""
x6, truth6 = x[:6], truth[:6]
M6 = M[:6]
smooth6 = A.smoothgrad(bundle, x6, noise=0.15, samples=25)      # 6 x 25 = 150 gradients
plot.show_localisation(x6, {"saliency": M6, "SmoothGrad": smooth6}, truth=truth6, titles={"input": titles["input"]},
                       suptitle=f"{bundle.name}: vanilla gradient and SmoothGrad (noise 0.15, 25 samples)")
""")

md(r"""
## Explore: noise level and number of samples
In JupyterLab or Colab the next cell shows two sliders: the noise level and the number of noisy
copies averaged. Every setting is computed up front (`A.smoothgrad_steps` averages the first 1, 5
and 25 copies in one pass, 75 gradients for the three noise levels), so moving a slider only
redraws. The book shows the whole grid as a static figure below it; add noise levels or samples to
the lists for a finer grid.
""")

code(r"""
noises, counts = (0.05, 0.15, 0.3), (1, 5, 25)
steps = {s: A.smoothgrad_steps(bundle, x[:1], noise=s, samples=counts) for s in noises}
""")

code(r"""
widgets.smoothgrad_explorer(bundle, x[:1], maps=steps)
""", tags=["nbval-ignore-output"])

code(r"""
plot.show_map_rows({f"noise {s:g}": torch.cat([steps[s][n] for n in counts]) for s in noises}, cmap="gray",
                   size=1.8, suptitle=f"{bundle.name}: SmoothGrad of canvas 0 after 1, 5, 25 samples (columns)")
""")

md(r"""
## Segmentation without supervision: from a saliency map to a box
The network was trained with one label per canvas and never saw a box. Simonyan et al. showed that
its saliency maps still locate the object, well enough to enter the ImageNet localisation challenge
(46.4 % top-5 error in ILSVRC-2013). Their recipe, for each image:

1. **Seeds**: pixels whose saliency is above the 95th percentile of the map are certainly object;
   those below the 30th percentile are certainly background. The rest is unknown.
2. **GrabCut** {cite}`rother2004grabcut`: fit a colour model (a mixture of five Gaussians) to each set
   of seeds, then label every unknown pixel by a graph cut that trades colour fit against smooth
   boundaries, re-fitting the colour models and cutting again a few times. Saliency is sparse and
   speckled; GrabCut spreads it to the pixels of the same colours.
3. **Box**: the bounding box of the largest connected component of the object pixels.

A box is then judged by its intersection over union with the ground-truth box,

$$ \mathrm{IoU}(A, B) = \frac{|A \cap B|}{|A \cup B|}, $$

and counts as a correct localisation when $\mathrm{IoU} \ge 0.5$ (the PASCAL and ImageNet rule).
`metrics` has each step; OpenCV's `grabCut` does the graph cuts, seeded so the result is repeatable.
""")

code(r"""
fg, bg = metrics.grabcut_seeds(M6, fg_percentile=95, bg_percentile=30)                   # step 1
masks = torch.stack([metrics.grabcut_mask(img, m) for img, m in zip(x6, M6)])            # step 2
found = metrics.largest_component_box(masks)                                            # step 3
iou = metrics.box_iou(found, truth6)
print("found boxes (x0, y0, x1, y1):", found.tolist())
print("IoU with the ground truth:   ", [round(v, 2) for v in iou.tolist()])
""")

code(r"""
plot.show_localisation(x6, {"saliency": M6, "seeds": fg.float() - bg.float(), "GrabCut": masks.float()},
                       truth=truth6, found=found, titles={"input": [f"IoU {v:.2f}" for v in iou.tolist()]},
                       suptitle="green: ground truth, red: box from saliency + GrabCut; "
                                "seeds: white object, black background")
""")

md(r"""
## How good is it? Localisation on the test canvases, against baselines
A number means little without a baseline. Two that know nothing about the network:

- the **centre Gaussian** (`metrics.centre_map`), put through exactly the same seeds and GrabCut:
  what GrabCut finds from a guess that the object is in the middle;
- the **whole image** as the box.

We also threshold the saliency map directly, without GrabCut (`metrics.threshold_box`: the box of the
largest connected component above 20 % of the maximum, the rule chapter 9 uses for every method), to
see what GrabCut adds. A gradient and two GrabCuts per canvas take a while on a CPU (the cell prints
the time), so we score the first `N_EVAL` test canvases; set it to 2000 for all of them.
""")

code(r"""
N_EVAL = 100
start = time.perf_counter()
ev = canvases[:N_EVAL]
sal_ev = A.saliency(bundle, ev.images)
centre = metrics.centre_map(N_EVAL, 64)
boxes = {
    "saliency + GrabCut": metrics.grabcut_boxes(ev.images, sal_ev),
    "saliency, 20 % threshold": metrics.threshold_box(sal_ev, 0.2),
    "centre Gaussian + GrabCut": metrics.grabcut_boxes(ev.images, centre),
    "whole image": torch.tensor([0, 0, 64, 64]).expand(N_EVAL, 4),
}
print(f"{N_EVAL} test canvases in {time.perf_counter() - start:.1f} s")
for name, b in boxes.items():
    iou = metrics.box_iou(b, ev.boxes)
    print(f"{name:27s} mean IoU {iou.mean():.3f}   correct (IoU >= 0.5): {(iou >= 0.5).float().mean():.3f}")
""")

md(r"""
The whole-image box can never be correct here: an item is at most 44 pixels wide on a 64-pixel
canvas, so its box covers at most 47 % of the image. The centre Gaussian is a much harder baseline
than it looks: items are 28 to 44 pixels wide, so wherever one is placed its box usually covers or
nearly covers the canvas centre, and GrabCut then grows the blind guess to the pixels of the item's
colour. Saliency earns credit only for what it adds above that row; where it does not beat it, the
boxes owe more to GrabCut and to how the canvases were made than to the network. The thresholded
row shows how much of the work GrabCut does: speckled maps make ragged components.

## The same on an ImageNet network
Online (Colab), the same functions run on torchvision's ImageNet models; the gradient flows through
the ImageNet normalisation in `preprocess`.
To run the next cell, set `MODEL` at the top of the chapter (offline it is `None`, and the cell only says so).

""")

code(r"""
net = models.imagenet(MODEL)            # MODEL is set at the top: None offline, e.g. "vgg16" online
if net:
    photo = data.sample_image("chelsea", size=net.input_size)      # 1 x 3 x 224 x 336
    cls = int(net(photo).argmax())
    sal = A.saliency(net, photo)                                    # one backward pass
    smooth = A.smoothgrad(net, photo, noise=0.15, samples=25, batch_size=8)
    box = metrics.grabcut_box(photo[0], sal[0])                     # the paper's weakly supervised box
    plot.show_localisation(photo, {"saliency": sal, "SmoothGrad": smooth}, found=box[None],
                           titles={"input": [f"{net.name}: {net.classes[cls]}"]})
""", tags=["imagenet"])

md(r"""
## What to notice
- One backward pass gives a value for every pixel: the saliency map costs about as much as two or
  three forward passes, where occlusion needs one forward pass per window position.
- The map is a *local* linear explanation: the printed check shows the linear prediction drifting
  off once a step moves each pixel by a gray level or two. Raw gradients are therefore speckled; neighbouring pixels
  can have very different values.
- The probability's gradient is not a cleaner version of the score's: it fades for confident
  predictions and mixes in the other classes.
- SmoothGrad trades speckle for blur: more samples give a steadier map, more noise a smoother one,
  and at high noise the map loses the object's shape.
- GrabCut turns a sparse map into a segment by colour. A box can be right because the colours are
  easy, which is why the blind centre baseline must be in the table.

## Exercises
1. Saliency of other classes: compute `A.saliency(bundle, x, target=k)` for the second most
   probable class `k` of each canvas. Where do the maps differ from those of the predicted class?
2. Compare `A.smoothgrad(..., magnitude=True)` with the signed average on the six canvases, at noise
   0.15 and 25 samples. Which keeps the item's outline, and why (think of gradients that change sign
   from copy to copy)?
3. The seeds: rerun the evaluation with `fg_percentile` 90 or 99 and `bg_percentile` 10 or 50
   (`metrics.grabcut_boxes(..., fg_percentile=..., bg_percentile=...)`). Which matters more?
4. Put SmoothGrad maps through GrabCut on the first 100 canvases (`samples=10` keeps it to about
   1,000 gradients) and compare with the vanilla row. Does the smoother map make better boxes?
5. Does correctness matter? Split the evaluation into canvases the network classifies correctly and
   those it gets wrong (`bundle(ev.images).argmax(1) == ev.labels`) and compare the IoU of each group.

## References
- {cite}`simonyan2013deep`, section 3 "Image-Specific Class Saliency Visualisation" and 3.1
  "Weakly Supervised Object Localisation".
- {cite}`cs231n2017lecture12`, "Saliency maps" and "Saliency maps: segmentation without supervision".
- {cite}`smilkov2017smoothgrad` (SmoothGrad), {cite}`rother2004grabcut` (GrabCut),
  {cite}`zeiler2014visualizing` (occlusion, chapter 4), {cite}`adebayo2018sanity` (are saliency maps
  faithful to the model? chapter 9), {cite}`kokhlikyan2020captum` (Captum's `Saliency`, which the tests
  compare against), {cite}`xiao2017fashion` (Fashion-MNIST).
""")

cells.write(HERE / "notebooks" / "05_saliency.ipynb")
