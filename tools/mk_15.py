"""Generate notebooks/15_style_transfer.ipynb (then execute it with nbconvert --execute --inplace)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

HERE = Path(__file__).resolve().parent.parent
cells = Cells()
md, code = cells.md, cells.code


md(r"""
# 15. Neural style transfer, slow and fast

*CS231n lecture 12: "Neural style transfer", "Fast style transfer" (Gatys et al. 2016; Johnson et al. 2016)*

[Chapter 14](14_texture_synthesis.ipynb) made a texture from noise by matching Gram matrices, and
[chapter 12](12_feature_inversion.ipynb) rebuilt a photo from its deep features. Gatys, Ecker and
Bethge {cite}`gatys2016image` did both at once: an image whose **deep features match a photo**
(its content: what is where) and whose **Gram matrices match a painting** (its style: which
strokes and colours co-occur). Optimising the pixels takes a few hundred L-BFGS steps per image.
Johnson, Alahi and Fei-Fei {cite}`johnson2016perceptual` trained a network to do it in **one
forward pass**, with the same losses as its training signal; Dumoulin, Shlens and Kudlur
{cite}`dumoulin2017learned` showed that one such network can hold many styles, each a set of
normalisation parameters, and blend them.

**Learning goals**
- Write the style-transfer loss (content + style + total variation) and say which layer carries
  which part.
- Steer the result: the style/content trade-off, the scale of the style's strokes, a blend of two
  styles, and keeping the photo's colours.
- Explain how a feed-forward network is trained with a loss network, and what conditional
  instance normalisation adds.
- Compare optimisation and feed-forward transfer in time and in the losses they reach.
""")

code(SETUP_CELL)

code(r"""
import time
import torch
import lib
from lib import data, images, models, plot, widgets
from lib import synthesis as S
from lib.models import stylenet

lib.seed(0)
GPU = torch.cuda.is_available()
SIZE, STEPS = (384, 300) if GPU else (96, 50)   # photo short side (px), L-BFGS evaluations; CPU: the stored outputs
hed = models.load("vgg16-hed")                    # the loss network: ImageNet VGG16 convs, fine-tuned for edges (HED)
load = lambda name, size: images.load(data.DATA_DIR / "images" / f"{name}.jpg", size=size)
photo = load("chelsea", SIZE)
styles = {n: load(n, 2 * SIZE) for n in stylenet.STYLES}
print(f"photo {tuple(photo.shape[-2:])}; styles:", {n: tuple(s.shape[-2:]) for n, s in styles.items()})
plot.show_images(torch.cat([images.resize(x, (SIZE, SIZE)) for x in [photo, *styles.values()]]),
                 ["content: chelsea", *styles], ncols=4, size=2)
""")

md(r"""
## The loss: content from one deep layer, style from Gram matrices
With $F^l(x)$ the features of image $x$ at layer $l$ and $G^l(x)$ their Gram matrix
(chapter 14), style transfer from a content photo $c$ and a style image $s$ minimises

$$ \mathcal{L}(x) = \alpha \, \frac{\lVert F^{\ell_c}(x) - F^{\ell_c}(c) \rVert^2}{\lVert F^{\ell_c}(c) \rVert^2}
 \;+\; \beta \sum_{l \in L_s} \frac{\operatorname{mean}\big((G^l(x) - G^l(s))^2\big)}{\operatorname{mean}\big(G^l(s)^2\big)}
 \;+\; \gamma \, \mathrm{TV}(x), $$

