"""Generate notebooks/13_deepdream.ipynb (then execute it with nbconvert --execute --inplace)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

HERE = Path(__file__).resolve().parent.parent
cells = Cells()
md, code = cells.md, cells.code


md(r"""
# 13. DeepDream

*CS231n lecture 12: "DeepDream: amplify existing features" (Mordvintsev, Olah & Tyka 2015)*

Gradient ascent on a class score from a gray image gives the network's picture of the class
([chapter 10](10_class_models.ipynb)). DeepDream {cite}`mordvintsev2015inceptionism` starts from a
*photo* instead and asks a layer a different question: whatever you already see in this image,
see more of it. The objective is the energy of the layer's activations. Its gradient makes every
feature that responds a little respond more. Step after step, the faint dog faces, eyes and
swirls the layer half-detects in the clouds are painted into the picture, and they come from the
network, not from the photo.

Three tricks turn this idea into the familiar pictures. Each step is normalised, the image is
randomly shifted before each step, and the dream runs over an image pyramid, coarse to fine. This
chapter builds all three from the one optimisation loop of Part III (`lib.synthesis.core`), and
then changes the objective: one channel, a class score, or the features of another photo
(a *guided* dream).

**Learning goals**
- Write DeepDream's objective and its normalised gradient-ascent step, and say why the step is
  divided by the gradient's mean absolute value.
- Explain the octave pyramid: what is carried from one scale to the next (the *detail*), and why
  the result differs from a dream at a single scale.
- Predict how the layer changes the patterns (edges and textures early, parts of objects late),
  and recognise an overcooked dream.
- Swap the objective: one channel, a class score, or similarity to a guide image.
""")

code(SETUP_CELL)

code(r"""
import torch
import lib
from lib import data, models, plot, widgets
from lib.synthesis import core, deepdream, guided_objective, octave_sizes

GPU = torch.cuda.is_available()    # the stored outputs come from the CPU setting (False)
SIZE = 256 if GPU else 128         # side of the (square) photo in pixels
OCTAVES, STEPS, STEP_SIZE = 4, 10, 0.002   # deepdream's defaults

