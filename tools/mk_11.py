"""Generate notebooks/11_fooling_images.ipynb (then execute it with nbconvert --execute --inplace)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

HERE = Path(__file__).resolve().parent.parent
cells = Cells()
md, code = cells.md, cells.code


md(r"""
# 11. Fooling images and adversarial examples

*CS231n lecture 12: "Fooling images / adversarial examples", after Szegedy et al. 2014, Goodfellow et al. 2015 and Nguyen et al. 2015*

A class model ([chapter 10](10_class_models.ipynb)) starts from a gray image and climbs the
gradient of a class score until the network is sure. This chapter uses the same ascent, but starts it somewhere else.

Start it from a canvas the network classifies **correctly**, and ask for another class. A change
too small to see is then enough to flip the label: an **adversarial example**
{cite}`szegedy2014intriguing`. The change is not random noise; it is computed from the gradient.
The cheapest version is one step along the sign of the gradient, the fast gradient sign method
{cite}`goodfellow2015explaining`. Many small signed steps do better {cite}`kurakin2017adversarial`.

Start it from **noise** instead, and the network soon labels the result with over 99% confidence,
although it looks like nothing at all: a **fooling image** {cite}`nguyen2015deep`.

Both show that a network's decision can rest on directions in pixel space that mean nothing to us.
The pictures it explains (Parts I and II) have neighbours, a few 8-bit levels away, that it
classifies quite differently.

**Learning goals**
- Turn "the smallest change that makes the network say $t$" into an objective, and optimise it
  with the course's one loop, `lib.synthesis.optimize`.
- Derive FGSM as one signed gradient step, and explain with the linear argument why many tiny
  changes add up to a large change of the score.
- Measure attacks over many canvases: success rate, size of the change (L2, L∞) and steps
  needed; compare one step with many, and a small network with a deep pretrained one.
- Make fooling images from noise, and say what they tell us about confidence.
""")

code(SETUP_CELL)

code(r"""
import time
import torch
import lib
from lib import data, hooks, models, plot, widgets
from lib.images import resize
from lib.synthesis import (PixelImage, adversarial_objective, attack_table, correctly_classified, fgsm,
                           fooling_images, iterative_fgsm, next_class, optimize, targeted_ascent)

GPU = torch.cuda.is_available()     # the stored outputs come from the CPU setting
N_VGG = 200 if GPU else 6           # canvases attacked on vgg16-cam (112 px: ~40x gapnet's cost per image)
VGG_STEPS = 20 if GPU else 8        # its step budget for gradient ascent

lib.seed(0)
MODEL = None                        # online: "vgg16", "resnet50", ... runs the ImageNet section at the end
bundle = models.load("gapnet")
canvases = data.load_canvases("test")
C = data.CLASSES
print(bundle)
""")

md(r"""
## What to attack, and towards which class
An attack on a canvas the network already gets wrong proves nothing, so we take the first 200
held-out test canvases that `gapnet` classifies **correctly**, chosen by code. The target class of
each canvas is the next class in the list, $t = (y + 1) \bmod 10$: never the true class;
sometimes a similar item (pullover → dress), more often a very different one (coat → sandal,
shirt → sneaker).
""")

code(r"""
idx = correctly_classified(bundle, canvases.images, canvases.labels, n=200)
x, y = canvases.images[idx], canvases.labels[idx]
t = next_class(y)                                             # the target: (label + 1) mod 10
print(f"{len(idx)} canvases: the correctly classified ones among test canvases 0..{int(idx[-1])}")
print("first targets:", ", ".join(f"{C[a]} -> {C[b]}" for a, b in zip(y[:4].tolist(), t[:4].tolist())))
""")

md(r"""
## The smallest change that flips the label
Szegedy et al. asked for the smallest change $r$ that makes the network say class $t$ for image
$x$. They minimised, with box-constrained L-BFGS,

$$
\min_r \; c\,\lVert r\rVert_2 + \mathrm{loss}(x + r,\, t) \quad \text{subject to } x + r \in [0, 1]^m ,
$$

where the loss is the cross-entropy of class $t$ and $c$ trades size for success. That is
gradient ascent on an image with a penalty, exactly what `lib.synthesis.optimize` does. With
$J_t(x') = \log p_t(x')$, minus the cross-entropy, and the change $x' - x$:

$$
\max_{x' \in [0, 1]^m} \; \log p_t(x') - \lambda \lVert x' - x \rVert_2^2 .
$$

