"""What the API, the pages and the CLI all do with a loaded model: sample, score, search, project.

Pure domain code on top of `app.lm` and the registry (no FastAPI here): the JSON routers, the
HTML routers and the CLI call these functions with the parameters of app/params.py and only
translate the results. Input is validated here, once: a name or prefix is normalised once, and a
bad one raises `InvalidParam` naming the field (and the index in a list).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field

from app.lm import deadline as deadlines
from app.lm.embeddings import Neighbours, Projection, nearest, project
from app.lm.sampling import sample_scored
from app.lm.scoring import Step, score_names
from app.lm.search import most_probable
from app.lm.vocab import InvalidName
from app.params import MAX_SEED, InvalidParam, SampleParams, TopParams
from app.registry import LoadedModel

MAX_SAMPLE_DRAWS = 50  # bounded effort: at most this many times n (and >= 1000) names drawn


@dataclass
class SampledName:
    """A sampled name; also the API's (pydantic reads the descriptions)."""

    name: str
    log_prob: Annotated[float, Field(description="log P(name) under the model at temperature "
                                                 "1, the end token included")]
    nll_per_char: Annotated[float, Field(description="-log_prob / (letters + 1)")]
    in_training_set: bool


@dataclass(frozen=True)
class SampleResult:
    seed: int
    names: list[SampledName]
    exhausted: bool  # fewer than n names: too hard to find within the effort or time bound


def draw_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def normalized(m: LoadedModel, text: str, field: str, index: int | None = None,
               what: str = "name", allow_empty: bool = False) -> str:
    """`text` normalised for model `m`; InvalidParam naming the field, the bad characters and
    the allowed alphabet."""
    try:
        return m.model.vocab.normalize(text, what=what, allow_empty=allow_empty)
    except InvalidName as e:
        raise InvalidParam(field, str(e), text, index, "invalid_name") from None


def checked_prefix(m: LoadedModel, prefix: str, max_len: int) -> str:
    """The normalised prefix: in the model's alphabet and no longer than max_len (a longer
    one is an InvalidParam on max_len, never the sampler's ValueError)."""
    norm = normalized(m, prefix, "prefix", what="prefix", allow_empty=True)
    if len(norm) > max_len:
        raise InvalidParam("max_len", f"prefix {norm!r} is {len(norm)} letters long; max_len "
                                      f"({max_len}) must be at least the length of the prefix "
                                      f"({len(norm)} letters)", max_len)
    return norm


def sample_names(m: LoadedModel, p: SampleParams) -> SampleResult:
    """p.n names (fewer, with exhausted=True, when unique/exclude_training make n too hard,
    or when the deadline of the work in progress passes first: `app.lm.deadline`).

    What depends on the model is checked here: top_k at most the vocabulary size, the prefix
    (raw user input, normalised here) in its alphabet and no longer than max_len.
    One torch.Generator per call, seeded from `seed`: same parameters, same names, whatever
    else the process is doing (unless the deadline cuts it short).
    """
    V = len(m.model.vocab)
    if p.top_k is not None and p.top_k > V:
        raise InvalidParam("top_k", f"top-k must be between 1 and {V}: less than or equal to "
                                    f"{V}, the vocabulary size of model {m.name!r}, got "
                                    f"{p.top_k}",
                           p.top_k, type="less_than_equal", ctx={"le": V})
    prefix = checked_prefix(m, p.prefix, p.max_len)
    n, temperature, top_k, max_len = p.n, p.temperature, p.top_k, p.max_len
    unique, exclude_training = p.unique, p.exclude_training
    seed = draw_seed() if p.seed is None else p.seed
    gen = torch.Generator().manual_seed(seed)
    budget = max(1000, MAX_SAMPLE_DRAWS * n)
    kept: list[tuple[str, float]] = []
    seen: set[str] = set()
    drawn = 0
    filtering = unique or exclude_training
    deadline = deadlines.current()
    while len(kept) < n and drawn < budget and not deadlines.passed(deadline):
        want = n - len(kept)
        batch = want if not filtering else min(budget - drawn, max(64, 2 * want))
        names, lps = sample_scored(m.model, batch, gen, temperature=temperature, top_k=top_k,
                                   prefix=prefix, max_len=max_len, deadline=deadline)
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
    plausibility: float  # percentile among the training names (100 = more plausible than all)
    in_training_set: bool
    steps: list[Step]


def score(m: LoadedModel, names: list[str], field: str = "names",
          indexed: bool = True) -> list[NameScore]:
    """Score raw user input, in the order given; InvalidParam names the first bad one: its
    field and, for a list of names (indexed), its index."""
    normal = [normalized(m, x, field, i if indexed else None) for i, x in enumerate(names)]
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
        for raw, s in zip(names, score_names(m.model, normal), strict=True)
    ]


@dataclass(frozen=True)
class TopName:
    name: str
    log_prob: float

    @property
    def prob(self) -> float:
        return math.exp(self.log_prob)


def top_names(m: LoadedModel, p: TopParams) -> tuple[str, list[TopName], bool]:
    """The normalised prefix, the k most probable names with it (exact), and whether the
    effort bound or the deadline of the work in progress cut the search short."""
    prefix = checked_prefix(m, p.prefix, p.max_len)
    result = most_probable(m.model, p.k, prefix=prefix, max_len=p.max_len,
                           deadline=deadlines.current())
    return prefix, [TopName(n, lp) for n, lp in result.names], result.exhausted


@dataclass(frozen=True)
class EmbeddingView:
    labels: list[str]
    vectors: list[list[float]]
    projection: Projection
    neighbours: Neighbours

    @property
    def dim(self) -> int:
        return len(self.vectors[0])


class NoTable(LookupError):
    """The model has no such table (no bigram table, no embedding table)."""


def embedding_view(m: LoadedModel, dims: tuple[int, int] | None = None,
                   k: int = 3) -> EmbeddingView:
    table = m.model.embedding_table()
    if table is None:
        raise NoTable(f"model {m.name!r} ({m.meta.model_type}) has no embedding table")
    labels = m.model.vocab.itos
    return EmbeddingView(labels=labels, vectors=table.tolist(),
                         projection=project(table, dims), neighbours=nearest(table, labels, k))


def bigram_table(m: LoadedModel) -> tuple[list[str], list[list[float]] | None, list[list[float]]]:
    """(labels, counts or None, probs) for models that are bigrams; NoTable otherwise."""
    probs = m.model.bigram_probs()
    if probs is None:
        raise NoTable(f"model {m.name!r} ({m.meta.model_type}) has no bigram table")
    counts = m.model.bigram_counts()
    counts_list = None if counts is None else counts.round().long().tolist()
    return m.model.vocab.itos, counts_list, probs.tolist()