with content layer $\ell_c$ = conv4_2 and style layers $L_s$ = conv1_1, conv2_1, ..., conv5_1, as
in the paper. conv4_2 is deep enough that matching it fixes *what is where* but not the exact
pixels (chapter 12 showed how loosely conv4 features pin down an image), which leaves the style
term room to repaint. Both terms are relative errors here, so $\alpha = 1$, $\beta = 10$ is a
reasonable start. Starting L-BFGS from the photo (not from noise) keeps the layout from the first
step.
""")

code(r"""
start = time.perf_counter()
result = S.style_transfer(hed, photo, styles["starry_night"], style_weight=10, steps=STEPS, progress=False)
slow_seconds = time.perf_counter() - start
print(f"loss {-result.start.item():.3g} -> {-result.end.item():.3g} in {STEPS} L-BFGS evaluations, {slow_seconds:.1f} s")
print("at the end:", {k: round(v.item(), 3) for k, v in result.parts.items()})
plot.show_images(torch.cat([photo, result.image]), ["content", f"{hed.name}: Starry Night, style weight 10"],
                 ncols=2, size=3)
""", tags=["nbval-ignore-output"])

md(r"""
L-BFGS's path depends on the last bits of every gradient, so the losses above (and in the tables
below) differ a little between CPUs and thread counts. What holds on any machine, measured against
the photo itself (the starting point, content loss 0):
""")

code(r"""
before = S.transfer_losses(hed, photo, photo, styles["starry_night"])
print(f"style loss at least 3-fold lower than the photo's: {result.parts['style'].item() < before['style'] / 3}")
print(f"content loss below 1 (the layout kept): {result.parts['content'].item() < 1}")
""")

md(r"""
## Steering the result
**Style against content.** The ratio $\beta / \alpha$ sets how much of the photo survives.
**Style scale.** The Gram matrices are taken from the style image at some size; a *smaller*
style image means larger strokes relative to the photo, since the network's features have a fixed
size in pixels. **Blends.** The Gram targets of two styles can be mixed, $G^l = t\,G^l(s_1) + (1-t)\,G^l(s_2)$.
""")

code(r"""
runs = {"style weight 1": dict(style_weight=1),
        "style image at half size": dict(style_weight=10, style_size=SIZE),
        "50/50 Starry Night + Truchet": dict(style_weight=10, style_mix=[0.5, 0.5])}
out = {"style weight 10 (above)": result}
print(f"{'style weight 10 (above)':30s} content {result.parts['content'].item():.3f}  style {result.parts['style'].item():.3f}")
for name, kw in runs.items():
    style = [styles["starry_night"], styles["truchet"]] if "style_mix" in kw else styles["starry_night"]
    out[name] = S.style_transfer(hed, photo, style, steps=STEPS, progress=False, **kw)
    print(f"{name:30s} content {out[name].parts['content'].item():.3f}  style {out[name].parts['style'].item():.3f}")
plot.show_images(torch.cat([r.image for r in out.values()]), list(out), ncols=4, size=2.4, suptitle=hed.name)
""", tags=["nbval-ignore-output"])

code(r"""
lower = out["style weight 1"].parts["content"] < out["style weight 10 (above)"].parts["content"]
print(f"style weight 1 keeps more of the photo (lower content loss) than 10: {lower.item()}")
""")

md(r"""
## Keeping the photo's colours
Style transfer copies the painting's palette along with its strokes. Gatys et al.
{cite}`gatys2017controlling` gave two fixes. **Luminance-only transfer**: run the whole method on the luma channel $Y$ of both images
(gray images for the network), then put the photo's chroma back ($I$ and $Q$ of the YIQ colour
space). **Colour histogram matching**: first recolour the style image so that its colour histogram
matches the photo's (here scikit-image's `match_histograms`), then transfer as usual.
""")

code(r"""
kept = {c: S.style_transfer(hed, photo, styles["starry_night"], style_weight=10, steps=STEPS, colour=c,
                            progress=False) for c in ("luminance", "histogram")}
plot.show_images(torch.cat([result.image, *[r.image for r in kept.values()]]),
                 ["style's colours", "luminance only", "histogram matched"], ncols=3, size=2.6, suptitle=hed.name)