`PixelImage` starts at the canvas and clamps to $[0, 1]$ after each step;
`adversarial_objective(t, "log_prob")` is $J_t$ with one target per image. For the first canvas:
""")

code(r"""
x0, t0 = x[:1], t[:1]
objective = adversarial_objective(t0, "log_prob")                       # J_t(x') = log p_t(x')
r = optimize(bundle, objective, PixelImage(x0), steps=8, lr=0.003, optimizer="adam",
             penalty=lambda img: 1.0 * (img - x0).pow(2).flatten(1).sum(1),   # lambda ||x' - x||^2, lambda = 1
             progress=False)
print(f"target '{C[int(t0)]}': p_t from {r.start.exp().item():.4f} to {r.end.exp().item():.4f} in 8 steps")
print("log p_t at each step:", " ".join(f"{v:.2f}" for v in r.history))
print(f"predicted now: {C[int(bundle.predict(r.image).argmax())]};  "
      f"change: L2 {(r.image - x0).norm():.3f}, Linf {255 * (r.image - x0).abs().max():.1f}/255")
""")

md(r"""
The loop runs a fixed number of steps, but we want the change to stop growing once the label has
flipped. `targeted_ascent` runs the same loop on a whole batch, with an objective that also
watches the predictions. It keeps each image as it was at the **first step where the network says
$t$**, counts the steps, and stops computing that image from then on. All 200 canvases go in
one batch:
""")

code(r"""
start = time.perf_counter()
ascent = targeted_ascent(bundle, x, t, steps=20, lr=0.003, l2=1.0)
s = ascent.summary()
print(f"{s['success']:.3f} of {len(x)} canvases flipped to their target within 20 steps "
      f"({time.perf_counter() - start:.1f} s)")
print(f"over the flipped ones: mean L2 {s['l2']:.3f}, mean Linf {255 * s['linf']:.1f}/255, mean steps {s['steps']:.1f}")
""")

md(r"""
Below, eight of them. Each column: the canvas with its true class and probability, the change
magnified (gray means unchanged; the factor is in the row label), and the result with the
network's new answer.
""")

code(r"""
def answer(a):      # the network's answer on each adversarial image, "(missed)" where it is not the target
    return [f"{C[c]} {p:.2f}" + ("" if ok else " (missed)")
            for c, p, ok in zip(a.pred.tolist(), a.prob.tolist(), a.success.tolist())]

n = 8
p_orig = bundle.predict(x[:n])
plot.show_adversarial(x[:n], {"gradient ascent": ascent.image[:n]}, titles={
    "original": [f"{C[c]} {p_orig[i, c]:.2f}" for i, c in enumerate(y[:n].tolist())],
    "gradient ascent change": [f"Linf {255 * v:.1f}/255" for v in ascent.linf[:n].tolist()],
    "gradient ascent": answer(ascent[:n])},
    suptitle=f"{ascent.model}: targeted gradient ascent, stopped at the first flip")
""")

md(r"""
## FGSM: one signed step
Goodfellow et al. explained adversarial examples by *linearity*. For a linear score
$w^\top x$, a change $\eta$ with $\lVert\eta\rVert_\infty \le \epsilon$ changes the score by
$w^\top \eta$, which is largest for $\eta = \epsilon\,\mathrm{sign}(w)$. The change of the score is then
$\epsilon \lVert w \rVert_1$, about $\epsilon\, m\, \overline{|w|}$ for $m$ inputs. Each pixel moves
by at most $\epsilon$, but the effect grows with the number of pixels: $3 \times 64 \times 64 = 12288$
here. A network is piecewise linear enough (ReLUs) that the gradient plays the role of $w$. The
**fast gradient sign method** takes one step:

$$
x' = \mathrm{clip}_{[0,1]}\big(x + \epsilon\, \mathrm{sign}(\nabla_x J(x))\big).
$$

Goodfellow et al. stepped *up* the training loss $J(\theta, x, y)$, the cross-entropy of the true
class $y$ (untargeted: any other answer will do). To reach a chosen class we step up
$J_t = \log p_t$ instead, that is, down the cross-entropy of $t$. The gradient needs one backward
pass, with the model frozen:
""")

code(r"""
eps = 4 / 255                                                 # four 8-bit levels
with hooks.frozen(bundle.model):                              # eval mode, no gradients for the weights
    xr = x[:8].clone().requires_grad_(True)
    J = bundle(xr).log_softmax(1).gather(1, t[:8, None])      # J_t(x) = log p_t(x)
    grad, = torch.autograd.grad(J.sum(), xr)                  # grad_x J_t
