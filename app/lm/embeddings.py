"""Views of a character embedding table: 2-D maps, cosine similarities, nearest neighbours.

A 2-D table is shown as it is. A wider one needs a map to two dimensions: PCA of the centred,
length-normalised vectors (directions, not lengths: a rare letter's long vector no longer
stretches the axes), or t-SNE (scikit-learn), which keeps each letter's nearest neighbours near.
Similarities are cosines of the centred vectors: the component every letter shares is removed
first, otherwise it dominates every cosine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

METHODS = ("raw", "pca", "tsne")


@dataclass(frozen=True)
class Projection:
    """Also the API's `projection` (app/api/schemas.py describes its fields)."""

    method: Literal["raw", "pca", "tsne"]  # 'raw': a 2-D embedding's coordinates, or two dims
    points: list[tuple[float, float]]  # one (x, y) per label
    explained_variance: list[float]  # share of the total variance along each axis (t-SNE: [])
    dims: tuple[int, int] | None = None  # the raw dimensions shown, for method 'raw'


def _centred(vectors: torch.Tensor) -> torch.Tensor:
    X = vectors.detach().double()
    return X - X.mean(dim=0, keepdim=True)


def project(vectors: torch.Tensor, dims: tuple[int, int] | None = None,
            method: str | None = None) -> Projection:
    """(V, D) -> 2-D points.

    method None: the raw coordinates when D == 2 or `dims` is given, PCA otherwise. 'pca':
    PCA of the centred vectors scaled to unit length (explained variance of those). 'tsne':
    t-SNE of the centred vectors by cosine distance (deterministic: PCA start, fixed seed).
    """
    X = vectors.detach().double()
    D = X.shape[1]
    if method is None:
        method = "raw" if dims is not None or D == 2 else "pca"
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "raw":
        dims = dims if dims is not None else (0, 1)
        i, j = dims
        if not (0 <= i < D and 0 <= j < D):
            raise ValueError(f"dimensions must be between 0 and {D - 1}, got {i} and {j}")
        var = X.var(dim=0, unbiased=False)
        total = var.sum().item() or 1.0
        return Projection("raw", [tuple(p) for p in X[:, [i, j]].tolist()],
                          [var[i].item() / total, var[j].item() / total], (i, j))
    if method == "tsne":
        return Projection("tsne", tsne(X), [])
    Xn = torch.nn.functional.normalize(_centred(X), dim=1)
    Xn = Xn - Xn.mean(dim=0, keepdim=True)
    total = Xn.var(dim=0, unbiased=False).sum().item() or 1.0
    _, S, Vt = torch.linalg.svd(Xn, full_matrices=False)
    # Fix each component's sign so the plot does not flip between runs/platforms.
    signs = torch.sign(Vt[:2].sum(dim=1, keepdim=True)).clamp_min(0) * 2 - 1
    pts = Xn @ (Vt[:2] * signs).T
    explained = (S[:2] ** 2 / X.shape[0] / total).tolist()
    return Projection("pca", [tuple(p) for p in pts.tolist()], explained)


def tsne(X: torch.Tensor, seed: int = 0) -> list[tuple[float, float]]:
    """t-SNE (scikit-learn) of the centred vectors by cosine distance, perplexity 5 (27 points)."""
    from sklearn.manifold import TSNE  # a second or so to import: only when a map is asked for
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    data = _centred(X).numpy()
    perplexity = float(min(5.0, max(1.0, (len(data) - 1) / 3)))
    # One thread: 27 points need no more, and scikit-learn's OpenMP team (another runtime than
    # torch's) on every core of a busy machine spun for seconds beside the model thread's.
    with threadpool_limits(limits=1):
        pts = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca",
                   random_state=seed, max_iter=2000).fit_transform(data)
    return [(float(x), float(y)) for x, y in pts]


def similarity(vectors: torch.Tensor) -> torch.Tensor:
    """(V, V) cosine similarities of the centred vectors."""
    X = torch.nn.functional.normalize(_centred(vectors), dim=1)
    return X @ X.T


def similarity_order(sim: torch.Tensor) -> list[int]:
    """An order of the rows that puts similar ones next to each other: the leaves of an
    average-linkage clustering by cosine distance, optimally ordered (scipy)."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    dist = (1 - sim.numpy()).clip(min=0)
    np.fill_diagonal(dist, 0)
    dist = (dist + dist.T) / 2
    tree = linkage(squareform(dist, checks=False), method="average", optimal_ordering=True)
    return [int(i) for i in leaves_list(tree)]


Neighbours = dict[str, list[tuple[str, float]]]


def nearest(vectors: torch.Tensor, labels: list[str], k: int = 3) -> Neighbours:
    """Each label's k nearest other labels by cosine similarity (centred), most similar first."""
    sim = similarity(vectors)
    sim.fill_diagonal_(-float("inf"))
    k = min(k, len(labels) - 1)
    vals, idx = sim.topk(k, dim=1)
    return {
        labels[i]: [(labels[j], round(v, 4)) for j, v in zip(idx[i].tolist(), vals[i].tolist(),
                                                              strict=True)]
        for i in range(len(labels))
    }
