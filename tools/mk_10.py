"""Generate notebooks/10_class_models.ipynb (then execute it with nbconvert --execute --inplace)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

HERE = Path(__file__).resolve().parent.parent
cells = Cells()
md, code = cells.md, cells.code


md(r"""
# 10. Class models and neurons: gradient ascent

*CS231n lecture 12: "Gradient ascent": class models (Simonyan et al. 2013), regularised with image priors (Yosinski et al. 2015), and feature visualisation (Olah et al. 2017)*

Parts I and II asked the network about images we gave it. Now we ask it for an image: start from
gray noise and change the *pixels* by gradient ascent, with the weights frozen, until a class
score or one channel of one layer is as large as it can be. Simonyan et al.
{cite}`simonyan2013deep` called the result a *class model*. Done naively, it is high-frequency noise
that the network loves and we cannot read; Yosinski et al. {cite}`yosinski2015understanding` add
simple image priors (decay, blur, clipping) and Olah et al. {cite}`olah2017feature` change what is
optimised (a decorrelated spectrum) and ask for robustness to small transformations. All of it is
one loop, `lib.synthesis.optimize`, with different pieces plugged in.

**Learning goals**
- Write a class model as the optimisation problem $\arg\max_I S_c(I) - \lambda \lVert I \rVert^2$ and
  compute it in a few lines for every class of a network at once.
- Explain why the objective is the unnormalised score and not the softmax probability, and measure
  how the softmax objective gets its probability partly by pushing the other classes down.
- Implement Yosinski et al.'s regularisers (L2 decay, Gaussian blur, clipping pixels of small norm
  or small contribution) and jitter as penalties and callbacks of the loop, and see what each adds.
- Visualise channels of a pretrained network at four depths, in pixel space and with a decorrelated
  Fourier parameterisation plus transformation robustness, and relate what they want to their depth.
""")

code(SETUP_CELL)

code(r"""
import torch
import lib
from lib import data, features, models, plot, widgets
from lib.synthesis import Jitter, PixelImage, optimize, class_models as cm

GPU = torch.cuda.is_available()     # the stored outputs come from the CPU setting
STEPS, LR = (200, 0.02) if GPU else (20, 0.05)                     # gapnet class models (64 px)
CAM_STEPS = 60 if GPU else 8                                        # vgg16-cam class models (112 px)
NEURON_SIZE, NEURON_STEPS, K = (128, 128, 6) if GPU else (64, 16, 3)   # vgg16-hed channels

lib.seed(0)
MODEL = None                        # online: "vgg16", "resnet50", ... runs the ImageNet section at the end
bundle = models.load("gapnet")
print(bundle)
""")

md(r"""
## A class model by gradient ascent
Let $S_c(I)$ be the score of class $c$ for image $I$: the network's output *before* the softmax.
Simonyan et al. look for the image that maximises it, kept small by an L2 penalty:

$$ I^* = \arg\max_I \; S_c(I) - \lambda \lVert I \rVert_2^2 . $$

