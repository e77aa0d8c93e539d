"""Views of a character embedding table: a 2-D projection and nearest neighbours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch


@dataclass(frozen=True)
class Projection:
    """Also the API's `projection` (app/api/schemas.py describes its fields)."""

    method: Literal["raw", "pca"]  # 'raw': a 2-D embedding's coordinates, or two chosen dims
    points: list[tuple[float, float]]  # one (x, y) per label
    explained_variance: list[float]  # fraction of the total variance along each axis
    dims: tuple[int, int] | None = None  # the raw dimensions shown, for method 'raw'


def project(vectors: torch.Tensor, dims: tuple[int, int] | None = None) -> Projection:
    """(V, D) -> 2-D points: the raw coordinates when D == 2 or `dims` is given, PCA otherwise."""
    X = vectors.detach().double()
    total = X.var(dim=0, unbiased=False).sum().item() or 1.0
    if dims is None and X.shape[1] == 2:
        dims = (0, 1)
    if dims is not None:
        i, j = dims
        D = X.shape[1]
        if not (0 <= i < D and 0 <= j < D):
            raise ValueError(f"dimensions must be between 0 and {D - 1}, got {i} and {j}")
        var = X.var(dim=0, unbiased=False)
        pts = X[:, [i, j]]
        return Projection("raw", [tuple(p) for p in pts.tolist()],
                          [var[i].item() / total, var[j].item() / total], (i, j))
    Xc = X - X.mean(dim=0, keepdim=True)
    _, S, Vt = torch.linalg.svd(Xc, full_matrices=False)
    # Fix each component's sign so the plot does not flip between runs/platforms.
    signs = torch.sign(Vt[:2].sum(dim=1, keepdim=True)).clamp_min(0) * 2 - 1
    comps = Vt[:2] * signs
    pts = Xc @ comps.T
    explained = (S[:2] ** 2 / X.shape[0] / total).tolist()
    return Projection("pca", [tuple(p) for p in pts.tolist()], explained)


Neighbours = dict[str, list[tuple[str, float]]]


def nearest(vectors: torch.Tensor, labels: list[str], k: int = 3) -> Neighbours:
    """Each label's k nearest other labels by cosine similarity, most similar first."""
    X = torch.nn.functional.normalize(vectors.detach().double(), dim=1)
    sim = X @ X.T
    sim.fill_diagonal_(-float("inf"))
    k = min(k, len(labels) - 1)
    vals, idx = sim.topk(k, dim=1)
    return {
        labels[i]: [(labels[j], round(v, 4)) for j, v in zip(idx[i].tolist(), vals[i].tolist(),
                                                              strict=True)]
        for i in range(len(labels))
    }