lib.seed(0)
MODEL = None                        # online: "vgg16", "resnet50", ... runs the ImageNet section at the end
bundle = models.load("vgg16-hed")
NET_LABEL = "vgg16-hed (ImageNet VGG16 convs, HED fine-tuned)"
photo = data.sample_image("chelsea", size=SIZE)          # 1 x 3 x SIZE x 1.5 SIZE
w = photo.shape[-1]
photo = photo[..., (w - SIZE) // 2:(w + SIZE) // 2]      # the square around the cat's face
print(bundle)
print("photo:", tuple(photo.shape))
""")

md(r"""
The network is `vgg16-hed`: the 13 conv layers of VGG16 trained on ImageNet
{cite}`simonyan2015very`, then fine-tuned (gently) for edge detection {cite}`xie2015holistically`.
It has no classifier, which DeepDream does not need: it only reads a layer. See
[the models](../book/models.md) for what the fine-tuning changed. The original DeepDream used
GoogLeNet, whose patterns (dog faces, pagodas) differ from VGG16's, but the method is the same.

## The idea: gradient ascent on a layer's energy
Let $A(I)$ be the activations of one layer for image $I$, $M$ numbers in all. DeepDream
maximises their mean square:

$$
\mathcal{L}(I) = \frac{1}{M} \sum_{c, y, x} A_{c,y,x}(I)^2 ,
\qquad
\frac{\partial \mathcal{L}}{\partial A} = \frac{2}{M} A .
$$

The gradient with respect to the activations is the activations themselves: back-propagating
it asks each unit to grow *in proportion to how much it already fires*. Nothing is pulled
towards a class; what is there gets louder. The update is a plain gradient step, with two
changes:

$$
g = \nabla_I \, \mathcal{L}\big(\mathrm{roll}(I, \delta)\big), \qquad
I \leftarrow \mathrm{clip}_{[0, 1]}\Big(I + \eta \, \frac{g}{\operatorname{mean}|g|}\Big).
$$

**Normalised steps.** The size of $g$ differs by orders of magnitude between layers and images.
Divided by its mean absolute value, it makes $\eta$ a step in pixel units: each step changes a
pixel by $\eta$ on average (0.002 here, about half a grey level: 1/255 = 0.0039). **Jitter.** $\mathrm{roll}$
shifts the image by a random offset $\delta$ (wrapping round) before each step. This blurs the
grid of the strided layers out of the result, so the patterns do not lock onto it.

In code, with the loop of Part III, `core.optimize` with `optimizer="normalized"` is the update
above. This is a dream at one scale:
""")

code(r"""
objective = core.layer_energy("conv4_3")               # L(I) = mean(A^2), A = conv4_3 (features.22)
pixels = core.PixelImage(photo)                        # the pixels are the parameters, clipped to [0, 1]
one = core.optimize(bundle, objective, pixels, steps=STEPS, lr=STEP_SIZE,
                    optimizer="normalized",            # I += eta * g / mean|g|
                    transforms=[core.Jitter(SIZE // 16)], progress=False)   # roll by up to SIZE/16 px
print(f"{one.objective}: {one.start.item():.3g} -> {one.end.item():.3g} (x{one.gain.item():.1f})")
""")

md(r"""
## The octave pyramid: dream coarse to fine
A layer's units see a patch of fixed size, a receptive field in pixels. At one scale, the
patterns the dream paints all have that size. The original notebook dreams over a **pyramid of
octaves**: the photo shrunk several times by a factor of about 1.4, smallest first.

At octave $k$ let $B_k$ be the photo resized to that octave's size (the *base*). The dream starts
from the base plus the detail carried from the octave below, and the new detail is what the
dream changed:

$$
I_k^{(0)} = B_k + \mathrm{up}(D_{k-1}), \qquad
I_k = \mathrm{dream}\big(I_k^{(0)}\big), \qquad
D_k = I_k - B_k, \qquad D_0 = 0 .
$$

Only the detail moves up, not the small dreamed image. The photo under the dream is always the
full-resolution one, so the result stays sharp, while the patterns from the small octaves come
out large. `lib.synthesis.deepdream` is this loop; each octave is one `core.optimize` call like
the one above:

```python
for k, size in enumerate(sizes):                           # smallest first
    base = resize(photo, size)                             # B_k
    init = base if detail is None else base + resize(detail, size)   # B_k + up(D_{k-1})
    r = optimize(bundle, objective, PixelImage(init), steps, lr=step_size,
                 optimizer="normalized", transforms=[Jitter(jitter)], seed=seed + k)
    detail = r.image - base                                # D_k
```

With `octaves=1` it is exactly the single `optimize` call above (a test checks it).
""")

code(r"""
print("octave sizes:", octave_sizes(tuple(photo.shape[-2:]), OCTAVES, octave_scale=1.4))
dream4 = deepdream(bundle, photo, "conv4_3", octaves=OCTAVES, steps=STEPS, step_size=STEP_SIZE)
print(f"{dream4.objective}: {dream4.start.item():.3g} -> {dream4.end.item():.3g} (x{dream4.gain.item():.1f}) "
      f"in {dream4.seconds:.1f} s")
plot.show_dreams(photo, [one, dream4], labels=["1 octave", f"{OCTAVES} octaves"],
                 suptitle=f"{NET_LABEL}: DeepDream of conv4_3, {STEPS} steps of {STEP_SIZE} per octave")
plot.show_octaves(dream4, suptitle=f"{NET_LABEL}: the {OCTAVES} octaves of the conv4_3 dream, smallest first")
""")

md(r"""
The numbers under each title are the objective on the photo and on the dream. With its 10 steps
at full size, the single-scale dream adds only small, fine patterns. The pyramid ran 10 steps at
each of its 4 octaves, and the small octaves cost little. The patterns painted there were enlarged
with the detail and refined at each larger octave: spots and colour fringes that follow the
shapes of the photo (the eyes, the nose, the outline of the head). The second figure shows the
detail growing, from the smallest octave to the full-size image.

## Which layer? From strokes to parts
The layer decides what is amplified. Early layers have small receptive fields and detect edges,
colours and simple textures; late layers respond to larger, more object-like arrangements.
The same photo, the same settings, three depths:
""")

code(r"""
dreams = {"conv3_3": deepdream(bundle, photo, "conv3_3"), "conv4_3": dream4,
          "conv5_3": deepdream(bundle, photo, "conv5_3")}
for layer, d in dreams.items():
    print(f"{layer}: mean(A^2) {d.start.item():.3g} -> {d.end.item():.3g} (x{d.gain.item():.1f}) in {d.seconds:.1f} s")
plot.show_dreams(photo, list(dreams.values()), labels=list(dreams),
                 suptitle=f"{NET_LABEL}: DeepDream at three depths ({OCTAVES} octaves x {STEPS} steps of {STEP_SIZE})")
""")

md(r"""
The factors are not comparable between layers: each layer's energy has its own scale. Compare
the pictures. conv3_3, early and with small receptive fields, works on edges and colours: it
paints saturated fringes along the contours (a network tuned for edges shows it here). conv4_3
adds round blobs and spots. conv5_3's units see most of a 128-pixel image: its patterns are
spread thin over large regions, and at this size it changes the photo the least, although its
energy grew the most. At a larger image size (`GPU = True` gives 256 pixels) each pattern covers
a smaller part of the picture, and there is more room for the deep layers' motifs.

**Too much of it.** With a larger step, or more steps or octaves, the patterns take over and
the photo disappears: the dream is *overcooked*. The mean absolute change from the photo,
$\operatorname{mean}|I - I_\text{photo}|$, measures how far the dream went:

""")

code(r"""
hot = deepdream(bundle, photo, "conv4_3", step_size=5 * STEP_SIZE)
for d in (dream4, hot):
    print(f"step size {d.settings['step_size']:.3f}: mean(A^2) {d.start.item():.3g} -> {d.end.item():.3g} "
          f"(x{d.gain.item():.1f}), mean |dream - photo| = {(d.image - photo).abs().mean():.3f}")
plot.show_dreams(photo, [dream4, hot], labels=[f"step size {STEP_SIZE}", f"step size {5 * STEP_SIZE}"],
                 suptitle=f"{NET_LABEL}: conv4_3 dreamed with a 5x larger step")
""")

md(r"""
Five times the step does not make a dream five times as strong: the loop feeds itself. The
normalised step divides by the *mean* gradient, so where the gradient is concentrated (the eyes,
the edges that the layer likes most) pixels move much more than $\eta$, reach 0 or 1 and turn
into saturated colour. The objective keeps rising all the same: it says nothing about whether
the picture is still good. The step size is a matter of taste, and the explorer below lets you
find your point.

## One channel instead of the whole layer
The objective can be anything the loop can differentiate. Replace the layer's energy by the
mean of one channel, $\mathcal{L}(I) = \frac{1}{HW}\sum_{y,x} A_{c,y,x}(I)$, and the dream
paints only that channel's pattern. Here the channel of conv4_3 that responds most to the photo
is chosen by code:
""")

code(r"""
with torch.no_grad():
    acts = core.activation(bundle, "conv4_3", photo)                  # 1 x 512 x h x w
c = int(acts.mean((0, 2, 3)).argmax())                                # the channel most active on the photo
chan = deepdream(bundle, photo, core.channel("conv4_3", c))
print(f"{chan.objective}: {chan.start.item():.3g} -> {chan.end.item():.3g} (x{chan.gain.item():.1f}) in {chan.seconds:.1f} s")
plot.show_dreams(photo, [dream4, chan], labels=["conv4_3, all channels", f"conv4_3, channel {c}"],
                 suptitle=f"{NET_LABEL}: the whole layer's energy against one channel")
""")

md(r"""
The whole layer amplifies a mixture of many patterns; one channel repeats a single motif wherever
it can. Compare it with the same channel's maximally activating patches
([chapter 3](03_max_activating_patches.ipynb)): the dream shows what the channel *wants*, the
patches what it *found*.

## A class score: dreaming a canvas into a class
With a classifier the objective can be a class score $S_c(I)$, as in
[chapter 10](10_class_models.ipynb), but starting from an image and going through the pyramid.
`gapnet` classifies 64-pixel canvases (see [the models](../book/models.md)); below, four test
canvases are dreamed towards the class *Bag*, and the predicted class and its probability are
printed before and after:
""")

code(r"""
gapnet = models.load("gapnet")
canvases = data.load_canvases("test")[:4]
bag = data.CLASSES.index("Bag")
bagged = deepdream(gapnet, canvases.images, core.class_score(bag), step_size=0.01)
for name, x in {"before": canvases.images, "after": bagged.image}.items():
    p = gapnet.predict(x)
    print(f"{name:6s} predicted:", ", ".join(f"{data.CLASSES[int(k)]} {q:.2f}" for q, k in zip(*p.max(1))),
          f"| p(Bag): {', '.join(f'{q:.2f}' for q in p[:, bag].tolist())}")
plot.show_image_rows({"canvas": canvases.images, "dreamed": bagged.image}, size=1.8,
                     titles={"dreamed": [f"S_Bag {s:.1f} -> {e:.1f}" for s, e in zip(bagged.start, bagged.end)]},
                     suptitle=f"{bagged.model}: canvases dreamed towards 'Bag' ({OCTAVES} octaves x {STEPS} steps)")
""")

md(r"""
The step size is larger here (0.01), so that the change is easy to see at 64 pixels. Compare
the printed predictions before and after: the score of the class rises by a large margin, and the
dream paints the network's idea of the class (shapes, outlines) over the item and the background
alike. With a much smaller step the decision can flip before a person sees much change at all:
that is the fooling result of [chapter 11](11_fooling_images.ipynb), reached from the dream's side.

## Beyond the lecture: a guided dream
The original notebook also showed a *guided* dream: instead of amplifying whatever the layer
sees, pull the features towards those of a **guide** image. With $A_p$ the feature vector (all
channels) of the dreamed image at position $p$ and $G_q$ that of the guide at position $q$, each
position is matched with the guide position it resembles most:

$$
\mathcal{L}(I) = \frac{1}{P} \sum_{p} \max_{q} \; \langle \hat A_p, \hat G_q \rangle ,
\qquad \hat v = v / \lVert v \rVert .
$$

The original used raw dot products $\langle A_p, G_q \rangle$. Those grow with the size of
$A_p$, so an image with strong activations can beat the guide itself, and the dream then leans
towards an ordinary dream. The hats (unit vectors) make $\mathcal{L}$ a cosine similarity: it is
at most 1, and exactly 1 for the guide itself. (`guided_objective(..., normalize=False)` gives the
raw version.) Below, each of the four photos in turn is the guide (a row), and the objective is
evaluated on all four photos (the columns):
""")

code(r"""
names = ["chelsea", "coffee", "astronaut", "grace_hopper"]
four = torch.cat([data.sample_image(n, size=(SIZE, SIZE)) for n in names])   # squashed to SIZE x SIZE
for normalize in (True, False):
    print("cosine" if normalize else "raw dot product", "(a row per guide, a column per image)")
    print(" " * 13, " ".join(f"{n:>12s}" for n in names), "  guide scores highest")
    for i, n in enumerate(names):
        with torch.no_grad():
            v = guided_objective(bundle, "conv4_3", four[i:i + 1], normalize=normalize)(bundle, four)
        print(f"{n:13s}", " ".join(f"{x:12.3g}" for x in v.tolist()), f"  {int(v.argmax()) == i}")
guide = four[1:2]                                                   # the coffee photo
cosine = guided_objective(bundle, "conv4_3", guide)
""")

md(r"""
With cosines, every guide scores 1 on itself, the largest value in its row. With raw dot
products, look at the last column: where it says False, another photo, with stronger
activations, beat the guide on its own features. The dream below uses the cosine version, with
the coffee photo as guide.
""")

code(r"""
guided = deepdream(bundle, photo, cosine, step_size=3 * STEP_SIZE)
print(f"{guided.objective}: {guided.start.item():.3f} -> {guided.end.item():.3f} in {guided.seconds:.1f} s")
plot.show_images(torch.cat([photo, guide, dream4.image, guided.image]), ncols=4, size=2.4,
                 titles=["photo", "the guide", f"plain: mean(A^2) {dream4.start.item():.3g} -> {dream4.end.item():.3g}",
                         f"guided: cosine {guided.start.item():.3f} -> {guided.end.item():.3f}"],
                 suptitle=f"{NET_LABEL}: a plain and a guided dream of conv4_3")
""")

md(r"""
The plain dream paints the layer's favourite patterns; the guided one borrows the guide's. Look
for the guide's shapes (the round rims of the cups) and colours where the cat's features
resembled them most. The guided objective is bounded by 1, so it cannot run away the way the
energy does, and the step here is three times the default.

## Explore: layer, octaves, steps, step size
Each setting costs a few seconds on a CPU, so the explorer dreams when a slider is released and
keeps what it has computed; going back to a setting only redraws. Push the step size or the
number of steps up to see the photo overcooked, and set octaves to 1 to lose the large patterns.
In JupyterLab or Colab the next cell is live; the book shows the default setting as a static
figure below it.
""")

code(r"""
layers = ["conv3_1", "conv3_3", "conv4_1", "conv4_3", "conv5_1", "conv5_3"]
widgets.dream_explorer(bundle, photo, layers, layer="conv4_3", octaves=OCTAVES, steps=STEPS, step_size=STEP_SIZE,
                       known=[*dreams.values(), hot], model_name=NET_LABEL)
""", tags=["nbval-ignore-output"])

code(r"""
plot.show_dreams(photo, [dream4], labels=[f"conv4_3, {OCTAVES} octaves, {STEPS} steps of {STEP_SIZE}"], size=3.2,
                 suptitle=f"DeepDream with {NET_LABEL}")
""")

md(r"""
Online (Colab with internet), the same functions run on torchvision's ImageNet networks. The
original DeepDream used GoogLeNet's `inception4c`, which paints the famous dog faces.
To run the next cell, set `MODEL` at the top of the chapter (offline it is `None`, and the cell only says so).

""")

code(r"""
net = models.imagenet(MODEL)            # MODEL is set at the top: None offline, e.g. "googlenet" online
if net:
    photo = data.sample_image("chelsea", size=net.input_size)
    layer = {"googlenet": "inception4c", "vgg16": models.VGG16_LAYERS["conv4_3"]}.get(MODEL, net.layers["default"])
    d = deepdream(net, photo, layer, octaves=4, steps=10, step_size=0.002)
    c = deepdream(net, photo, core.class_score(net.classes.index("goldfish")))   # dream a class into the photo
    plot.show_dreams(photo, [d, c], labels=[layer, "class 'goldfish'"], suptitle=f"DeepDream with {d.model}")
""", tags=["imagenet"])

md(r"""
## What to notice
- **It starts from a photo.** Class visualisation asks what the network wants from nothing;
  DeepDream asks it to exaggerate what it already sees. The patterns still come from the
  network, but they grow where the photo already looked a little like them, so they follow its
  shapes.
- **The gradient of the energy is the activation itself.** What fires strongly is amplified most:
  a positive feedback loop, which is why the objective grows by large factors and why the dream
  has to be stopped early.
- **The step is normalised.** Dividing by $\operatorname{mean}|g|$ makes one step size work for
  every layer and image, and makes the step size the knob for taste: too large, and the photo is
  overcooked.
- **The pyramid adds scale.** Dreaming small first makes large patterns, and carrying only the
  detail keeps the full-resolution photo underneath. One octave gives patterns of a single size.
- **Depth decides the vocabulary.** Early layers paint strokes and textures; later layers paint
  larger motifs. A single channel paints one motif; a class score or a guide image sets a goal
  outside the layer.

## Exercises
1. **Overcooking.** Dream conv4_3 with `step_size` 0.001, 0.002, 0.005 and 0.01, and print the
   gain of each. Does the gain keep growing while the picture gets worse? Write a one-line
   criterion that would stop the dream earlier (hint: the mean absolute change from the photo).
2. **The pyramid's scale.** First make the comparison above fair: one octave with 40 steps, as
   many as the pyramid's. Do the patterns get larger, or only stronger? Then compare
   `octave_scale=1.2`, `1.4` and `2.0` with 4 octaves, and 1, 2, 4 and 6 octaves with the scale
   1.4. When do the patterns get larger? What happens when the smallest octave would fall under
   16 pixels (see `octave_sizes`)?
3. **Carry the image, not the detail.** Write a variant that upsamples the dreamed *image* of each
   octave and continues from it, instead of adding the detail to the next base. Compare the
   sharpness of the photo underneath with `deepdream`'s result.
4. **No jitter.** Dream with `jitter=0` and compare with the default. Look for a regular grid in
   the patterns, and explain where it comes from (the strides of VGG16's pooling layers).
5. **Guides.** Guide the dream of the cat with each of the other photos, at conv3_3 and conv5_3.
   Which layer copies the guide's colours, which its shapes? Try `normalize=False` and compare
   with a plain dream.

## References
- {cite}`mordvintsev2015inceptionism`: DeepDream ("Inceptionism"), its octaves, jitter and
  normalised steps, and the guided dream of its notebook.
- {cite}`simonyan2013deep`: gradient ascent on a class score (chapter 10);
  {cite}`yosinski2015understanding`: regularised visualisation of single units.
- {cite}`olah2017feature`: feature visualisation, objectives and transformation robustness.
- {cite}`simonyan2015very` (VGG16), {cite}`xie2015holistically` (HED),
  {cite}`cs231n2017lecture12`.
""")

cells.write(HERE / "notebooks" / "13_deepdream.ipynb")
