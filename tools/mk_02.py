"""Generate notebooks/02_feature_space.ipynb (then execute it with nbconvert)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebooks" / "02_feature_space.ipynb"

cells = Cells()
md, code = cells.md, cells.code


md(r'''
# 2. The last layer as a feature space

*CS231n lecture 12: "Last layer", "Last layer: nearest neighbours", "Last layer: dimensionality reduction"*

Just before the classifier, a CNN has turned each image into one vector of numbers: 4096 for
AlexNet's and VGG16's fc7, 2048 for ResNet-50, 256 for our `gapnet`. Instead of asking what one unit
of that vector means, this chapter looks at the *geometry* of all the vectors together: which images
end up close to each other, and what a 2-D map of the whole test set looks like. Krizhevsky et al.
{cite}`krizhevsky2012imagenet` showed that images whose last-layer vectors are close are
semantically alike even when their pixels are not; t-SNE {cite}`vandermaaten2008visualizing` made
the famous maps in which a trained network's feature space falls apart into one island per class.

**Learning goals**
- Extract the last-layer feature vectors of a data set with one call, and say why that layer.
- Compare nearest neighbours in feature space with nearest neighbours in pixel space, by eye and by
  a number: the fraction of neighbours that share the query's class.
- Read PCA and t-SNE maps of features and of pixels, and know what a t-SNE map does and does not
  show.
''')

code(SETUP_CELL)

code(r'''
import time
import torch
import lib
from lib import data, features, models, plot, widgets

lib.seed(0)
MODEL = None                        # online: "vgg16", "resnet50", ... runs the ImageNet section at the end
bundle = models.load("gapnet")
canvases = data.load_canvases("test")
images, labels = canvases.images, canvases.labels
print(bundle)
''')

md(r'''
## One vector per image
`gapnet` (see [the models](../book/models.md)) ends with a conv layer whose output for a canvas $x$
is $A(x)$, 256 maps of 8x8. Global average pooling turns it into the feature vector and one linear
layer into the 10 class scores:

$$ f_k(x) = \frac{1}{8 \cdot 8} \sum_{i, j} A_k(x)_{ij}, \quad k = 1, \dots, 256, \qquad
   s(x) = W f(x) + b, \quad W \in \mathbb{R}^{10 \times 256}. $$

$f(x) \in \mathbb{R}^{256}$ is what CS231n calls the *last layer*: everything the network knows about
the image has to pass through it, and the classes have to be separable in it by hyperplanes, since
$s$ is linear. `features.embed` runs the canvases through the network in batches and records the
output of the bundle's `features` layer, the input of the classifier (`pool` here; fc7
`classifier.4` for VGG16, `avgpool` for ResNet-50). Applying `fc` to these vectors alone gives the
network's predictions.
''')

code(r'''
t0 = time.perf_counter()
feats = features.embed(bundle, images, batch_size=250)     # 2000 x 256, on the CPU
print(f"layer {bundle.layer('features')!r}: features {tuple(feats.shape)} in {time.perf_counter() - t0:.1f} s")
with torch.no_grad():
    pred = bundle.model.fc(feats).argmax(1)                # the classifier needs nothing but f(x)
print(f"accuracy of fc on the features: {(pred == labels).float().mean():.3f}")
pixels = images.flatten(1)                                 # the same canvases as raw pixels
print(f"pixels: {tuple(pixels.shape)} (3 x 64 x 64 numbers per canvas)")
''')

md(r'''
## Nearest neighbours: pixels against features
Two canvases are close in *pixel space* when their pixels are, and close in *feature space* when
the network gives them similar vectors:

$$ d_\text{pixel}(x, x') = \lVert x - x' \rVert_2 \;\; (12288 \text{ numbers}), \qquad
   d_\text{feature}(x, x') = \lVert f(x) - f(x') \rVert_2 \;\; (256 \text{ numbers}). $$

`features.nearest_neighbours` (scikit-learn's exact search) finds, for every canvas, the $k$ other
canvases at the smallest distance; a canvas is never its own neighbour. Below, four queries chosen
by code (the first correctly classified Trouser, Dress, Sandal and Ankle boot) and, in the last row, the
first canvas the model gets wrong. Green titles share the query's class, red ones do not.
''')

code(r'''
nn_feat, _ = features.nearest_neighbours(feats, k=5)      # 2000 x 5 indices: the 5 nearest other canvases
nn_pix, _ = features.nearest_neighbours(pixels, k=5)

correct = pred == labels
queries = [int((correct & (labels == c)).nonzero()[0]) for c in (1, 3, 5, 9)]
wrong = int((~correct).nonzero()[0])
print(f"queries {queries}; first misclassified canvas {wrong}: "
      f"{data.CLASSES[labels[wrong]]}, predicted {data.CLASSES[pred[wrong]]}")
rows = queries + [wrong]
plot.show_neighbours(images, labels, rows, {"5 nearest in feature space": nn_feat[rows],
                                            "5 nearest in pixel space": nn_pix[rows]}, data.CLASSES,
                     suptitle=f"{bundle.name}: nearest neighbours by L2 distance (green: same class as the query)")
''')

md(r'''
Pixel neighbours share the *background*: the same photo crop, the same brightness and colour, the
item often in a similar place. Feature neighbours share the *item*: the same kind of garment in other
colours, at other positions and on other photos. The network has learned to ignore exactly what
dominates the pixel distance.

One number sums this up over the whole test set, the **neighbour-label agreement**: the fraction of
the $k$ nearest neighbours $\mathcal{N}_k(i)$ of each canvas (itself excluded) that have its label,

$$ a_k = \frac{1}{N k} \sum_{i=1}^{N} \sum_{j \in \mathcal{N}_k(i)} [\, y_j = y_i \,]. $$

If neighbours were drawn at random, $a_k$ would be $\sum_c p_c^2$, with $p_c$ the share of class $c$.
''')

code(r'''
for name, nn in {"feature space": nn_feat, "pixel space": nn_pix}.items():
    print(f"{name:13s}: {features.neighbour_agreement(nn, labels):.3f} of the 5 nearest neighbours share the class")
chance = ((torch.bincount(labels) / len(labels)) ** 2).sum()
print(f"random neighbours: {chance:.3f}")
''')

md(r'''
## Explore: any query
Pick a canvas with the slider: its 5 nearest neighbours in both spaces, from the lists computed
above for all 2000 canvases. In JupyterLab or Colab the figure follows the slider; the book shows
the default setting (canvas 0) as a static figure below.
''')

code(r'''
spaces = {"5 nearest in feature space": nn_feat, "5 nearest in pixel space": nn_pix}
widgets.neighbour_explorer(images, labels, spaces, data.CLASSES, query=0)
''', tags=["nbval-ignore-output"])

code(r'''
plot.show_neighbours(images, labels, [0], {name: nn[[0]] for name, nn in spaces.items()}, data.CLASSES,
                     size=1.3, suptitle=f"canvas 0: {data.CLASSES[labels[0]]}")
''')

md(r'''
## A 2-D map with PCA
Principal component analysis projects the centred vectors onto the two directions along which they
vary most. With $\bar f$ the mean vector and $u_1, u_2$ the top two eigenvectors of the covariance
$C = \frac{1}{N} \sum_i (f_i - \bar f)(f_i - \bar f)^\top$,

$$ z_i = \big(u_1^\top (f_i - \bar f),\; u_2^\top (f_i - \bar f)\big) \in \mathbb{R}^2 . $$

The projection is linear, so what is far apart along $u_1$ or $u_2$ stays far apart; but it keeps only
the share of the variance that those two directions carry, and points that differ along the other
directions land on top of each other.
''')

code(r'''
pca_feat, pca_f = features.pca(feats, return_model=True)
pca_pix, pca_p = features.pca(pixels, return_model=True)
print(f"variance kept by 2 components: features {pca_f.explained_variance_ratio_.sum():.2f}, "
      f"pixels {pca_p.explained_variance_ratio_.sum():.2f}")
plot.show_embeddings({"features (256-d), PCA": pca_feat, "raw pixels (12288-d), PCA": pca_pix}, labels,
                     data.CLASSES, suptitle=f"{bundle.name}: the 2000 test canvases, coloured by class")
''')

md(r'''
## t-SNE: keep the neighbours, not the distances
t-SNE {cite}`vandermaaten2008visualizing` does not project; it *places* a point $y_i$ in the plane for
every vector $x_i$ so that the neighbourhoods match. In the high-dimensional space each point picks
its neighbours with a Gaussian whose width $\sigma_i$ is set so that the *perplexity*
$2^{H(P_i)}$ (an effective number of neighbours) equals a chosen value; in the plane it uses a
heavy-tailed Student-t kernel:

$$ p_{j|i} = \frac{e^{-\lVert x_i - x_j \rVert^2 / 2\sigma_i^2}}{\sum_{l \neq i} e^{-\lVert x_i - x_l \rVert^2 / 2\sigma_i^2}},
   \quad p_{ij} = \frac{p_{j|i} + p_{i|j}}{2N}, \qquad
   q_{ij} = \frac{(1 + \lVert y_i - y_j \rVert^2)^{-1}}{\sum_{l \neq m} (1 + \lVert y_l - y_m \rVert^2)^{-1}}, $$

and moves the $y_i$ by gradient descent to minimise

$$ C = \mathrm{KL}(P \,\|\, Q) = \sum_{i \neq j} p_{ij} \log \frac{p_{ij}}{q_{ij}} . $$

A pair that is close in the data but far on the map (large $p_{ij}$, small $q_{ij}$) costs a lot; the
reverse costs little. So t-SNE keeps neighbourhoods and is free with everything else. We follow the
usual recipe: reduce to 50 dimensions with PCA first (this matters for the 12288 pixels), initialise
with PCA, fix the seed, and map the first 1000 canvases, 500 iterations each, to keep this cell fast.
''')

code(r'''
sub = slice(0, 1000)
t0 = time.perf_counter()
tsne_feat = features.tsne(feats[sub], perplexity=30, seed=0, max_iter=500)
tsne_pix = features.tsne(pixels[sub], perplexity=30, seed=0, max_iter=500)
print(f"two t-SNE maps of 1000 points: {time.perf_counter() - t0:.1f} s")
maps = {"features, t-SNE": tsne_feat, "raw pixels, t-SNE": tsne_pix}
plot.show_embeddings(maps, labels[sub], data.CLASSES, suptitle=f"{bundle.name}: t-SNE (perplexity 30) of 1000 test canvases")
''')

md(r'''
Colours are labels the maps never saw. The same maps with the canvases themselves drawn at their
positions (300 of them, framed in their class colour) show *what* the maps group together:
''')

code(r'''
plot.show_embeddings(maps, labels[sub], data.CLASSES, images=images[sub], thumbs=300, size=6.5,
                     suptitle="t-SNE maps with the first 300 canvases drawn at their positions")
''')

md(r'''
## The same with an ImageNet network
Online (Colab, or anywhere the torchvision weights can be downloaded) the same functions embed
images with VGG16's fc7 or ResNet-50's pooled features {cite}`simonyan2015very,he2016deep`. Our
canvases are upscaled to 224 pixels; the two networks never saw these classes, so the result says
how well ImageNet features *transfer* to them. To run the next cell, set `MODEL` at the top of the chapter (offline it is `None`, and the cell only says so).

''')

code(r"""
net = models.imagenet(MODEL)            # MODEL is set at the top: None offline, e.g. "vgg16" online
if net:
    x = lib.images.resize(images[:500], net.input_size)    # canvases upscaled to the network's input
    f = features.embed(net, x, batch_size=50)               # its feature layer: fc7 for VGG16, avgpool for ResNets
    nn, _ = features.nearest_neighbours(f, k=5)
    print(f"{net.name}: neighbour agreement {features.neighbour_agreement(nn, labels[:500]):.3f}")
    plot.show_embeddings({f"{net.name}, t-SNE": features.tsne(f)}, labels[:500], data.CLASSES,
                         images=images[:500], thumbs=200, size=6.5)
