"""Generate notebooks/14_texture_synthesis.ipynb (then execute it with nbconvert --execute --inplace)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

HERE = Path(__file__).resolve().parent.parent
cells = Cells()
md, code = cells.md, cells.code


md(r"""
# 14. Texture synthesis with Gram matrices

*CS231n lecture 12: "Texture synthesis", "Neural texture synthesis: Gram matrix" (Gatys et al. 2015)*

A texture is a picture in which *what* appears matters and *where* it appears does not: bricks,
gravel, brush strokes. Before deep networks, texture synthesis copied patches of the sample
around (Efros and Leung; image quilting). Gatys, Ecker and Bethge {cite}`gatys2015texture`
described a texture instead by **statistics of a CNN's features**: at each layer, which channels
fire *together*, averaged over all positions. Then they made a new image from noise, by gradient
descent on the pixels, until its statistics matched the sample's. It is the machinery of
[Part III](../book/part3.md) with a new objective, and the half of style transfer
([chapter 15](15_style_transfer.ipynb)) that carries the style.

**Learning goals**
- Compute a Gram matrix from a layer's feature maps and say what it keeps (co-occurrence of
  features) and what it throws away (their positions).
- Write the texture loss, and explain why each layer's error must be normalised by the size of its
  own Gram entries.
- Run L-BFGS on the pixels and compare it with Adam at the same budget.
- Read off a figure what shallow and deep layers capture, and why learned filters, not the
  architecture, carry a texture.
""")

code(SETUP_CELL)

code(r"""
import time
import torch
import lib
from lib import data, images, models, plot, widgets
from lib import synthesis as S

lib.seed(0)
GPU = torch.cuda.is_available()
SIZE, STEPS = (256, 300) if GPU else (64, 100)   # output side (px) and L-BFGS evaluations; CPU: the stored outputs
hed = models.load("vgg16-hed")                     # ImageNet VGG16 convs, fine-tuned for edges (HED)
names = ["starry_night", "brick", "truchet", "elephants"]
styles = {n: images.load(data.DATA_DIR / "images" / f"{n}.jpg", size=128) for n in names}
print(hed.description)
plot.show_images(torch.cat([images.resize(s, (96, 96)) for s in styles.values()]), names, ncols=4, size=2)
""")

md(r"""
The four samples, shown square here (see `data/images/ATTRIBUTION.md` for their sources): Van
Gogh's *Starry Night*, a brick wall, a Truchet-tile wallpaper (flat colours, no brush strokes) and
a painting of elephants. Each is loaded with its short side at 128 px; the synthesised textures
are small squares (`SIZE` pixels: 64 on a CPU, where the stored outputs were made; 256 on a GPU).
""")

md(r"""
## The Gram matrix: which features fire together
At layer $l$, reshape the $C_l$ feature maps of height $H_l$ and width $W_l$ into a matrix
$F^l \in \mathbb{R}^{C_l \times H_l W_l}$ (a row per channel). The **Gram matrix** is

$$ G^l = \frac{1}{H_l W_l} F^l {F^l}^\top, \qquad G^l_{ij} = \frac{1}{H_l W_l}\sum_{p} F^l_{ip} F^l_{jp}: $$

entry $(i, j)$ is how strongly channels $i$ and $j$ are active *at the same positions*, averaged
over all positions $p$. The sum over $p$ is what throws the layout away: shuffle the positions and
$G$ does not change.
""")

code(r"""
x = styles["starry_night"]
F = S.activations(hed, ["conv2_1"], x)["conv2_1"]      # 1 x C x H x W
G = S.gram(F)                                         # 1 x C x C
perm = torch.randperm(F.shape[-2] * F.shape[-1])
F_shuffled = F.flatten(2)[:, :, perm].view_as(F)      # the same features at shuffled positions
print("features", tuple(F.shape), "-> Gram", tuple(G.shape))
change = (S.gram(F_shuffled) - G).abs().max() / G.abs().max()
print(f"largest Gram change after shuffling positions, relative to the largest entry: < 1e-5? {bool(change < 1e-5)}")
""")

md(r"""
Shuffling the *pixels* is not the same as shuffling *feature positions* (each feature looks at a
neighbourhood), but shuffling large tiles of the image comes close: below, the image cut into 4 x 4
tiles and shuffled keeps most of its Gram matrix at shallow layers, where a feature sees a few
pixels, and loses more of it at deep layers, where a feature sees across the tile borders.
""")

code(r"""
tiles = x[..., :128, :128].unfold(2, 32, 32).unfold(3, 32, 32)           # 1 x 3 x 4 x 4 x 32 x 32
order = torch.randperm(16)
shuffled = tiles.reshape(1, 3, 16, 32, 32)[:, :, order].reshape(1, 3, 4, 4, 32, 32)
shuffled = shuffled.permute(0, 1, 2, 4, 3, 5).reshape(1, 3, 128, 128)
layers = list(S.TEXTURE_LAYERS)
a, b = S.activations(hed, layers, x[..., :128, :128]), S.activations(hed, layers, shuffled)
for layer in layers:
    ga, gb = S.gram(a[layer]), S.gram(b[layer])
    print(f"{layer}: relative Gram change {((ga - gb).norm() / ga.norm()).item():.2f}")