""")

md(r"""
## Explore the trade-off
Style weight and the size of the style image; each change runs a transfer (a few seconds on a
laptop CPU at this size). In the published book the controls do not compute; the figure under
them is the default setting.
""")

code(r"""
widgets.style_explorer(hed, photo, styles, steps=STEPS, done={("starry_night", 10.0, 2 * SIZE): result})
""", tags=["nbval-ignore-output"])

code(r"""
plot.show_images(result.image, [f"{hed.name}: starry_night, style weight 10, style at {2 * SIZE} px"], ncols=1, size=3)
""")

md(r"""
## Fast style transfer: train a network once, then one forward pass per photo
Johnson et al. train an **image transformation network** $f_W$ (strided convolutions down, five
residual blocks, upsampling convolutions back) to minimise the same kind of loss over a data set of
photos $c$:

$$ \min_W \; \mathbb{E}_c \Big[ \alpha \, \ell_{\text{content}}(f_W(c), c) + \beta \, \ell_{\text{style}}(f_W(c), s) + \gamma \, \mathrm{TV}(f_W(c)) \Big], $$

with the frozen VGG16 as the **loss network** (content at conv2_2, style at conv1_2, conv2_2,
conv3_3, conv4_3, as in their paper). Ulyanov et al. {cite}`ulyanov2016instance` found that
**instance normalisation** (normalising each feature map of each image on its own) makes such
networks far better. Dumoulin et al. went one step further: **conditional instance normalisation**
gives every style its own scale and shift,

$$ \mathrm{CIN}(z; s) = \gamma_s \, \frac{z - \mu(z)}{\sigma(z)} + \beta_s , $$

so one set of convolution weights serves all styles. The course's `stylenet` was trained this way
on crops of the course's training photos, for the three styles above (its model card,
[`data/models/stylenet.md`, in the book under "The models"](../book/models.md), has the data, steps and time).
""")

code(r"""
net = stylenet.load_stylenet()
with torch.no_grad():
    net(photo)                                      # warm-up
    start = time.perf_counter()
    fast = torch.cat([net(photo, name) for name in net.styles]).cpu()
    fast_seconds = (time.perf_counter() - start) / len(net.styles)
print(f"{sum(p.numel() for p in net.parameters()):,} parameters; {fast_seconds * 1000:.0f} ms per photo")
plot.show_images(fast, [f"stylenet: {n}" for n in net.styles], ncols=3, size=2.6)
""")

md(r"""
**Interpolating styles** is mixing the normalisation parameters: $\gamma = t\,\gamma_{s_1} + (1-t)\,\gamma_{s_2}$,
and the same for $\beta$. At $t = 0$ and $t = 1$ it is exactly the single styles.
""")

code(r"""
ts = [0.0, 0.25, 0.5, 0.75, 1.0]
with torch.no_grad():
    mixes = torch.cat([net(photo, [1 - t, 0.0, t]) for t in ts]).cpu()
plot.show_images(mixes, [f"starry_night {1 - t:.2f} / truchet {t:.2f}" for t in ts], ncols=5, size=2)
""")

code(r"""
widgets.stylenet_explorer(net, photo)
""", tags=["nbval-ignore-output"])

code(r"""
plot.show_images(mixes[2:3], ["stylenet: starry_night 0.50 / truchet 0.50"], ncols=1, size=2.6)
""")

md(r"""
## Slow against fast, measured
The same photo, the same style, each image scored by the *optimisation's* loss (style weight 10,
content at conv4_2, style at conv1_1 ... conv5_1). The feed-forward network was trained with
other layers and a lower style weight (its model card says why), so it is not minimising this
loss; the table shows where each lands, and the order of magnitude in time.
""")

code(r"""
fast_starry = fast[:1]
rows = {"optimisation (L-BFGS)": (result.image, slow_seconds), "feed-forward (stylenet)": (fast_starry, fast_seconds)}
print(f"{'method':26s} {'time per image':>15s} {'content loss':>13s} {'style loss':>11s}")
for name, (img, secs) in rows.items():
    parts = S.transfer_losses(hed, img, photo, styles["starry_night"])
    print(f"{name:26s} {secs:13.2f} s {parts['content']:13.3f} {parts['style']:11.3f}")