""", tags=["imagenet"])

md(r'''
On a GPU this takes seconds; on a CPU, minutes (VGG16 runs a few images per second at 224 pixels). Any layer can be
embedded by name (`layer="features.29"` for VGG16's conv5_3, flattened to 512 x 7 x 7 numbers).
''')

md(r'''
## What to notice
- The L2 distance between raw pixels is dominated by the background: pixel neighbours share a photo,
  a brightness, a colour, and their class agreement is close to chance. In feature space, neighbours
  share the item's class across colours, positions and backgrounds: the network has learned to be
  *invariant* to what a pixel distance sees first.
- Misclassified canvases are worth a look: their feature neighbours often belong to the class the
  network *predicted*, since the classifier is a linear function of these same vectors.
- PCA of the features already separates some classes along its two directions, but classes that
  differ along other directions pile up. PCA of the pixels mixes all classes: its main directions
  are those of the backgrounds.
- t-SNE gives each class of features its own region, and the regions that touch or mix are the
  classes the network confuses (for Fashion-MNIST usually the upper-body garments: T-shirt, Pullover,
  Coat, Shirt). In pixel space t-SNE groups canvases by background photo, which the thumbnails show.
- A t-SNE map keeps neighbourhoods, not distances: the size of a cluster and the gaps between
  clusters mean little {cite}`wattenberg2016how`, and another perplexity or seed gives another map.

## Exercises
1. Compute the neighbour-label agreement for $k = 1, 5, 20, 100$ in both spaces. How does it fall
   with $k$, and what does a 1-nearest-neighbour classifier on the features score compared with the
   network's own classifier?
2. Run `features.tsne(feats[sub], perplexity=p, max_iter=500)` for `p = 5` and `p = 100` and draw
   them beside perplexity 30 with `plot.show_embeddings`. Which structure survives every perplexity?
   Change `seed` too.
3. Embed an earlier layer: `features.embed(bundle, images[:500], layer="features.19")` gives the
   flattened 128 x 16 x 16 maps of stage 3. Compare its agreement with that of `layer="pool"` on the
   same 500 canvases, and with the spatial mean of the stage-3 maps
   (`.view(-1, 128, 16, 16).mean((2, 3))`). What does averaging over positions buy?
4. For the first 20 misclassified canvases, count how many of the 5 feature neighbours have the true
   class and how many the predicted class.
5. Online: run the ImageNet cell and compare the agreement of VGG16's fc7 and ResNet-50's pooled
   features with `gapnet`'s. Which classes do the ImageNet features separate without any training on
   them?

## References
- {cite}`cs231n2017lecture12`, sections "Last layer: nearest neighbours" and "Last layer:
  dimensionality reduction".
- {cite}`krizhevsky2012imagenet` (nearest neighbours in the last hidden layer of AlexNet, their figure 4).
- {cite}`vandermaaten2008visualizing` (t-SNE), {cite}`wattenberg2016how` (how to read t-SNE maps).
- {cite}`simonyan2015very` (VGG16), {cite}`he2016deep` (ResNet), {cite}`xiao2017fashion` (Fashion-MNIST).
''')

cells.write(OUT)