plot.show_images(torch.cat([x[..., :128, :128], shuffled]), ["original", "tiles shuffled"], ncols=2, size=2.2)
""")

md(r"""
## The texture loss, and why each layer is normalised
A synthesised image $\hat x$ has the texture of the sample $s$ when its Gram matrices match at a set
of layers $L$:

$$ \mathcal{L}(\hat x) = \sum_{l \in L} w_l \, \frac{\operatorname{mean}\big((G^l(\hat x) - G^l(s))^2\big)}{\operatorname{mean}\big(G^l(s)^2\big)} . $$

Gatys et al. wrote the first factor with a fixed $1/(4 N_l^2 M_l^2)$; dividing by the size of the
sample's own Gram entries instead makes every layer's error *relative*, so $w_l = 1$ gives each
layer an equal say. Without it the layers' raw errors differ by orders of magnitude, and the
optimiser would serve one layer and ignore the rest:
""")

code(r"""
targets = S.gram_targets(hed, styles["starry_night"], S.TEXTURE_LAYERS)
for layer, g in targets.items():
    print(f"{layer}: {g.shape[-1]:3d} channels, mean(G^2) = {g.pow(2).mean().item():.3g}")
""")

md(r"""
The loss is smooth and deterministic in the pixels, which is the setting where **L-BFGS**
{cite}`nocedal1980updating` (a quasi-Newton method that builds a curvature estimate from the last
gradients, with a line search) is made for; Gatys et al. used it. `synthesize_texture` starts
from gray noise and runs `optimize` with `optimizer="lbfgs"`, counting function evaluations as
steps. Is it worth it? Here is the same budget spent by L-BFGS and by Adam (learning rate 0.02),
with the best loss so far after a quarter, half and all of the budget.

The start is gray with *faint* noise (standard deviation 0.01). The Gram loss barely sees
pixel-level noise, so with the hundred evaluations a CPU can afford here, a strong start (0.1)
is still there at the end as grain (exercise 7).
""")

code(r"""
start = time.perf_counter()
tex = S.synthesize_texture(hed, styles["starry_night"], size=SIZE, steps=STEPS, progress=False)
seconds = time.perf_counter() - start
adam = S.optimize(hed, S.texture_objective(targets), S.PixelImage.random(1, SIZE, sd=0.01, generator=lib.seed(0)),
                  steps=STEPS, lr=0.02, optimizer="adam", progress=False)
