"""The last layer as a feature space (chapter 2): embeddings, nearest neighbours, PCA and t-SNE.

- ``embed(bundle, images, layer=None)``: one feature vector per image, the output of a named layer
  (default: the bundle's ``features`` layer, the input of the classifier: gapnet's GAP ``pool``,
  VGG16's fc7 ``classifier.4``, ResNet's ``avgpool``), flattened, in batches.
- ``nearest_neighbours(x, k)``: the k nearest rows by L2 distance (scikit-learn), each point
  excluded from its own neighbours; ``neighbour_agreement`` scores them against the labels.
- ``pca(x)`` and ``tsne(x)``: 2-D maps of any N x D tensor (features or raw pixels), deterministic.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..hooks import frozen, output_of, resolve_layer

__all__ = ["embed", "nearest_neighbours", "neighbour_agreement", "pca", "tsne"]


def _as_numpy(x: torch.Tensor | np.ndarray, dtype=np.float64) -> np.ndarray:
    """N x ... -> N x D numpy (float64 by default: it keeps distances and rankings stable across CPUs)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=dtype)
    return x.reshape(len(x), -1)


@torch.no_grad()
def embed(bundle, images: torch.Tensor, layer: str | nn.Module | None = None, batch_size: int = 250,
          progress: bool = False) -> torch.Tensor:
    """Feature vectors of display-space ``images`` (N x 3 x H x W in [0, 1]): an N x D CPU tensor.

    ``layer``: a ``named_modules()`` name (or module) whose output is the feature; default the
    bundle's ``features`` layer (the input of the classifier: gapnet's ``pool``, VGG16's fc7
    ``classifier.4``, ResNet's ``avgpool``). Whatever the layer gives is flattened per image
    (a C x h x w map becomes C*h*w numbers). The forward pass stops right after the layer (its
    first call), in eval mode, ``batch_size`` images at a time.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    name, module = resolve_layer(bundle.model, bundle.layer("features") if layer is None else layer)
    chunks = []
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc=f"embed ({name})", unit="batch")
    with frozen(bundle.model):
        for start in starts:
            x = bundle.preprocess(images[start:start + batch_size].to(bundle.device))
            chunks.append(output_of(bundle.model, module, x).flatten(1).float().cpu())
    if not chunks:
        raise ValueError("no images to embed (an empty batch)")
    return torch.cat(chunks)


def nearest_neighbours(x: torch.Tensor, k: int = 5,
                       queries: int | Sequence[int] | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest rows of ``x`` (N x ..., flattened per row) by L2 distance, self excluded.

    ``queries``: row indices of ``x`` to look up (default: every row). Returns (indices, distances),
    both Q x k CPU tensors, nearest first. A query is never its own neighbour, even when other
    rows are identical to it. Uses scikit-learn's exact (brute-force) search in float64.
    """
    from sklearn.neighbors import NearestNeighbors

    X = _as_numpy(x)
    if not 1 <= k < len(X):
        raise ValueError(f"k must be between 1 and {len(X) - 1} (the number of other points), not {k}")
    search = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(X)
    if queries is None:
        dist, idx = search.kneighbors()          # no X: each point is left out of its own neighbours
    else:
        q = torch.as_tensor(queries, dtype=torch.long).reshape(-1).numpy()
        n = min(k + 1, len(X))
        d_all, i_all = search.kneighbors(X[q], n_neighbors=n)
        keep = i_all != q[:, None]               # drop the query itself, wherever duplicates put it
        keep[keep.sum(1) > k, -1] = False        # query not found among them: drop the farthest instead
        idx, dist = i_all[keep].reshape(len(q), k), d_all[keep].reshape(len(q), k)
    return torch.from_numpy(idx).long(), torch.from_numpy(dist).float()


def neighbour_agreement(neighbours: torch.Tensor, labels: torch.Tensor,
                        queries: Sequence[int] | torch.Tensor | None = None) -> float:
    """Fraction of neighbours that share their query's label: mean over queries i and their k
    neighbours j of [y_j == y_i].

    ``neighbours``: Q x k indices from ``nearest_neighbours`` (query excluded); ``labels``: the N
    labels; ``queries``: the Q query indices (default: all N points, in order).
    """
    neighbours = torch.as_tensor(neighbours, dtype=torch.long)
    labels = torch.as_tensor(labels).reshape(-1)
    if queries is None and len(neighbours) != len(labels):
        raise ValueError(f"{len(neighbours)} rows of neighbours for {len(labels)} labels: pass the query "
                         f"indices (queries=...) when the neighbours are not those of every point")
    q = torch.arange(len(neighbours)) if queries is None else torch.as_tensor(queries, dtype=torch.long).reshape(-1)
    if len(q) != len(neighbours):
        raise ValueError(f"{len(neighbours)} rows of neighbours but {len(q)} queries: pass one query index per row")
    return (labels[neighbours] == labels[q][:, None]).double().mean().item()


def pca(x: torch.Tensor, n_components: int = 2, seed: int = 0, return_model: bool = False):
    """Project ``x`` (N x ..., flattened per row) on its first ``n_components`` principal axes.

    Returns an N x n_components CPU tensor (and the fitted scikit-learn ``PCA`` with
    ``return_model=True``, e.g. for its ``explained_variance_ratio_``). Deterministic for a ``seed``.
    """
    from sklearn.decomposition import PCA

    model = PCA(n_components=n_components, random_state=seed)
    z = torch.from_numpy(model.fit_transform(_as_numpy(x, np.float32))).float()   # float32: half the time
    return (z, model) if return_model else z


def tsne(x: torch.Tensor, perplexity: float = 30.0, seed: int = 0, pca_dims: int | None = 50,
         n_components: int = 2, threads: int | None = 1, **kwargs) -> torch.Tensor:
    """t-SNE map of ``x`` (N x ..., flattened per row): an N x n_components CPU tensor.

    Follows the usual recipe (van der Maaten & Hinton 2008): PCA to ``pca_dims`` dimensions first
    (None: skip; it speeds up raw pixels a lot and removes noise), PCA initialisation, a fixed
    ``seed``. ``perplexity`` is the effective number of neighbours each point keeps; it must be
    smaller than the number of points. ``threads``: OpenMP threads for the gradient (None: all);
    one is the default because for a few thousand points the threads' per-step synchronisation
    costs more than it saves (4x slower with 2 threads on a busy 2-core CPU, measured). Other
    ``kwargs`` go to ``sklearn.manifold.TSNE`` (e.g. ``max_iter``, default 1000).
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    X = _as_numpy(x, np.float32)
    if not 0 < perplexity < len(X):
        raise ValueError(f"perplexity must be positive and smaller than the number of points ({len(X)}), "
                         f"not {perplexity}")
    if pca_dims is not None and X.shape[1] > pca_dims and len(X) > pca_dims:
        X = pca(X, pca_dims, seed=seed).numpy()
    X = X.astype(np.float64)
    opts = dict(init="pca", learning_rate="auto", random_state=seed)
    opts.update(kwargs)
    with threadpool_limits(limits=threads, user_api="openmp"):
        z = TSNE(n_components=n_components, perplexity=perplexity, **opts).fit_transform(X)
    return torch.from_numpy(np.ascontiguousarray(z)).float()