print(f"the network is about {slow_seconds / fast_seconds:,.0f}x faster per photo here")
""", tags=["nbval-ignore-output"])

code(r"""
fast_parts = S.transfer_losses(hed, fast_starry, photo, styles["starry_night"])
print(f"the optimisation reaches the lower style loss: {result.parts['style'].item() < fast_parts['style']}")
print(f"the network is at least 10x faster: {slow_seconds > 10 * fast_seconds}")
""")

md(r"""
## What to notice
- **Content is layout, not pixels.** The cat stays where it was and keeps its shape; its fur turns
  into strokes. conv4_2 pins down *what is where*, the Gram matrices everything else.
- **One knob, a whole range.** A lower style weight keeps more of the photo (a lower content
  loss, a higher style loss; the widget goes from 1 to 100); a smaller style image gives larger
  strokes. Blends look like neither style alone.
- **Colour is separable.** Luminance-only transfer keeps the cat's colours and still paints its
  texture; histogram matching gives a painting in the photo's palette.
- **Fast is a trade.** The feed-forward network pays its cost once in training (25 minutes of
  CPU here) and then stylises in milliseconds, but only for the styles it was trained on, and
  with less style than a per-image optimisation reaches (compare the style losses). Mixing
  normalisation parameters gives a continuum of styles for free.
- **Artefacts tell you about the training.** The white blot in a corner of the network's output
  is the "droplet" that instance-normalised generators are known to make (Karras et al. traced it
  to the normalisation in StyleGAN2): a spike that sets the statistics (exercise 6).
""")

md(r"""
## Exercises
1. Move the content layer from conv4_2 to conv2_2 (`content_layer="conv2_2"`). What happens to the
   strokes, and why?
2. Start L-BFGS from noise instead of the photo (hint: `S.optimize` with `S.PixelImage.random` and
   `S.style_transfer_objective`). How many evaluations does it take to look as good?
3. Replace `vgg16-hed` by the same layers with random weights (`models.load("vgg16-hed",
   weights=None)`). Compare with chapter 14's random-weight textures.
4. Give the feed-forward network a photo four times larger than its training crops. Do the
   strokes keep their size in pixels or grow with the photo?
5. Interpolate all three styles at once (`net(photo, [a, b, c])` with $a + b + c = 1$). What
   happens if the weights do not sum to 1?
6. Find the droplet: capture the activations of the last residual block (`lib.hooks.capture`)
   and look for a channel with one very large value in the corner. Retrain with more steps
   (`python -m lib.models.stylenet --steps 8000`, minutes on a GPU) or with a plain (not
   instance-normalised) last up-sampling layer: does it go?
""")

md(r"""
## References
- Gatys, Ecker & Bethge, *Image Style Transfer Using Convolutional Neural Networks*, CVPR 2016 {cite}`gatys2016image`
- Gatys, Ecker & Bethge, *Texture Synthesis Using Convolutional Neural Networks*, NeurIPS 2015 {cite}`gatys2015texture`
- Johnson, Alahi & Fei-Fei, *Perceptual Losses for Real-Time Style Transfer and Super-Resolution*, ECCV 2016 {cite}`johnson2016perceptual`
- Gatys, Ecker, Bethge, Hertzmann & Shechtman, *Controlling Perceptual Factors in Neural Style Transfer*, CVPR 2017 {cite}`gatys2017controlling`
- Ulyanov, Vedaldi & Lempitsky, *Instance Normalization: The Missing Ingredient for Fast Stylization* {cite}`ulyanov2016instance`
- Dumoulin, Shlens & Kudlur, *A Learned Representation For Artistic Style*, ICLR 2017 {cite}`dumoulin2017learned`
- CS231n 2017, lecture 12 {cite}`cs231n2017lecture12`
""")

cells.write(HERE / "notebooks" / "15_style_transfer.ipynb")
