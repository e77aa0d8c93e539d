"""What the API and the pages both do with a loaded model: sample, score, search, project.

Pure domain code on top of `app.lm` and the registry (no FastAPI here): the JSON routers and the
HTML routers call these functions and only translate the results.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any

import torch

from app.lm.embeddings import Neighbours, Projection, nearest, project
from app.lm.sampling import Steps, drive, sampler
from app.lm.scoring import Step, score_names
from app.lm.search import most_probable
from app.lm.vocab import InvalidName
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


def sample_names(m: LoadedModel, n: int, **options: Any) -> SampleResult:
    """n names (fewer, with exhausted=True, when unique/exclude_training make n too hard);
    `options` are sample_steps' (seed, temperature, top_k, prefix, max_len, unique,
    exclude_training).

    `prefix` is raw user input: it is normalised and checked here (InvalidName if bad).
    One torch.Generator per call, seeded from `seed`: same arguments, same names, whatever
    else the process is doing.
    """
    (result,) = sample_many(m, [dict(n=n, **options)])
    if isinstance(result, Exception):
        raise result
    return result


def sample_many(m: LoadedModel, requests: list[dict]) -> list[SampleResult | Exception]:
    """sample_names(m, **kwargs) for each of `requests`, with one forward pass per step for
    all of them; each result is what the request alone gives (or the exception it raised)."""
    return drive(m.model, [sample_steps(m, **kwargs) for kwargs in requests])


def sample_steps(
    m: LoadedModel,
    n: int,
    seed: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: str = "",
    max_len: int = 32,
    unique: bool = False,
    exclude_training: bool = False,
) -> Steps[SampleResult]:
    """sample_names as steps for app.lm.sampling.drive."""
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
        names, lps = yield from sampler(m.model, batch, gen, temperature=temperature,
                                        top_k=top_k, prefix=prefix, max_len=max_len)
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


def score(m: LoadedModel, names: list[str]) -> list[NameScore]:
    """Score raw user input, in the order given; InvalidName names the first bad one."""
    normalized = [m.model.vocab.normalize(x) for x in names]
    return _scores(m, names, normalized)


def score_many(m: LoadedModel, requests: list[list[str]]) -> list[list[NameScore] | Exception]:
    """score(m, names) for each list of `requests`, in one forward pass for all of them; each
    result is what the request alone gives (or its InvalidName)."""
    results: list[list[NameScore] | Exception] = []
    valid: list[tuple[int, list[str], list[str]]] = []  # (request, raw, normalised)
    for i, names in enumerate(requests):
        try:
            valid.append((i, names, [m.model.vocab.normalize(x) for x in names]))
            results.append([])
        except InvalidName as e:
            results.append(e)
    raw = [x for _, names, _ in valid for x in names]
    scored = iter(_scores(m, raw, [x for _, _, norm in valid for x in norm]))
    for i, names, _ in valid:
        results[i] = [next(scored) for _ in names]
    return results


def _scores(m: LoadedModel, names: list[str], normalized: list[str]) -> list[NameScore]:
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