The weights are fixed; the gradient $\partial S_c / \partial I$ is the one that gave saliency maps
in [chapter 5](05_saliency.ipynb), now used to *change* the image. In the paper the image is
mean-subtracted, so $I = 0$ is the average image and the penalty pulls every pixel towards it.
`gapnet` reads display-space pixels in $[0, 1]$ with no normalisation (its first batch
normalisation learns the scale), so here "zero" must be chosen: we use mid-gray, and the penalty is
$\lambda \lVert I - 0.5 \rVert_2^2$. Pulling the pixels towards $0$ would pull every class model
towards black, a preference for dark images that has nothing to do with the classes.
(`centre=` takes any colour, e.g. a model's mean.)

The loop of `lib.synthesis` does the rest: a `PixelImage` is the parameter (clamped to $[0, 1]$
after each step), the objective gives one number per image to maximise, and `optimize` runs Adam
with the model frozen. The ten images form one batch, image $i$ maximising class $i$, so all
classes cost one optimisation. No regulariser yet ($\lambda = 0$):
""")

code(r"""
x = PixelImage.random(10, 64, generator=lib.seed(0))   # I: gray + a little noise; image i for class i
x0 = x.image()                                          # the start, kept for later
S = cm.class_scores(range(10))                          # S_c(I): image i -> the logit of class i
lam = 0.0                                               # lambda of the L2 penalty: none yet
plain = optimize(bundle, S, x, steps=STEPS, lr=LR, penalty=cm.l2_penalty(lam, centre=0.5), progress=False)
rep = cm.class_report(bundle, plain.image)
for c, name in enumerate(bundle.classes):
    print(f"{name:12s} S_c: {plain.start[c]:5.2f} -> {plain.end[c]:4.0f}   p(c) = {rep.prob[c]:.2f}")
""")

code(r"""
plot.show_images(plain.image, [f"{n}\nS={s:.0f}" for n, s in zip(bundle.classes, plain.end.tolist())], ncols=5,
                 size=1.8, suptitle=f"{plain.model}: class models by gradient ascent on S_c, no regulariser "
                                    f"({STEPS} Adam steps)")
""")

md(r"""
`cm.class_model(bundle, classes, steps, lr, l2=..., ...)` runs exactly these lines (same start,
same seed) with the regularisers of the next sections switched on by keyword.

The scores keep growing far past what the network needs for $p_c \approx 1$, and the images are
a dense, high-frequency texture. Two things explain the texture. The head of `gapnet` averages its last
feature maps over all positions (global average pooling), so the score rewards the class's
evidence *everywhere*, not one object in one place. And nothing in the objective asks for a
natural image: every pixel may move wherever the gradient points, so the ascent finds whatever
pattern of pixels the filters respond to most, however unnatural.

## Score or softmax?
The softmax turns the scores into probabilities,

$$ p_c = \frac{e^{S_c}}{\sum_j e^{S_j}}, \qquad \log p_c = S_c - \log \sum_j e^{S_j}, $$

so $p_c$ can be raised in two ways: raise $S_c$, or lower the other scores. Its gradient shows both,

$$ \nabla_I \log p_c = \nabla_I S_c - \sum_j p_j \nabla_I S_j
= (1 - p_c) \Big( \nabla_I S_c - \sum_{j \neq c} q_j \nabla_I S_j \Big), \qquad q_j = \frac{p_j}{1 - p_c} : $$

the score's gradient minus a probability-weighted average of the other classes' gradients, with
equal weight, so part of every step goes into pushing the competitors down (the most probable ones
the most), and the factor $1 - p_c$ shrinks the whole gradient to nothing once $p_c \approx 1$. This is why Simonyan
et al. maximise $S_c$: to concentrate on the class in question. A third objective keeps only the
second term, $-\log \sum_{j \neq c} e^{S_j}$ (`objective="others"`): it never looks at class $c$.
Same start, same steps; for each objective the mean over the ten classes of the target's logit, the
mean of the other nine logits, the largest other logit (the runner-up) and $p_c$; the last two
columns say how far the mean of the others and the runner-up moved per unit the target moved
(all from the start):
""")

code(r"""
runs = {"score S_c": plain,
        "softmax log p_c": cm.class_model(bundle, steps=STEPS, lr=LR, objective="softmax"),
        "others only": cm.class_model(bundle, steps=STEPS, lr=LR, objective="others")}
start = cm.class_report(bundle, x0)
print(f"{'objective':17s} {'target':>7s} {'others':>7s} {'runner-up':>9s} {'p(c)':>6s} {'d others/d target':>18s} "
      f"{'d runner-up/d target':>21s}")
for name, r in runs.items():
    rep = cm.class_report(bundle, r.image)
    gain = (rep.target - start.target).mean()
    per_others = round(float((rep.others - start.others).mean() / gain), 1) + 0.0     # + 0.0: no "-0.0"
    per_runner = round(float((rep.runner_up - start.runner_up).mean() / gain), 1) + 0.0
    print(f"{name:17s} {rep.target.mean():7.0f} {rep.others.mean():7.0f} {rep.runner_up.mean():9.0f} "
          f"{rep.prob.mean():6.2f} {per_others:+18.1f} {per_runner:+21.1f}")
""")

code(r"""
reports = {name: cm.class_report(bundle, r.image) for name, r in runs.items()}
plot.show_image_rows({name: r.image for name, r in runs.items()},
                     titles={name: [f"{n}\nS={t:.1f} p={p:.2f}" for n, t, p in
                                    zip(bundle.classes, rep.target.tolist(), rep.prob.tolist())]
                             for name, rep in reports.items()},
                     size=1.5, suptitle=f"{bundle.name}: class models for three objectives ({STEPS} Adam steps each)")
""")

md(r"""
Read the table row by row. The score objective has no ceiling: its target logit keeps growing, and
the other logits move as a side effect, most of them down (evidence for one class is often evidence
against the others) but the runner-up, typically a related class, less so or even up. The softmax
objective reaches $p_c \approx 1$ with a far smaller target logit and then stops: a margin of a
few units over the runner-up is all it needs, and it spends part of its effort on holding the
runner-up down (compare the last column of the first two rows). The "others only" objective shows
the extreme: it drives $p_c$ up without ever asking for class $c$ (compare how far its other logits
moved per unit of target). A high probability can come from an image that is merely *unlike* the
other nine classes, which is why a class model maximises the score.

## Regularisers: priors for natural images
Yosinski et al. {cite}`yosinski2015understanding` keep the score objective and, after each update,
apply a regularisation operator $r_\theta$ that pushes the image towards what natural images look
like. Here each is one switch of `class_model` and one reusable piece of the loop (a penalty, or a
`(k, fn)` callback run without gradients after every $k$-th step), with $\mu = 0.5$ the centre
that "zero" means in display space:

| regulariser | what it does | piece |
|---|---|---|
| L2 decay | penalty $\lambda \lVert I - \mu \rVert^2$: a plain gradient step on it alone multiplies $I - \mu$ by $1 - 2\eta\lambda$, Yosinski et al.'s decay | `l2_penalty(lam)` |
| Gaussian blur | every $k$ steps $I \leftarrow G_\sigma * I$: high frequencies fade unless the score keeps asking for them | `blur_every(k, sigma)` |
| clip pixels of small norm | $I_{ij} \leftarrow \mu$ where $\lVert I_{ij} - \mu \rVert$ (over the colours) is below the image's $P$-th percentile | `clip_norm_every(k, P)` |
| clip pixels of small contribution | $I_{ij} \leftarrow \mu$ where $\big\lvert \sum_{\text{colour}} (I_{ij} - \mu)\, \partial S_c / \partial I_{ij} \big\rvert$ is below the $P$-th percentile: a first-order estimate of how much $S_c$ would drop if the pixel turned gray | `clip_contribution_every(k, P, bundle, S)` |
| jitter | maximise $S_c(\mathrm{roll}(I, \delta))$ with a fresh random shift $\delta$ every step (from DeepDream {cite}`mordvintsev2015inceptionism`) | `Jitter(px)` |

Assembled by hand for five classes of different shapes (trouser, dress, sandal, bag, ankle boot),
all five on:
""")

code(r"""
chosen = [1, 3, 5, 8, 9]
S5 = cm.class_scores(chosen)
by_hand = optimize(bundle, S5, PixelImage.random(5, 64, generator=lib.seed(0)), steps=STEPS, lr=LR,
                   penalty=cm.l2_penalty(0.1, centre=0.5),            # lambda ||I - 0.5||^2, subtracted
                   every=[cm.blur_every(4, 0.5),                      # I <- G_0.5 * I after every 4th step
                          cm.clip_norm_every(4, 30),                  # ||I_ij - 0.5|| < 30th percentile -> 0.5
                          cm.clip_contribution_every(4, 50, bundle, S5)],   # |sum (I_ij - 0.5) dS/dI_ij| < 50th pct -> 0.5
                   transforms=[Jitter(2)], progress=False)            # S_c(roll(I, delta)), |delta| <= 2 px
""")

md(r"""
`cm.class_model` assembles the same pieces from keywords, and `cm.settings(strengths, on)` switches
a subset on. Adding them one at a time, each row with one more regulariser than the row above:
""")

code(r"""
strengths = dict(l2=0.1, blur_every=4, blur_sigma=0.5, norm_pct=30, contrib_pct=50, clip_every=4, jitter=2)
order = list(cm.REGULARISERS)                           # ['l2', 'blur', 'norm', 'contrib', 'jitter']
cumulative = {tuple(order[:i]): cm.class_model(bundle, chosen, steps=STEPS, lr=LR, **cm.settings(strengths, order[:i]))
              for i in range(len(order) + 1)}
labels = ["none", "+ L2 decay", "+ blur", "+ norm clip", "+ contribution clip", "+ jitter"]
for label, r in zip(labels, cumulative.values()):
    rep = cm.class_report(bundle, r.image, chosen)
    print(f"{label:20s} mean S_c {rep.target.mean():4.0f}   mean p(c) {rep.prob.mean():.2f}   min p(c) {rep.prob.min():.2f}")
print("all five on, same image as by hand:", torch.equal(cumulative[tuple(order)].image, by_hand.image))
""")

code(r"""
names = [bundle.classes[c] for c in chosen]
plot.show_image_rows({label: r.image for label, r in zip(labels, cumulative.values())},
                     titles={label: [f"{n}\nS={s:.0f}" for n, s in zip(names, r.end.tolist())]
                             for label, r in zip(labels, cumulative.values())},
                     size=1.5, suptitle=f"{bundle.name}: class models, regularisers added one at a time")
plot.show_curves({f"{bundle.name}: mean S_c during the ascent": {label: r.history for label, r in zip(labels, cumulative.values())}},
                 xlabel="Adam step", ylabel="S_c (as the optimiser saw it)")
""")

md(r"""
Compare the curves and the printed scores: a prior costs score, because it forbids some of what
the unconstrained ascent exploited. In exchange the pictures lose their pixel-level noise: decay
fades pixels the score does not need, blur removes the finest patterns, the two clipping rules gray
out whatever is weak or useless, and jitter asks for patterns that still work when shifted by a
pixel or two, which pixel-exact noise does not. Compare the probabilities too: how much of the
network's confidence do the priors take away?

## Explore: switch the regularisers
Tick any combination. In JupyterLab or Colab the next cell shows the switches, and a combination
not seen yet is optimised when it is first ticked (a few seconds on a CPU) and then cached; a web
page has no Python to compute with, so the book shows the default setting (all on) as a static
figure instead.
""")

code(r"""
widgets.regulariser_explorer(bundle, chosen, steps=STEPS, lr=LR, strengths=strengths, on=order, results=cumulative)
""", tags=["nbval-ignore-output"])

code(r"""
r, rep = cumulative[tuple(order)], cm.class_report(bundle, cumulative[tuple(order)].image, chosen)
plot.show_images(r.image, [f"{n}\nS={t:.1f}, p={p:.2f}" for n, t, p in zip(names, rep.target.tolist(), rep.prob.tolist())],
                 ncols=5, size=2.0, suptitle=f"{bundle.name}: class models, {cm.describe(**strengths)}")
""")

md(r"""
## A deeper classifier: `vgg16-cam`
`vgg16-cam` (see [the models](../book/models.md)) is `vgg16-hed` (ImageNet VGG16's conv layers,
fine-tuned for HED edges) cut after conv4_3, with the CAM paper's head (conv, ReLU, global average
pooling, linear) trained on our canvases at 112 px, block 4 fine-tuned with it.
Its pixels go through Caffe preprocessing inside the bundle (BGR, times 255, minus a mean colour),
so its "zero" is that mean colour, and the decay and the initial noise can be centred on it
instead of on gray: `deprocess` of a zero input gives it in display space. It is a much larger
network, so on a CPU it gets few steps, and the priors do the most work (L2, blur, jitter):
""")

code(r"""
cam = models.load("vgg16-cam")
mean_colour = cam.deprocess(torch.zeros(1, 3, 1, 1)).flatten()       # display-space colour of the zero input
print("vgg16-cam's zero input is the colour", [round(v, 3) for v in mean_colour.tolist()])
r_cam = cm.class_model(cam, steps=CAM_STEPS, lr=0.03, l2=0.05, centre=mean_colour, blur_every=4, blur_sigma=0.5,
                       jitter=4)                                      # 112 px: cam.input_size