checkpoints = [STEPS // 4, STEPS // 2, STEPS]
print(f"L-BFGS: {STEPS} evaluations at {SIZE} px in {seconds:.1f} s")
print("texture loss after " + ", ".join(f"{k} evaluations" for k in checkpoints))
for name, record in [("L-BFGS", tex), ("Adam", adam)]:
    losses = [-max(record.history[:k]) for k in checkpoints]  # history: minus the loss; best so far
    print(f"  {name:6s} start {-record.start.item():.2g}: " + ", ".join(f"{v:.2g}" for v in losses)
          + f"  ({-record.start.item() / losses[-1]:.0f}x lower)")
plot.show_image_rows({"": torch.cat([images.resize(styles["starry_night"], (SIZE, SIZE)), tex.image, adam.image])},
                     titles={"": ["sample (resized)", "L-BFGS", "Adam, same budget"]}, size=2.2,
                     suptitle=f"texture synthesis with {hed.name}")
""", tags=["nbval-ignore-output"])

md(r"""
(L-BFGS's path depends on the last bits of every gradient, so the losses above differ a little
between CPUs and thread counts; what does not:)
""")

code(r"""
for name, record in [("L-BFGS", tex), ("Adam", adam)]:
    loss_start, loss_end = -record.start.item(), -record.end.item()
    print(f"{name} lowers the texture loss at least 10-fold: {loss_end < loss_start / 10}")
""")

md(r"""
## What each layer captures
Now the same synthesis matching only the first layer, then the first two, and so on up to all
five. The same with the **same architecture and random weights** sits below: VGG16's layers with
torchvision's initialisation, never trained (labelled so in the figure).
""")

code(r"""
hed_random = models.load("vgg16-hed", weights=None)
rows, titles = {}, {}
for bundle in (hed, hed_random):
    results = [tex if bundle is hed and ls == S.TEXTURE_LAYERS else   # all five layers: the run above
               S.synthesize_texture(bundle, styles["starry_night"], layers=ls, size=SIZE, steps=STEPS, progress=False)
               for ls in S.LAYER_SETS.values()]
    rows[bundle.name] = torch.cat([r.image for r in results])
    titles[bundle.name] = [f"{name}\nloss {-r.start.item():.2g} -> {-r.end.item():.2g}"
                           for name, r in zip(S.LAYER_SETS, results)]
plot.show_image_rows(rows, titles, size=1.9, suptitle="Starry Night: Gram matrices matched up to each layer")
""")

md(r"""
## More textures
The full five-layer model on two samples of a very different character. A texture with large
regular structures (bricks, tiles) is harder than Van Gogh's strokes at this size: the rows of bricks need the deep layers,
whose features see far enough to know that a row continues.
""")

code(r"""
others = ["brick", "truchet"]
results = [S.synthesize_texture(hed, styles[n], size=SIZE, steps=STEPS, progress=False) for n in others]
plot.show_image_rows({"sample": torch.cat([images.resize(styles[n], (SIZE, SIZE)) for n in others]),
                      hed.name: torch.cat([r.image for r in results])},
                     titles={hed.name: [f"loss {-r.start.item():.2g} -> {-r.end.item():.2g}" for r in results]},
                     size=2.2)
""")

md(r"""
## Explore
Pick a sample, a layer set and an output size; the synthesis runs when you let go of a control
(a few seconds at 64 px on a laptop CPU). In the published book the controls do not compute; the
figure under them is the default setting.
""")

code(r"""
widgets.texture_explorer(hed, styles, layer_sets=S.LAYER_SETS, sizes=(48, 64, 96, 128), steps=STEPS,
                         done={("starry_night", "up to conv5", SIZE): tex})
""", tags=["nbval-ignore-output"])

code(r"""
plot.show_image_rows({hed.name: tex.image}, {hed.name: ["starry_night, up to conv5, " + f"{SIZE} px"]}, size=2.4)
""")

md(r"""
## What to notice
- **Position is gone, co-occurrence stays.** The synthesised Starry Night has strokes, stars and
  the palette, but no cypress in the corner and no village at the bottom: the Gram matrix kept
  *which* features fire together and dropped *where*.
- **Depth is scale and complexity.** Up to conv1 the result is patches of the palette, no strokes: conv1_1's features
  are a few pixels wide, so only colour and local contrast are matched. Each deeper layer adds
  larger structures (strokes, then swirls and blobs), because its features see further.
- **Measure the optimiser, do not assume it.** L-BFGS is the textbook choice for this smooth,
  deterministic loss, but at this small size and budget the two optimisers end close (compare the
  printed losses; L-BFGS needs no learning rate, Adam needed a tuned one). Neither has converged:
  more evaluations (`STEPS`) keep lowering the loss.
- **Learned filters carry the texture.** The random network with the same layers matches its own
  Gram matrices just as well (its loss falls too) but the pictures are colour blotches: random
  filters measure colour and blur, not strokes. What makes a Gram matrix a good texture descriptor
  is what the filters learned on ImageNet.
""")

md(r"""
## Exercises
1. Drop the normalisation: replace $\operatorname{mean}(G^l(s)^2)$ by 1 (write your own loss with
   `S.gram` and `S.activations`). Which layers now dominate, and what does the texture look like?
2. Synthesise at twice the size with the same targets. Do the strokes get larger or does the image
   show more of them? Why?
3. Use the Gram matrix of conv5_1 alone. What comes back?
4. Blend two samples' Gram matrices (`S.gram_targets(hed, [a, b], weights=[0.5, 0.5])`) and
   synthesise. Is the result a mixture of the two textures or something in between?
5. Replace the Gram matrix by the mean of each channel only (a $C$-vector). What is lost?
6. Give both optimisers 400 evaluations, and try Adam at learning rates 0.005 and 0.05. Which
   reaches the lower loss, and which picture has less grain?
7. Start from strong noise (`init_sd=0.1`). Where does the grain show most, and does a small
   total-variation penalty (`tv=0.05`, the prior of [chapter 12](12_feature_inversion.ipynb))
   remove it without changing the texture?
""")

md(r"""
## References
- Gatys, Ecker & Bethge, *Texture Synthesis Using Convolutional Neural Networks*, NeurIPS 2015 {cite}`gatys2015texture`
- Simonyan & Zisserman, *Very Deep Convolutional Networks for Large-Scale Image Recognition* {cite}`simonyan2015very`
- Nocedal, *Updating Quasi-Newton Matrices with Limited Storage* (L-BFGS) {cite}`nocedal1980updating`
- CS231n 2017, lecture 12 {cite}`cs231n2017lecture12`
""")

cells.write(HERE / "notebooks" / "14_texture_synthesis.ipynb")