x_fgsm = (x[:8] + eps * grad.sign()).clamp(0, 1)              # x' = clip(x + eps sign(grad_x J_t), 0, 1)
print("the same as lib.synthesis.fgsm:", torch.equal(x_fgsm, fgsm(bundle, x[:8], t[:8], eps=eps).image))
one_step = fgsm(bundle, x, t, eps=eps)                        # all 200
print(f"FGSM, eps {255 * eps:.0f}/255: {one_step.success.float().mean():.3f} of {len(x)} flipped to their target; "
      f"every changed pixel value moved by eps: Linf {255 * one_step.linf.max():.1f}/255")
""")

md(r"""
## Iterative FGSM: many small signed steps
One step follows the gradient at $x$ only. Kurakin et al. took many small steps, each projected
back into the $\epsilon$-ball around $x$ (and into $[0, 1]$):

$$
x_0 = x, \qquad x_{n+1} = \mathrm{Clip}_{x,\epsilon}\big(x_n + \alpha\, \mathrm{sign}(\nabla_x J_t(x_n))\big),
$$

with $\alpha = 1/255$ and $\min(\epsilon + 4,\, 1.25\,\epsilon)$ steps ($\epsilon$ in 8-bit
levels): 5 steps for $\epsilon = 4/255$. In `lib` it runs on the same loop as everything else.
`EpsBall` is a `PixelImage` whose projection clips to the ball, and the signed step is plain SGD
with learning rate $\alpha$ on the gradient's sign. Each canvas again stops at its first flip:
""")

code(r"""
iterated = iterative_fgsm(bundle, x, t, eps=eps, steps=5, alpha=1 / 255)
print(f"iterative FGSM, eps {255 * eps:.0f}/255, 5 steps: {iterated.success.float().mean():.3f} of {len(x)} flipped")
""")

md(r"""
The three attacks on the same six canvases, with one magnification for all changes. FGSM moves
(almost) every pixel value by exactly $\epsilon$, a uniform speckle. The iterative attacks stop
as soon as they succeed, so their changes are smaller.
""")

code(r"""
k = 6
runs = {"FGSM": one_step, "iterative FGSM": iterated, "gradient ascent": ascent}
titles = {label: answer(a[:k]) for label, a in runs.items()}
titles["original"] = [C[c] for c in y[:k].tolist()]
plot.show_adversarial(x[:k], {label: a.image[:k] for label, a in runs.items()}, titles=titles, size=1.3,
                      suptitle=f"{bundle.name}: three attacks towards the next class "
                               f"(eps {255 * eps:.0f}/255 for FGSM)")
""")

md(r"""
## How often, how small, how many steps: two networks
The same three attacks on `vgg16-cam`: ImageNet VGG16 conv layers with a CAM head, fine-tuned on
the canvases (see [the models](../book/models.md)), fed the canvases upscaled to 112 pixels. It is
about 40 times more expensive per image than `gapnet`, so on a CPU it gets only the first
`N_VGG` canvases it classifies correctly (all 200 with a GPU). L2 grows with the number of pixel
values, so the table also gives the RMS change per pixel value, $\lVert r\rVert_2 / \sqrt{m}$, which
compares across sizes. The size columns and steps are means over the successful attacks (a dash:
none succeeded).
""")

code(r"""
vgg = models.load("vgg16-cam")
iv = correctly_classified(vgg, canvases.images, canvases.labels, n=N_VGG, size=112, batch_size=N_VGG + 2)
xv, yv = resize(canvases.images[iv], 112), canvases.labels[iv]
tv = next_class(yv)
vgg_runs = {"FGSM": fgsm(vgg, xv, tv, eps=eps),
            "iterative FGSM": iterative_fgsm(vgg, xv, tv, eps=eps, steps=5, alpha=1 / 255),
            "gradient ascent": targeted_ascent(vgg, xv, tv, steps=VGG_STEPS, lr=0.003, l2=1.0)}
rows = list(runs.items()) + list(vgg_runs.items())               # (label, Attack) pairs
print(attack_table(rows, note=f"eps {255 * eps:.0f}/255 for FGSM and iterative FGSM (5 steps of 1/255); "
                              f"gradient ascent: Adam, lr 0.003, lambda 1, at most 20 (gapnet) / "
                              f"{VGG_STEPS} (vgg16-cam) steps.\n"
                              f"vgg16-cam: the first {len(iv)} correctly classified test canvases "
                              f"({'GPU setting' if GPU else 'CPU setting; 200 with a GPU'}), at 112 px."))