rep_cam = cm.class_report(cam, r_cam.image)
for c, name in enumerate(cam.classes):
    print(f"{name:12s} S_c: {r_cam.start[c]:5.2f} -> {r_cam.end[c]:3.0f}   p(c) = {rep_cam.prob[c]:.2f}")
""")

code(r"""
plot.show_images(r_cam.image, [f"{n}\nS={t:.1f}, p={p:.2f}" for n, t, p in
                               zip(cam.classes, rep_cam.target.tolist(), rep_cam.prob.tolist())],
                 ncols=5, size=2.0, suptitle=f"{r_cam.model}: class models at {r_cam.image.shape[-1]} px "
                                             f"({CAM_STEPS} steps; {cm.describe(l2=0.05, blur_every=4, jitter=4)})")
""")

md(r"""
With more capacity and ImageNet features underneath, look for parts you can name: legs, collars,
soles, heels, handles, and compare them with `gapnet`'s textures. They are still not pictures of
one object: the GAP head again rewards the class's evidence wherever it appears, so parts may
repeat and overlap.

## Neurons: what a channel wants
Any number the network computes can replace $S_c$. For a channel $k$ of layer $l$, the mean of its
activation over all positions,

$$ I^* = \arg\max_I \frac{1}{HW} \sum_{i,j} a^{(l)}_{k,ij}(I), $$

