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
from app.lm.base import LanguageModel
from app.lm.embeddings import (
    Neighbours,
    Projection,
    nearest,
    project,
    similarity,
    similarity_order,
)
from app.lm.sampling import Draw, Steps, drive, group_sampler, sampler
from app.lm.scoring import Step, score_names
from app.lm.search import most_probable
from app.lm.vocab import InvalidName
from app.params import MAX_SEED, InvalidParam, SampleParams, TopParams
from app.registry import LoadedModel

IN_DATA = ("the name is in the model's data: its training split or its held-out names (what "
           "'known name' means on the pages, and what exclude_training leaves out)")
IN_TRAINING = "the name is in the model's training split (80% of its data)"
MAX_SAMPLE_DRAWS = 50  # bounded effort: at most this many times n (and >= 1000) names drawn


@dataclass
class SampledName:
    """A sampled name; also the API's (pydantic reads the descriptions)."""

    name: str
    log_prob: Annotated[float, Field(description="log P(name) under the model at temperature "
                                                 "1, the end token included")]
    nll_per_char: Annotated[float, Field(description="-log_prob / (letters + 1)")]
    in_data: Annotated[bool, Field(description=IN_DATA)]
    in_training_set: Annotated[bool, Field(description=IN_TRAINING)]


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


def checked_sample(m: LoadedModel, p: SampleParams) -> str:
    """What of p depends on the model, checked: top_k at most the vocabulary size, the prefix
    in its alphabet and no longer than max_len (InvalidParam if not). The prefix, normalised."""
    V = len(m.model.vocab)
    if p.top_k is not None and p.top_k > V:
        raise InvalidParam("top_k", f"top-k must be between 1 and {V}: less than or equal to "
                                    f"{V}, the vocabulary size of model {m.name!r}, got "
                                    f"{p.top_k}",
                           p.top_k, type="less_than_equal", ctx={"le": V})
    return checked_prefix(m, p.prefix, p.max_len)


def sample_names(m: LoadedModel, p: SampleParams) -> SampleResult:
    """p.n names (fewer, with exhausted=True, when unique/exclude_training make n too hard,
    or when the deadline of the work in progress passes first: `app.lm.deadline`).

    What depends on the model is checked here: top_k at most the vocabulary size, the prefix
    (raw user input, normalised here) in its alphabet and no longer than max_len.
    One torch.Generator per call, seeded from `seed`: same parameters, same names, whatever
    else the process is doing (unless the deadline cuts it short).
    """
    (result,) = sample_many(m, [p])
    if isinstance(result, Exception):
        raise result
    return result


def sample_many(m: LoadedModel, requests: list[SampleParams],
                each: list[deadlines.Deadline | None] | None = None,
                ) -> list[SampleResult | Exception]:
    """sample_names(m, p) for each of `requests`, driven together (app.lm.sampling.drive: one
    forward pass per step for all when the model's decoder is the base window one); each result
    is what the request alone gives (or the InvalidParam it raised). Request i checks its own
    deadline `each[i]` (by default the deadline of the work in progress) before every step and
    stops there with the names it has.

    Where the model shares its forward pass (`shares_sampling`), requests with the same options
    and no filtering (unique, exclude_training: those draw again until they have n names) are one
    `group_sampler`: their names also share each step's arithmetic."""
    if each is None:
        each = [deadlines.current()] * len(requests)
    results: list[SampleResult | Exception | None] = [None] * len(requests)
    runs: list[Steps[list[SampleResult]]] = []
    slots: list[list[int]] = []  # the requests each run serves
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(requests):
        if p.unique or p.exclude_training or not shares_sampling(m.model):
            runs.append(_one(sample_steps(m, p, each[i])))
            slots.append([i])
            continue
        try:
            prefix = checked_sample(m, p)
        except InvalidParam as e:
            results[i] = e
            continue
        groups.setdefault((p.temperature, p.top_k, prefix, p.max_len), []).append(i)
    for (temperature, top_k, prefix, max_len), members in groups.items():
        seeds = [draw_seed() if requests[i].seed is None else requests[i].seed for i in members]
        draws = [Draw(requests[i].n, torch.Generator().manual_seed(seed), each[i])
                 for i, seed in zip(members, seeds, strict=True)]
        run = group_sampler(m.model, draws, temperature=temperature, top_k=top_k,
                            prefix=prefix, max_len=max_len)
        runs.append(_results(m, run, seeds, [requests[i].n for i in members]))
        slots.append(members)
    for members, got in zip(slots, drive(m.model, runs), strict=True):
        for k, i in enumerate(members):
            results[i] = got if isinstance(got, Exception) else got[k]
    return results


def shares_sampling(model: LanguageModel) -> bool:
    """Whether concurrent requests may share sampling steps: the model's rows are independent
    of the batch, and it samples through the base window Decoder (which `drive` batches)."""
    return model.rows_independent and type(model).decoder is LanguageModel.decoder


def _one(steps: Steps[SampleResult]) -> Steps[list[SampleResult]]:
    return [(yield from steps)]