""")

md(r"""
Read the table as a comparison, not as exact values: with a handful of `vgg16-cam` canvases one
canvas moves its success rate by a large step. Typically one signed step at $\epsilon = 4/255$
flips few canvases to a *chosen* class, sometimes none, while five small steps inside the same
ball flip most of them with a smaller change. The unconstrained ascent, stopped at the first flip, needs a
few steps and a change of a few 8-bit levels at most. Compare the RMS columns of the two
networks: the deep pretrained one is fooled by changes of about the same size.

The changes on `vgg16-cam`'s canvases, and its answers. Look at the structure of the change
beside `gapnet`'s above: here it tends to follow the edges and textures of the canvas.
""")

code(r"""
a = vgg_runs["gradient ascent"][:4]
pv = vgg.predict(xv[:4])
plot.show_adversarial(xv[:4], {"gradient ascent": a.image}, size=1.6, titles={
    "original": [f"{C[c]} {pv[i, c]:.2f}" for i, c in enumerate(yv[:4].tolist())],
    "gradient ascent": answer(a)}, suptitle=f"{a.model} (112 px): targeted gradient ascent")
""")

md(r"""
## Fooling images: from noise to 99% confidence
Nguyen et al. turned the question around: instead of a natural image the network gets wrong, an
unnatural image it is sure about. They found such images with evolutionary algorithms (some
started from uniform random pixels) and with gradient ascent. Here we use the latter: start from uniform
noise and maximise $\log p_c(x)$, with no penalty at all, until $p_c \ge 0.99$; one image per
class:

$$
x^{*}_c = \text{the first } x_n \text{ with } p_c(x_n) \ge 0.99, \qquad x_{n+1} = \mathrm{Adam\ step\ on\ } \log p_c(x_n),\; x_0 \sim U[0, 1]^m .
$$
""")

code(r"""
fool = fooling_images(bundle, range(10), steps=100, lr=0.05, min_prob=0.99, generator=lib.seed(0))
print("steps to p >= 0.99 per class:", fool.steps.tolist())
print(f"all above 0.99: {bool((fool.prob >= 0.99).all() and fool.success.all())};  "
      f"largest change from the noise: {fool.linf.max():.2f}")
plot.show_image_rows({"start: noise": fool.original, "fooling image": fool.image}, size=1.7, titles={
    "start: noise": [f"{C[int(c)]}?" for c in fool.target],
    "fooling image": [f"{C[c]} {p:.3f}" for c, p in zip(fool.pred.tolist(), fool.prob.tolist())]},
    suptitle=f"{fool.model}: fooling images from noise, each labelled with p >= 0.99")
""")

md(r"""
They look nothing like a T-shirt, a sandal or a bag: they still look like the noise they started
from. A few steps of ascent were enough. A probability of 0.99 says that the image is far on the
class's side of the network's decision boundaries, not that it resembles anything the network was
trained on. A softmax classifier has no "none of these" answer, and nothing in its training asked
it to be unsure about images unlike the canvases.

## Explore: one canvas, any target
Pick a target class, $\epsilon$ and FGSM or iterative FGSM. For iterative FGSM the step slider
shows the image after each step ($\alpha = 1.25\,\epsilon / 4$, not stopped at the first flip),
so you can watch $p_t$ rise. In JupyterLab or Colab the next cell is live; the book shows the
default setting as a static figure below it.
""")

code(r"""
widgets.attack_explorer(bundle, x[:1], target=int(t[0]), epsilons=(2 / 255, 4 / 255, 8 / 255))
""", tags=["nbval-ignore-output"])

code(r"""
w = iterative_fgsm(bundle, x[:1], t[:1], eps=eps, steps=4, stop_at_success=False)
print(f"p({C[int(t[0])]}): {bundle.predict(x[:1])[0, int(t[0])]:.3f} -> {w.probs[0, int(t[0])]:.3f};  "
      f"predicted: {C[int(w.pred[0])]} ({w.prob[0]:.2f})")
plot.show_adversarial(x[:1], {"iterative FGSM, 4 steps": w.image}, size=1.8, titles={
    "original": [f"{C[int(y[0])]} {p_orig[0, int(y[0])]:.2f}"], "iterative FGSM, 4 steps": answer(w)},
    suptitle=f"{w.model}: towards '{C[int(t[0])]}', eps {255 * eps:.0f}/255")