taken *before* the ReLU (`pre_relu=True`, as Olah et al. do): after the ReLU a channel that is
zero everywhere at the start has no gradient at all. We use `vgg16-hed` (ImageNet VGG16's conv
layers, fine-tuned for HED edges) and the last conv layer of blocks 2 to 5, and for each the $K$
channels that respond most, on average, to a photo of a cat. `activation` stops the forward pass
at the layer, so shallow layers are cheap.

Two ways to optimise, at the same number of steps:
- **pixels**, as above;
- Olah et al.'s **decorrelated Fourier parameterisation** (`FourierImage`): the optimiser changes a
  spectrum $w$; the image is $I = \sigma\big(C\, \mathcal{F}^{-1}(w / f)\big)$, with each frequency
  scaled by $1/f$ so all frequencies learn at a similar rate (in pixel space, high frequencies
  win), $C$ a colour matrix that decorrelates colours like those of natural photos, and a sigmoid
  to stay in $[0, 1]$; plus **transformation robustness**: the objective is taken on a randomly
  jittered, scaled and rotated copy, $\mathbb{E}_t\, a(t(I))$, so only patterns that survive small
  transformations pay off.
""")

code(r"""
vgg = models.load("vgg16-hed")
blocks = ["conv2_2", "conv3_3", "conv4_3", "conv5_3"]
photo = data.sample_image("chelsea", size=128)
acts = features.activations(vgg, photo, [models.VGG16_LAYERS[b] for b in blocks])
channels = {b: acts[models.VGG16_LAYERS[b]][0].mean((1, 2)).topk(K).indices.tolist() for b in blocks}
rf = {b: features.receptive_field(vgg, models.VGG16_LAYERS[b]).size[0] for b in blocks}
for b in blocks:
    print(f"{b}: {acts[models.VGG16_LAYERS[b]].shape[1]} channels, receptive field {rf[b]} px; "
          f"most active on the photo: {channels[b]}")
