"""Generate notebooks/12_feature_inversion.ipynb (then execute it with nbconvert --execute --inplace)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

HERE = Path(__file__).resolve().parent.parent
cells = Cells()
md, code = cells.md, cells.code


md(r"""
# 12. Feature inversion

*CS231n lecture 12: "Feature inversion", after Mahendran & Vedaldi 2015*

Chapters 10 and 11 asked what a network *wants*: images made from scratch to excite a class or a
unit. Feature inversion asks the opposite question about one real photo: *how much of the photo is
still in its representation?* Mahendran and Vedaldi {cite}`mahendran2015understanding` take the
activations $\Phi_0 = \Phi(x_0)$ of a photo $x_0$ at some layer, throw the photo away, and search for
an image whose activations match $\Phi_0$, starting from noise. Whatever the reconstruction gets
right, the layer kept; whatever it gets wrong, or gets differently each time, the layer threw away
(the network is *invariant* to it). Doing this at every depth of VGG16 shows what the network keeps
and discards as it goes from pixels to parts.

**Learning goals**
- Write the inversion objective (relative feature error plus a total-variation image prior) and
  compute it with a few lines on top of the course's optimisation loop.
- Read reconstructions from conv1_2 to conv5_3: what each depth keeps (colour, edges, layout) and
  what it loses.
- Explain why a tiny feature error can come with a large pixel error: many images share one deep
  representation.
- Choose the optimiser and the prior's weight by measuring, not by habit.
""")

code(SETUP_CELL)

code(r"""
import time
import torch
import lib
from lib import data, images, models, plot, widgets
from lib import synthesis as S

GPU = torch.cuda.is_available()       # the stored outputs come from the CPU setting
SIZE = 192 if GPU else 64             # short side of the photo in pixels
STEPS = 300 if GPU else 60            # L-BFGS function evaluations per inversion

lib.seed(0)
MODEL = None                        # online: "vgg16", "resnet50", ... runs the ImageNet section at the end
vgg = models.load("vgg16-hed")
NET_LABEL = f"{vgg.name} (ImageNet VGG16 convs, HED fine-tuned)"
photo = data.sample_image("chelsea", size=SIZE)
print(vgg)
print("photo:", tuple(photo.shape))
""")

md(r"""
## The objective
`vgg16-hed` holds the 13 conv layers of VGG16 {cite}`simonyan2015very`, trained on ImageNet and
then fine-tuned gently as the backbone of the HED edge detector {cite}`xie2015holistically` (see
[the models](../book/models.md)); we invert the last ReLU of each of its five blocks. For a layer
$\Phi$ and the photo's activations $\Phi_0$, the reconstruction is

$$ x^* = \arg\min_{x \in [0, 1]^{3 \times H \times W}}
   \underbrace{\frac{\lVert \Phi(x) - \Phi_0 \rVert^2}{\lVert \Phi_0 \rVert^2}}_{\text{relative feature error}}
   + \lambda_{TV}\, R_{TV^\beta}(x), \qquad
   R_{TV^\beta}(x) = \frac{1}{HW} \sum_{c, i, j} \Big( (x_{c,i,j+1} - x_{c,i,j})^2 + (x_{c,i+1,j} - x_{c,i,j})^2 \Big)^{\beta/2}. $$

Dividing by $\lVert \Phi_0 \rVert^2$ makes the error comparable across layers: 0 is a perfect match,
and an image that shares nothing with the photo scores about 1. The prior $R_{TV^\beta}$ (with
$\beta = 2$, as in the paper) is small for smooth images and large for noise: the features alone
leave many pixel patterns free, and the prior picks the smooth ones, as natural images are. The
paper adds an optional $\lambda_\alpha \lVert x - \bar x \rVert_\alpha^\alpha$ term to keep pixels in
range; here pixels are kept in $[0, 1]$ directly, and the $\alpha$-norm (`S.alpha_norm`, centred on
mid-gray) is there to try (exercise 4).

The two terms, in code (`S.activation` stops the forward pass at the layer; `S.total_variation`
is the prior):
""")

code(r"""
layer = "conv3_3"
target = S.feature_target(vgg, photo, layer)       # Phi_0, computed once: the photo itself is not used again

def relative_error(x):                             # ||Phi(x) - Phi_0||^2 / ||Phi_0||^2
    with torch.no_grad():
        return ((S.activation(vgg, layer, x) - target).pow(2).sum() / target.pow(2).sum()).item()

