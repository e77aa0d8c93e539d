"""What the API and the pages both do with a loaded model: sample, score, search, project.

Pure domain code on top of `app.lm` and the registry (no FastAPI here): the JSON routers and the
HTML routers call these functions and only translate the results.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import torch

from app.lm.embeddings import (
    Neighbours,
    Projection,
    nearest,
    project,
    similarity,
    similarity_order,
)
from app.lm.sampling import sample_scored
from app.lm.scoring import Step, score_names
from app.lm.search import most_probable
from app.registry import LoadedModel

MAX_SAMPLE_DRAWS = 50  # bounded effort: at most this many times n (and >= 1000) names drawn
MAX_SEED = 2**32 - 1


@dataclass
class SampledName:
    name: str
    log_prob: float  # under the model at temperature 1, end token included
    nll_per_char: float
    in_training_set: bool


@dataclass(frozen=True)
class SampleResult:
    seed: int
    names: list[SampledName]
    exhausted: bool  # fewer than n names: the constraints made more too hard to find


def draw_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def sample_names(
    m: LoadedModel,
    n: int,
    seed: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: str = "",
    max_len: int = 32,
    unique: bool = False,
    exclude_training: bool = False,
) -> SampleResult:
    """n names (fewer, with exhausted=True, when unique/exclude_training make n too hard).

    `prefix` is raw user input: it is normalised and checked here (InvalidName if bad).
    One torch.Generator per call, seeded from `seed`: same arguments, same names, whatever
    else the process is doing.
    """
    seed = draw_seed() if seed is None else seed
    prefix = m.model.vocab.normalize(prefix, what="prefix", allow_empty=True)
    gen = torch.Generator().manual_seed(seed)
    budget = max(1000, MAX_SAMPLE_DRAWS * n)
    kept: list[tuple[str, float]] = []
    seen: set[str] = set()
    drawn = 0
    filtering = unique or exclude_training
    while len(kept) < n and drawn < budget:
        want = n - len(kept)
        batch = want if not filtering else min(budget - drawn, max(64, 2 * want))
        names, lps = sample_scored(m.model, batch, gen, temperature=temperature, top_k=top_k,
                                   prefix=prefix, max_len=max_len)
        drawn += batch
        for name, lp in zip(names, lps, strict=True):
            if exclude_training and name in m.training_set:
                continue
            if unique and name in seen:
                continue
            seen.add(name)
            kept.append((name, lp))
            if len(kept) == n:
                break
    return SampleResult(
        seed=seed,
        names=[
            SampledName(name=x, log_prob=lp, nll_per_char=-lp / (len(x) + 1),
                        in_training_set=x in m.training_set)
            for x, lp in kept
        ],
        exhausted=len(kept) < n,
    )


@dataclass
class NameScore:
    name: str  # as given
    normalized: str  # what was scored
    log_prob: float
    nll_per_char: float
    perplexity: float
    plausibility: float | None  # percentile among held-out names; None: see m.plausibility.reason
    in_training_set: bool
    steps: list[Step]


def score(m: LoadedModel, names: list[str]) -> list[NameScore]:
    """Score raw user input, in the order given; InvalidName names the first bad one."""
    normalized = [m.model.vocab.normalize(x) for x in names]
    return [
        NameScore(
            name=raw,
            normalized=s.name,
            log_prob=s.log_prob,
            nll_per_char=s.nll_per_char,
            perplexity=s.perplexity,
            plausibility=m.plausibility.percentile(s.nll_per_char),
            in_training_set=s.name in m.training_set,
            steps=s.steps,
        )
        for raw, s in zip(names, score_names(m.model, normalized), strict=True)
    ]


@dataclass(frozen=True)
class TopName:
    name: str
    log_prob: float

    @property
    def prob(self) -> float:
        return math.exp(self.log_prob)


def top_names(m: LoadedModel, k: int, prefix: str = "",
              max_len: int = 32) -> tuple[list[TopName], bool]:
    """The k most probable names (exact), and whether the effort bound cut the search short."""
    prefix = m.model.vocab.normalize(prefix, what="prefix", allow_empty=True)
    result = most_probable(m.model, k, prefix=prefix, max_len=max_len)
    return [TopName(n, lp) for n, lp in result.names], result.exhausted


@dataclass(frozen=True)
class EmbeddingView:
    labels: list[str]
    vectors: list[list[float]]
    projection: Projection
    neighbours: Neighbours
    similarity: list[list[float]]  # cosine similarities of the centred vectors, (V, V)
    order: list[int]  # label indices with similar letters next to each other

    @property
    def dim(self) -> int:
        return len(self.vectors[0])


class NoTable(LookupError):
    """The model has no such table (no bigram table, no embedding table)."""


def embedding_view(m: LoadedModel, dims: tuple[int, int] | None = None, k: int = 3,
                   method: str | None = None) -> EmbeddingView:
    """The table, one 2-D map of it (see lm.embeddings.project), neighbours and similarities.

    Maps that take work (t-SNE, the clustering order) are computed once per model and kept.
    """
    table = m.model.embedding_table()
    if table is None:
        raise NoTable(f"model {m.name!r} ({m.meta.model_type}) has no embedding table")
    labels = m.model.vocab.itos
    if method == "tsne":
        if "tsne" not in m.derived:
            m.derived["tsne"] = project(table, method="tsne")
        proj = m.derived["tsne"]
    else:
        proj = project(table, dims, method)
    if "similarity" not in m.derived:
        sim = similarity(table)
        m.derived["similarity"] = (sim.tolist(), similarity_order(sim))
    sim_list, order = m.derived["similarity"]
    return EmbeddingView(labels=labels, vectors=table.tolist(), projection=proj,
                         neighbours=nearest(table, labels, k), similarity=sim_list, order=order)


def bigram_table(m: LoadedModel) -> tuple[list[str], list[list[float]] | None, list[list[float]]]:
    """(labels, counts or None, probs) for models that are bigrams; NoTable otherwise."""
    probs = m.model.bigram_probs()
    if probs is None:
        raise NoTable(f"model {m.name!r} ({m.meta.model_type}) has no bigram table")
    counts = m.model.bigram_counts()
    counts_list = None if counts is None else counts.round().long().tolist()
    return m.model.vocab.itos, counts_list, probs.tolist()