""")

code(r"""
robust = dict(fourier=True, jitter=2, degrees=10, scale=(0.9, 1.1), lr=0.08)   # Fourier + transformation robustness
neurons = {}
for b in blocks:
    neurons[b, "pixels"] = cm.neuron_model(vgg, b, channels[b], size=NEURON_SIZE, steps=NEURON_STEPS, lr=0.03)
    neurons[b, "Fourier"] = cm.neuron_model(vgg, b, channels[b], size=NEURON_SIZE, steps=NEURON_STEPS, **robust)
    for how in ("pixels", "Fourier"):
        r = neurons[b, how]
        print(f"{b} {how:8s} mean pre-ReLU activation: " +
              ", ".join(f"ch {c}: {s:.1f} -> {e:.0f}" for c, s, e in zip(channels[b], r.start.tolist(), r.end.tolist())))
""")

code(r"""
plot.show_image_rows({f"{b}\nRF {rf[b]} px": torch.cat([neurons[b, "pixels"].image, neurons[b, "Fourier"].image])
                      for b in blocks},
                     titles={f"{b}\nRF {rf[b]} px": [f"ch {c}, {how}" for how in ("pixels", "Fourier") for c in channels[b]]
                             for b in blocks},
                     size=1.6, suptitle=f"{vgg.name} (ImageNet VGG16 convs, HED fine-tuned): channels by gradient ascent, "
                                        f"pixels (left) and Fourier + jitter/scale/rotation (right), {NEURON_STEPS} steps each")