noise = 0.1 * torch.randn(photo.shape, generator=lib.seed(0))
candidates = {"the photo": photo, "mid-gray": torch.full_like(photo, 0.5),
              "photo + noise": (photo + noise).clamp(0, 1),
              "photo, blurred": images.resize(images.resize(photo, SIZE // 4), tuple(photo.shape[-2:]))}
print(f"{'image':16s} {'rel. error at ' + layer:>22s} {'TV^2 prior':>11s}")
for name, x in candidates.items():
    print(f"{name:16s} {relative_error(x):22.2f} {S.total_variation(x, beta=2).item():11.3f}")
""")

md(r"""
The photo scores 0, as it must, and mid-gray, which has no content, scores close to 1. Noise on
the photo costs some feature error but multiplies the prior several times; a blurred photo has a
tiny prior but a large feature error. The two terms pull in different directions, and the
reconstruction is the compromise.

## What each depth keeps
We invert the photo at the five depths with the same prior and the same budget of function
evaluations, each run starting from the same mid-gray noise. `S.invert` builds the objective
(`S.feature_error` is minus the relative error, an objective to *maximise*, as `S.optimize`
expects) and the prior (the penalty), and runs the course's one optimisation loop with L-BFGS
{cite}`nocedal1980updating` (the choice is measured in *Choosing the optimiser* below).
""")

code(r"""
LAYERS = ["conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"]
TV = 1.0                                           # lambda_TV, with beta = 2
results, errors = {}, {}
t0 = time.perf_counter()
for name in LAYERS:
    results[name] = S.invert(vgg, photo, name, tv_weight=TV, beta=2, steps=STEPS, seed=0)
    errors[name] = S.inversion_errors(vgg, results[name], photo, name)
print(f"5 inversions of {STEPS} evaluations in {time.perf_counter() - t0:.1f} s")
plot.show_inversions(photo, list(results.values()), labels=LAYERS, errors=list(errors.values()), size=2.3,
                     suptitle=f"{NET_LABEL}: the photo rebuilt from the last layer of each block (TV weight {TV:g})")
""")

md(r"""
The table puts numbers on it: the relative feature error of the starting noise and of the result,
and the pixel error (RMSE, in $[0, 1]$ units) of the result against the photo. For scale, the last
row is the best image that knows nothing about the layout: the photo's mean colour everywhere.
""")

code(r"""
flat = photo.mean((2, 3), keepdim=True).expand_as(photo)
print(f"{'layer':8s} {'features (C x h x w)':>21s} {'rel. error: start':>18s} {'end':>6s} {'pixel RMSE':>11s}")
for name in LAYERS:
    r, e = results[name], errors[name]
    c, h, w = S.feature_target(vgg, photo, name).shape[1:]
    print(f"{name:8s} {f'{c} x {h} x {w}':>21s} {-r.start.item():18.2f} {e.feature.item():6.1g} {e.pixel.item():11.2f}")
print(f"{'mean colour (no inversion)':54s} {(flat - photo).pow(2).mean().sqrt().item():11.2f}")
""")

md(r"""
Every inversion drives the relative feature error from about 1 down by one to three orders of
magnitude: the optimiser did its job at every depth. Yet the pixel error grows with depth, and
from the middle of the network on, the reconstruction can be further from the photo in pixels than
the flat mean colour is: RMSE rewards getting the colours right, and colour is exactly what deep
layers let go. Watching the error fall during the optimisation (log scale) shows that conv1_2
converges fastest by far and that no layer has fully converged within this budget (`GPU = True`
gives 300 evaluations):
""")

code(r"""
curves = {name: torch.tensor([-v for v in results[name].history]).log10() for name in LAYERS}
plot.show_curves({f"{NET_LABEL}: relative feature error during L-BFGS": curves}, xlabel="function evaluation",
                 ylabel="log10 relative feature error", size=4.5)
""")

md(r"""
Reading the row of reconstructions from left to right:

- **conv1_2** (64 channels at full resolution) is almost a copy of the photo: colour, edges and fine
  texture all come back. Two 3x3 layers of 64 filters lose almost nothing.
- **conv2_2** keeps every edge and most of the texture; colours start to drift, because the layer
  cares more about colour *contrast* than about absolute colour.
- **conv3_3** keeps the layout and the edges, the eyes and the nose where they were, but the colour
  is mostly gone: the reconstruction stays near the gray it started from wherever the features do
  not say otherwise. The layer is (nearly) invariant to the colour of a region.
- **conv4_3** keeps object *parts* roughly in place (eyes, nose, the edge of the head) drawn as
  strokes, and replaces fur and background by texture that only has the right statistics.
- **conv5_3** units each see more than this small photo (their receptive field is 196 pixels), and
  its map has only a few positions: the reconstruction matches the features very well and looks
  like faint texture with scattered fragments. Many very different images have these features.

That is the paper's central point: a small feature error does not mean the image is recovered.
Deep layers are built to be invariant (to colour, exact position, small deformations), and the
optimiser fills everything the layer ignores from the starting noise and the prior.

## Many images, one representation
Changing only the starting noise (the `seed`) gives a second reconstruction with an equally small
feature error. What differs between the two is what the layer does not encode:
""")

code(r"""
deep = "conv4_3"
other = S.invert(vgg, photo, deep, tv_weight=TV, steps=STEPS, seed=1)
e_other = S.inversion_errors(vgg, other, photo, deep)
between = (other.image - results[deep].image).pow(2).mean().sqrt().item()
print(f"{deep}, seed 0: relative error {errors[deep].feature.item():.1g}, seed 1: {e_other.feature.item():.1g}; "
      f"RMSE between the two reconstructions: {between:.2f}")
plot.show_inversions(photo, [results[deep], other], labels=[f"{deep}, seed 0", f"{deep}, seed 1"],
                     errors=[errors[deep], e_other], size=2.6,
                     suptitle=f"{NET_LABEL}: two reconstructions from the same {deep} features")
""")

md(r"""
## The total-variation prior
Without a prior, inversion is free to use any pixel pattern the features do not see, and
high-frequency patterns are the easiest to find. The weight $\lambda_{TV}$ trades feature error
against smoothness; the photo's own $R_{TV^2}$ is printed for scale.
""")

code(r"""
tv_weights = [0.0, TV, 10.0]
sweep = {w: results[layer] if w == TV else S.invert(vgg, photo, layer, tv_weight=w, steps=STEPS) for w in tv_weights}
sweep_errors = [S.inversion_errors(vgg, r, photo, layer) for r in sweep.values()]
print(f"the photo's own TV^2: {S.total_variation(photo, 2).item():.1g}")
for w, r, e in zip(tv_weights, sweep.values(), sweep_errors):
    print(f"TV weight {w:4g}: TV^2 {S.total_variation(r.image, 2).item():.1g}, relative error {e.feature.item():.1g}, "
          f"pixel RMSE {e.pixel.item():.2f}")
plot.show_inversions(photo, list(sweep.values()), labels=[f"{layer}, TV weight {w:g}" for w in tv_weights],
                     errors=sweep_errors, size=2.6, suptitle=f"{NET_LABEL}: inverting {layer} with a weaker and a stronger prior")
""")

md(r"""
With no prior the reconstruction is covered in colour noise and high-frequency ripples: its
features match but it looks less like a photo. A strong prior gives a smooth, washed-out image
whose feature error is higher. The middle weight makes the result about as smooth as the photo
itself, a reasonable rule for choosing $\lambda_{TV}$.

## Choosing the optimiser
`S.optimize` offers Adam (steps of a fixed size, pixels clamped after each) and L-BFGS (a
quasi-Newton method: it builds a curvature estimate from the last gradients and picks each step
with a line search). Feature visualisation often adds *jitter*, a random shift of the image at
every step ([chapter 10](10_class_models.ipynb)); L-BFGS cannot use it, because its line search
needs the same function at every evaluation. We measure the three on the deepest layer with the
same number of evaluations (the L-BFGS run is the one above):
""")

code(r"""
deepest = "conv5_3"
runs = {"L-BFGS": results[deepest]}
for name, kw in {"Adam, lr 0.05": dict(optimizer="adam", lr=0.05),
                 "Adam + 2 px jitter": dict(optimizer="adam", lr=0.05, jitter=2)}.items():
    runs[name] = S.invert(vgg, photo, deepest, tv_weight=TV, steps=STEPS, **kw)
run_errors = [S.inversion_errors(vgg, r, photo, deepest) for r in runs.values()]
for (name, r), e in zip(runs.items(), run_errors):
    print(f"{name:20s} relative error {e.feature.item():.1g}, pixel RMSE {e.pixel.item():.2f}")
plot.show_curves({f"{NET_LABEL}: inverting {deepest}": {n: torch.tensor([-v for v in r.history]).log10()
                                                  for n, r in runs.items()}},
                 xlabel="function evaluation", ylabel="log10 relative feature error", size=4.5)
plot.show_inversions(photo, list(runs.values()), labels=list(runs), errors=run_errors, size=2.6,
                     suptitle=f"{NET_LABEL}: {deepest} inverted with {STEPS} evaluations of each optimiser")
""")

md(r"""
With the same budget, L-BFGS reaches the lowest feature error on this deep layer, and it has no
step size to tune: its line search scales every step, which matters here because the gradient's
size changes by orders of magnitude from conv1_2 to conv5_3. Adam moves every pixel by about the
same amount at every step, so it fills the image with saturated patterns that the deep features
hardly distinguish from the photo's: another face of the invariance seen above. (On shallow
layers a well-tuned Adam does about as well as L-BFGS; try it.) Jitter, which makes class visualisations look natural, works
*against* inversion: the target $\Phi_0$ has a fixed position, so matching it after a random shift
means matching the wrong thing at every step, and the error stays high. That is why `S.invert`
defaults to L-BFGS without jitter and lets the TV prior do the regularising.

## Explore: layer and TV weight
In JupyterLab or Colab the next cell shows a layer menu and a TV-weight slider. Each setting is
computed when you first pick it (a few seconds on a CPU) and kept; the settings computed above
are reused. The book shows the default setting as a static figure instead.
""")

code(r"""
known = {**{(name, TV): r for name, r in results.items()}, **{(layer, w): r for w, r in sweep.items()}}
widgets.inversion_explorer(vgg, photo, LAYERS, tv_weights=[0.0, 0.3, TV, 3.0, 10.0], layer=layer, tv_weight=TV,
                           known=known, model_name=NET_LABEL, steps=STEPS)
""", tags=["nbval-ignore-output"])

code(r"""
plot.show_inversions(photo, [results[layer]], labels=[f"{layer}, TV weight {TV:g}"], errors=[errors[layer]], size=2.8,
                     suptitle=f"inverted with {NET_LABEL}")
""")

md(r"""
### Online: the original VGG16
With internet, the same functions invert torchvision's ImageNet VGG16 (its layers are named
`features.N`; `models.VGG16_LAYERS` maps the paper's names), at the size the paper used.
To run the next cell, set `MODEL` at the top of the chapter (offline it is `None`, and the cell only says so).

""")

code(r"""
net = models.imagenet(MODEL)            # MODEL is set at the top: None offline, e.g. "vgg16" online
if net:
    photo = data.sample_image("chelsea", size=net.input_size)
    layer = models.VGG16_LAYERS["conv4_3"] if MODEL == "vgg16" else net.layers["default"]
    r = S.invert(net, photo, layer, tv_weight=1.0, steps=300)
    plot.show_inversions(photo, [r], labels=[layer], errors=[S.inversion_errors(net, r, photo, layer)])
""", tags=["imagenet"])

md(r"""
## What to notice
- Inversion is an optimisation like the class visualisations, with a *target* instead of a
  maximum: minus the relative feature error is the objective, total variation the prior.
- The relative feature error falls by orders of magnitude at every depth, but the pixel error
  rises with depth: deeper layers keep less of the photo. Colour goes first, then exact texture,
  then precise positions; edges and parts survive longest.
- Different starting points give different images with the same deep features: the differences
  show what the layer is invariant to.
- The prior is not decoration: without it the reconstruction is noise that the features do not
  see; too much of it washes the image out. L-BFGS fits this deterministic objective better than
  Adam, and jitter, helpful elsewhere, fights a target with a fixed position.

## Exercises
1. Invert `data.sample_image("coffee", size=SIZE)` at conv3_3 and conv5_3. Does the cup's outline
   survive? The pattern on the saucer?
2. Invert conv4_3 from three seeds, then average the three reconstructions. Which parts of the
   image agree across seeds (compute the per-pixel standard deviation), and which do not?
3. Compare `beta=1` with `beta=2` at conv2_2 (same `tv_weight`). The paper reports that
   $\beta = 1$ leaves spiky artefacts; do you see them?
4. Set `tv_weight=0` and add the range prior `alpha=6, alpha_weight=1.0`. What does the
   $\alpha$-norm alone do to the reconstruction? Print `S.alpha_norm` of the results.
5. Load the same architecture with random weights, `models.load("vgg16-hed", weights=None)`, and
   invert conv3_3 and conv5_3. Which depths of a *random* network are still invertible, and what
   does that say about what training adds?

## References
- {cite}`mahendran2015understanding`, the method: relative feature error, TV$^\beta$ and
  $\alpha$-norm priors, inversions of every layer.
- {cite}`cs231n2017lecture12`, the lecture section on feature inversion.
- {cite}`simonyan2015very` (VGG16) and {cite}`xie2015holistically` (HED), the network inverted here.
- {cite}`nocedal1980updating`, limited-memory quasi-Newton updates (L-BFGS).
- {cite}`olah2017feature`, transformation robustness (jitter) in feature visualisation.
- {cite}`johnson2016perceptual`, which shows VGG16 feature reconstructions from several layers and
  turns the same feature error into a training loss.
""")

cells.write(HERE / "notebooks" / "12_feature_inversion.ipynb")