def _results(m: LoadedModel, run: Steps[list[tuple[list[str], list[float]]]],
             seeds: list[int], wanted: list[int]) -> Steps[list[SampleResult]]:
    drawn = yield from run
    return [_sample_result(m, seed, list(zip(names, lps, strict=True)),
                           exhausted=len(names) < n)
            for seed, n, (names, lps) in zip(seeds, wanted, drawn, strict=True)]


def sample_steps(m: LoadedModel, p: SampleParams,
                 deadline: deadlines.Deadline | None = None) -> Steps[SampleResult]:
    """sample_names as steps for app.lm.sampling.drive, bounded by `deadline`."""
    prefix = checked_sample(m, p)
    n, temperature, top_k, max_len = p.n, p.temperature, p.top_k, p.max_len
    unique, exclude_training = p.unique, p.exclude_training
    seed = draw_seed() if p.seed is None else p.seed
    gen = torch.Generator().manual_seed(seed)
    budget = max(1000, MAX_SAMPLE_DRAWS * n)
    kept: list[tuple[str, float]] = []
    seen: set[str] = set()
    drawn = 0
    filtering = unique or exclude_training
    while len(kept) < n and drawn < budget and not deadlines.passed(deadline):
        want = n - len(kept)
        batch = want if not filtering else min(budget - drawn, max(64, 2 * want))
        names, lps = yield from sampler(m.model, batch, gen, temperature=temperature,
                                        top_k=top_k, prefix=prefix, max_len=max_len,
                                        deadline=deadline)
        drawn += batch
        for name, lp in zip(names, lps, strict=True):
            if exclude_training and name in m.data_set:
                continue
            if unique and name in seen:
                continue
            seen.add(name)
            kept.append((name, lp))
            if len(kept) == n:
                break
    return _sample_result(m, seed, kept, exhausted=len(kept) < n)


def _sample_result(m: LoadedModel, seed: int, kept: list[tuple[str, float]],
              exhausted: bool) -> SampleResult:
    return SampleResult(
        seed=seed,
        names=[
            SampledName(name=x, log_prob=lp, nll_per_char=-lp / (len(x) + 1),
                        in_data=x in m.data_set, in_training_set=x in m.training_set)
            for x, lp in kept
        ],
        exhausted=exhausted,
    )


@dataclass
class NameScore:
    name: str  # as given
    normalized: str  # what was scored
    log_prob: float
    nll_per_char: float
    perplexity: float
    plausibility: float | None  # percentile among held-out names; None: see m.plausibility.reason
    in_data: bool  # in the model's data (training split or held out)
    in_training_set: bool  # in its training split
    steps: list[Step]


def normalized_all(m: LoadedModel, names: list[str], field: str = "names",
                   indexed: bool = True) -> list[str]:
    """The names normalised; InvalidParam names the first bad one: its field and, for a list
    of names (indexed), its index."""
    return [normalized(m, x, field, i if indexed else None) for i, x in enumerate(names)]


def split_valid(m: LoadedModel, names: list[str],
                field: str = "names") -> tuple[list[str], list[InvalidParam]]:
    """The names that can be scored under m (as given) and an InvalidParam for each of the
    others, naming its index: one bad name does not cost the rest (API, page and CLI)."""
    good, bad = [], []
    for i, x in enumerate(names):
        try:
            normalized(m, x, field, i)
            good.append(x)
        except InvalidParam as e:
            bad.append(e)
    return good, bad


def score(m: LoadedModel, names: list[str], field: str = "names",
          indexed: bool = True) -> list[NameScore]:
    """Score raw user input, in the order given; InvalidParam names the first bad one: its
    field and, for a list of names (indexed), its index."""
    return _scores(m, names, normalized_all(m, names, field, indexed))


def score_many(m: LoadedModel, requests: list[list[str]]) -> list[list[NameScore] | Exception]:
    """score(m, names) for each list of `requests`, in one pass for all of them (through
    `model.word_logits`) when the model's rows are independent of the batch, else one by one;
    each result is what the request alone gives (or its InvalidParam).
    The routes check the names first (with their own field names): see app/batching.py."""
    if not m.model.rows_independent:  # a word's logits could depend on the others: one by one
        return [_score_or_error(m, names) for names in requests]
    results: list[list[NameScore] | Exception] = []
    valid: list[tuple[int, list[str], list[str]]] = []  # (request, raw, normalised)
    for i, names in enumerate(requests):
        try:
            valid.append((i, names, normalized_all(m, names)))
            results.append([])
        except InvalidParam as e:
            results.append(e)
    raw = [x for _, names, _ in valid for x in names]
    scored = iter(_scores(m, raw, [x for _, _, norm in valid for x in norm]))
    for i, names, _ in valid:
        results[i] = [next(scored) for _ in names]
    return results


def _score_or_error(m: LoadedModel, names: list[str]) -> list[NameScore] | Exception:
    try:
        return score(m, names)
    except InvalidParam as e:
        return e


def _scores(m: LoadedModel, names: list[str], normal: list[str]) -> list[NameScore]:
    return [
        NameScore(
            name=raw,
            normalized=s.name,
            log_prob=s.log_prob,
            nll_per_char=s.nll_per_char,
            perplexity=s.perplexity,
            plausibility=m.plausibility.percentile(s.nll_per_char, len(s.name)),
            in_data=s.name in m.data_set,
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