""")

md(r"""
## What to notice
- Gradient ascent on a class score with nothing else gives high-frequency noise with an absurdly
  high score: the network's decision is not tied to natural images, which chapter 11 exploits.
- The objective matters: the softmax probability saturates once the target is ahead, and can be
  raised by lowering the other classes; the unnormalised score can only be raised by more evidence
  for the class itself.
- Every regulariser trades score for readability, and they compound. Jitter costs nothing to
  compute and rejects every pattern that works only at one exact pixel offset.
- The deeper the channel, the larger and more complex the pattern it wants: conv2_2 channels
  (receptive field 14 px) want fine stripes, edges and colour contrasts a few pixels wide; deeper
  channels want larger motifs and textured parts, up to conv5_3, whose units see more than the
  whole 64 px image. Compare the printed activations: in pixel space the same budget usually buys
  a higher activation, spent on high-frequency detail; the Fourier parameterisation with
  transformation robustness shows the pattern itself.
- Everything here is one loop, `optimize`, with pieces swapped: objective, parameterisation,
  transforms, penalty and callbacks. Chapters 11 to 13 reuse it.

## Exercises
1. Set `lam = 0.05` in the first code cell and compare the class models and scores with those of
   `lam = 0`. Then try `centre=0.0`: what happens to the colours, and why?
2. In the widget, find the single regulariser that changes the pictures most, and the pair that
   keeps the highest score while removing the pixel noise. Then try `strengths=dict(strengths,
   jitter=4)` and `blur_sigma=1.0`.
3. Maximise one *unit* instead of a channel: write an `Objective` that returns
   `activation(vgg, "features.7", x)[:, k, h // 2, w // 2]` (the centre unit of conv2_2) and
   compare the size of the pattern with the 14 px receptive field; repeat for conv4_3 (92 px).
4. Maximise `S = cm.class_scores([8]) - cm.class_scores([9])` (bag but not ankle boot) with
   `optimize`, and compare with the bag's class model.
5. Online: class models of the original ImageNet VGG16 (see below). Which regulariser matters most
   at 224 px?

Online, with ImageNet weights, the same calls give the famous class models of the lecture.
To run the next cell, set `MODEL` at the top of the chapter (offline it is `None`, and the cell only says so).

""")

code(r"""
net = models.imagenet(MODEL)            # MODEL is set at the top: None offline, e.g. "vgg16" online
if net:
    classes = [net.classes.index(c) for c in ("flamingo", "zebra", "strawberry")]
    r = cm.class_model(net, classes, steps=200, lr=0.02, l2=0.01, blur_every=4, blur_sigma=0.5,
                       jitter=8, centre=net.deprocess(torch.zeros(1, 3, 1, 1)).flatten())
    plot.show_images(r.image, [net.classes[c] for c in classes], ncols=3, size=3, suptitle=r.model)
""", tags=["imagenet"])

md(r"""
## References
- {cite}`simonyan2013deep` (class models, the score vs the softmax), {cite}`cs231n2017lecture12`
  (section "Gradient ascent").
- {cite}`yosinski2015understanding` (L2 decay, blur, clipping by norm and contribution),
  {cite}`mordvintsev2015inceptionism` (jitter), {cite}`olah2017feature` (decorrelated Fourier
  parameterisation, transformation robustness).
- {cite}`simonyan2015very` (VGG16), {cite}`xie2015holistically` (HED), {cite}`zhou2016learning`
  (the CAM head of `vgg16-cam`), {cite}`xiao2017fashion` (Fashion-MNIST).
""")

cells.write(HERE / "notebooks" / "10_class_models.ipynb")