""")

md(r"""
Online, the same functions attack an ImageNet network (the lecture's pictures).
To run the next cell, set `MODEL` at the top of the chapter (offline it is `None`, and the cell only says so).

""")

code(r"""
net = models.imagenet(MODEL)            # MODEL is set at the top: None offline, e.g. "vgg16" online
if net:
    photo = data.sample_image("chelsea", size=net.input_size)
    banana = net.classes.index("banana")
    a = targeted_ascent(net, photo, banana, steps=30, lr=0.002)
    plot.show_adversarial(photo, {"gradient ascent": a.image},
                          titles={"gradient ascent": [f"{net.classes[int(a.pred[0])]} {float(a.prob[0]):.2f}"]},
                          suptitle=f"{a.model}: a cat, towards 'banana'")
    fool = fooling_images(net, [banana], size=net.input_size, steps=200)   # a 'banana' that is noise
""", tags=["imagenet"])

md(r"""
## What to notice
- **Small change, different answer.** A change of a few 8-bit levels, invisible in the image and
  visible only magnified, moves a correctly classified canvas into any class we choose.
- **The change is not noise.** FGSM's change is the sign of the gradient; random signs of the same
  size change far fewer labels (exercise 1 measures it). The direction matters, not the size.
- **Linearity is enough.** One signed step already moves each pixel by only $\epsilon$, but the
  score by about $\epsilon \lVert \nabla_x J\rVert_1$: tiny steps in thousands of dimensions add up.
- **Many steps beat one.** Inside the same $\epsilon$-ball, iterative FGSM succeeds more often than
  one step, and stops with a smaller change. The gradient at $x$ is only a local guide.
- **Confidence is not recognition.** Noise gets $p \ge 0.99$ within a few steps (printed above). A
  probability says on which side of the decision boundaries an image lies, not how much it
  resembles the training data.
- **Depth and pretraining do not protect.** `vgg16-cam`, with ImageNet features, is fooled too, by
  changes of a few 8-bit levels: this comes with how networks are trained, not with a small model.
- **Why it matters for this course.** Saliency maps ([chapter 5](05_saliency.ipynb)) show the same
  gradient that FGSM follows. A map that looks noisy is not necessarily wrong: the network really
  is that sensitive.

## Exercises
1. **Noise versus gradient.** Add random signs of the same size to the 200 canvases,
   `(x + eps * torch.randn_like(x).sign()).clamp(0, 1)`, and count how many predictions change.
   Compare with untargeted FGSM, `fgsm(bundle, x, eps=eps)` (no target: away from the predicted
   class), at the same $\epsilon$.
2. **The hardest target.** Use `least_likely(bundle, x)` (from `lib.synthesis`) as the target
   instead of the next class. How do the success rate, the L2 of the change and the steps
   change, for iterative FGSM and for gradient ascent?
3. **Transfer.** Szegedy et al. found that adversarial examples often fool *other* networks too.
   Feed `gapnet`'s adversarial canvases to `vgg16-cam`, `vgg.predict(resize(ascent.image, 112))`:
   how many does it classify as the target, and how many still as the true class? And FGSM's?
4. **Robustness of the attack.** Blur the adversarial images a little,
   `torchvision.transforms.functional.gaussian_blur(ascent.image, 3, 0.7)`, and predict again.
   Does the true class come back? Does the blur change the prediction of the *original* canvases?
5. **Fooling images that look like something.** Add a total-variation penalty and jitter, as for
   class models in [chapter 10](10_class_models.ipynb): `optimize(bundle, adversarial_objective(torch.arange(10)),
   PixelImage(torch.rand(10, 3, 64, 64)), steps=100, lr=0.05, transforms=[Jitter(2)],
   penalty=lambda im: 5 * total_variation(im))` (all from `lib.synthesis`). Do they still reach
   99%? Do they look more like the classes?

## References
- {cite}`szegedy2014intriguing`: adversarial examples, the smallest change found with box-constrained
  L-BFGS, and their transfer between networks.
- {cite}`goodfellow2015explaining`: the linear explanation and the fast gradient sign method.
- {cite}`kurakin2017adversarial`: iterative FGSM and the least-likely class.
- {cite}`nguyen2015deep`: fooling images, by evolution and by gradient ascent.
- {cite}`simonyan2013deep`: class models by gradient ascent ([chapter 10](10_class_models.ipynb));
  {cite}`simonyan2015very` (VGG16), {cite}`xiao2017fashion` (Fashion-MNIST), {cite}`cs231n2017lecture12`.
""")

cells.write(HERE / "notebooks" / "11_fooling_images.ipynb")
