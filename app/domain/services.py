"""What the API, the pages and the CLI all do with a loaded model: sample, score, search, project.

Pure domain code on top of `app.lm` and the registry (no FastAPI here): the JSON routers, the
HTML routers and the CLI call these functions with the parameters of app/domain/params.py and only
translate the results. Input is validated here, once: a name or prefix is normalised once, and a
bad one raises `InvalidParam` naming the field (and the index in a list).
"""

from __future__ import annotations

import functools
import hashlib
import math
import secrets
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Annotated

import torch
from pydantic import Field

from app.data.decades import DECADES, SEXES
from app.domain import cost
from app.domain.era import BadPrior, Era, Prior, eras
from app.domain.params import MAX_LEN, MAX_SEED, MAX_TOP, InvalidParam, SampleParams, TopParams
from app.lm import KINDS, constraints
from app.lm import deadline as deadlines
from app.lm.base import LanguageModel
from app.lm.constraints import Constraint, ConstraintError
from app.lm.embeddings import (
    Neighbours,
    Projection,
    nearest,
    project,
    similarity,
    similarity_order,
)
from app.lm.fitting_search import most_probable_fitting
from app.lm.sampling import (
    Draw,
    Drawn,
    Knobs,
    SamplingOptions,
    Steps,
    drive_steps,
    exact_kind,
    finish,
    group_sampler,
    sampler,
)
from app.lm.scoring import Step, score_names
from app.lm.search import SearchResult, most_probable
from app.lm.vocab import InvalidName, Vocab
from app.store.registry import LoadedModel

IN_DATA = ("the name is in the model's data: its training split or its held-out names (what "
           "'known name' means on the pages, and what exclude_training leaves out)")
IN_TRAINING = "the name is in the model's training split (80% of its data)"
MAX_SAMPLE_DRAWS = 50  # bounded effort: at most this many times n names drawn
MIN_SAMPLE_DRAWS = 1000  # (or this many if more)
# Names that fit a rare constraint take 1 / mass draws each (rejection, for the neural kinds):
# at most this many draws a request (and MAX_SAMPLE_DRAWS * n if more), by count, so the same
# request gets the same names on any machine; the deadline is the safety net.
MAX_CONSTRAINED_DRAWS = 20_000
MAX_ROUND = 4096  # draws per round of rejection (a round's rows go through each step together)
DRAWS_BOUND = f"max({MIN_SAMPLE_DRAWS}, {MAX_SAMPLE_DRAWS}n)"  # in words: API schema, docs/api.md
CONSTRAINED_DRAWS_BOUND = f"max({MAX_CONSTRAINED_DRAWS:,}, {MAX_SAMPLE_DRAWS}n)"


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
    timed_out: bool = False  # the deadline (a safety net) stopped it: the names depend on the load
    drawn: int = 0  # names drawn from the model (at the request's knobs)
    fits: int = 0  # of those, the names that fit the constraints (before unique/exclude)
    constraint_mass: float | None = None  # P(a draw fits): exact, or fits / drawn
    mass_exact: bool = False  # constraint_mass computed exactly (an exact kind), not estimated
    constraint: Constraint | None = field(default=None, compare=False)  # what the names fit


def draw_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def round_generator(seed: int, r: int) -> torch.Generator:
    """The generator of a request's r-th round of draws: the seed itself for the first, so an
    unfiltered request draws as it always did, then one derived from (seed, r). A round's names
    then depend only on the request, never on how its rounds were batched with others."""
    if r == 0:
        return torch.Generator().manual_seed(seed)
    digest = hashlib.blake2b(f"namelab:{seed}:{r}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


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


def checked_constraint(m: LoadedModel, p: SampleParams | TopParams) -> Constraint:
    """The request's Constraint (app/lm/constraints.py): prefix, suffix and contains
    normalised and in the model's alphabet, min_len <= max_len, the pattern compiled within
    its bounds, and some name able to fit; InvalidParam naming the field otherwise."""
    prefix = checked_prefix(m, p.prefix, p.max_len)
    suffix = normalized(m, p.suffix, "suffix", what="suffix", allow_empty=True)
    contains = normalized(m, p.contains, "contains", what="contains", allow_empty=True)
    if p.min_len > p.max_len:
        raise InvalidParam("min_len", f"min length ({p.min_len}) must be at most max length "
                                      f"({p.max_len})", p.min_len)
    try:
        return _constraint(str(m.model.vocab), prefix, suffix, contains, p.pattern, p.min_len,
                           p.max_len)
    except ConstraintError as e:
        raise InvalidParam(e.field, str(e), getattr(p, e.field), type="value_error") from None


@functools.lru_cache(maxsize=256)
def _constraint(vocab: str, *fields) -> Constraint:
    """Compiled once per vocabulary and fields: the routes check a request before it joins a
    batch, and the sampler then uses the same automaton."""
    return constraints.build(Vocab.from_string(vocab), *fields)


def checked_top_k(m: LoadedModel, top_k: int | None) -> None:
    """top_k at most the model's vocabulary size (InvalidParam if not)."""
    V = len(m.model.vocab)
    if top_k is not None and top_k > V:
        raise InvalidParam("top_k", f"top-k must be between 1 and {V}: less than or equal to "
                                    f"{V}, the vocabulary size of model {m.name!r}, got "
                                    f"{top_k}",
                           top_k, type="less_than_equal", ctx={"le": V})


def checked_sample(m: LoadedModel, p: SampleParams) -> SamplingOptions:
    """What of p depends on the model, checked: top_k at most the vocabulary size, the text
    fields in its alphabet, the constraints possible, n draws within the request budget
    (app/domain/cost.py; InvalidParam if not). What the sampler takes: p's knobs and its
    Constraint."""
    checked_top_k(m, p.top_k)
    c = checked_constraint(m, p)
    cost.check(p.n * cost.draw_flops(m.model, c.prefix, p.max_len), "n", p.n,
               f"sampling {p.n} names of up to {p.max_len} letters after a prefix of "
               f"{len(c.prefix)} from model {m.name!r}")
    return SamplingOptions.of(p, constraint=c)


def conditional_kinds() -> str:
    """The kinds that take a decade and a sex, in words: 'conditional'."""
    return ", ".join(k.name for k in KINDS.values() if k.has_conditions)


def under_condition(m: LoadedModel, decade: int | None, sex: str | None,
                    field: str = "decade") -> LoadedModel:
    """m under a condition (decade, sex; None: any) as a served model of its own (kept in
    m.derived, so requests of one condition are batched together); m itself without one.
    InvalidParam naming the field and the kinds that take it for a model of another kind."""
    if decade is None and sex is None:
        return m
    if not m.kind.has_conditions:
        name, value = (field, decade) if decade is not None else ("sex", sex)
        raise InvalidParam(name, f"{name} is taken only by models of kind "
                                 f"{conditional_kinds()}; {m.name!r} is {m.kind.title} "
                                 f"({m.kind.name})", value)
    key = ("condition", decade, sex)
    if key not in m.derived:
        view = m.model.conditioned(None if decade is None else DECADES.index(decade),
                                   None if sex is None else SEXES.index(sex))
        m.derived[key] = replace(m, checkpoint=replace(m.checkpoint, model=view), derived={})
    return m.derived[key]


def era_of(m: LoadedModel, name: str, prior: Prior) -> Era:
    """P(decade, sex | name) under a conditional model (app/domain/era.py); InvalidParam for a
    name outside its alphabet or a model of another kind."""
    if not m.kind.has_conditions:
        raise InvalidParam("model", f"the era of a name needs a model of kind "
                                    f"{conditional_kinds()}; {m.name!r} is {m.kind.title} "
                                    f"({m.kind.name})", m.name)
    try:
        (result,) = eras(m.model, [normalized(m, name, "name")], prior)
    except BadPrior as e:
        raise InvalidParam("prior", str(e), prior) from None
    return result


def sample_names(m: LoadedModel, p: SampleParams) -> SampleResult:
    """p.n names that fit p's constraints, drawn from the model's distribution at p's knobs
    conditioned on fitting (fewer, with exhausted=True, when unique/exclude_training or a rare
    constraint make n too hard within the bounded effort, or when the deadline of the work in
    progress passes first: `app.lm.deadline`).

    What depends on the model is checked here: top_k at most the vocabulary size, the text
    fields (raw user input, normalised here) in its alphabet, the constraints possible.
    One torch.Generator per round, derived from `seed`: same parameters, same names, whatever
    else the process is doing (unless the deadline cuts it short). A decade or sex: the
    conditional model under it (`under_condition`).
    """
    (result,) = sample_many(under_condition(m, p.decade, p.sex), [p])
    if isinstance(result, Exception):
        raise result
    return result


def sample_many(m: LoadedModel, requests: list[SampleParams],
                each: list[deadlines.Deadline | None] | None = None,
                ) -> list[SampleResult | Exception]:
    """sample_names(m, p) for each of `requests` (`sample_many_steps`, to the end)."""
    return finish(sample_many_steps(m, requests, each))


def sample_many_steps(m: LoadedModel, requests: list[SampleParams],
                      each: list[deadlines.Deadline | None] | None = None,
                      ready: Callable[[int, SampleResult | Exception], None] | None = None,
                      ) -> Generator[int, None, list[SampleResult | Exception]]:
    """sample_names(m, p) for each of `requests`, driven together (app.lm.sampling.drive_steps:
    one forward pass per step for all when the model's decoder is the base window one),
    yielding after each step the rows it ran (the model thread may pause there); each result
    is what the request alone gives (or the InvalidParam it raised). Request i checks its own
    deadline `each[i]` (by default the deadline of the work in progress) before every step and
    stops there with the names of its whole rounds of draws.

    Where the model shares its forward pass (`shares_sampling`), requests with the same options
    and no filtering (unique, exclude_training, constraints beyond prefix and max_len: those
    draw in rounds until they have n names) are one `group_sampler`: their names also share
    each step's arithmetic. A member whose first round lost names (longer than max_len) draws
    its next rounds alone, as it would alone. `ready(i, result)` hears of request i's result
    as soon as its run ends (the others may run on)."""
    if each is None:
        each = [deadlines.current()] * len(requests)
    results: list[SampleResult | Exception | None] = [None] * len(requests)
    runs: list[Steps[list[SampleResult]]] = []
    slots: list[list[int]] = []  # the requests each run serves
    groups: dict[SamplingOptions, list[int]] = {}
    for i, p in enumerate(requests):
        try:
            options = checked_sample(m, p)
        except InvalidParam as e:
            results[i] = e
            continue
        c = options.constraint
        if p.unique or p.exclude_training or c.beyond_prefix or c.min_len > 1 \
                or not shares_sampling(m.model):
            runs.append(_one(sample_steps(m, p, each[i])))
            slots.append([i])
            continue
        groups.setdefault(options, []).append(i)
    for options, members in groups.items():
        seeds = [draw_seed() if requests[i].seed is None else requests[i].seed for i in members]
        draws = [Draw(requests[i].n, round_generator(seed, 0), each[i])
                 for i, seed in zip(members, seeds, strict=True)]
        run = group_sampler(m.model, draws, options)
        runs.append(_group_results(m, run, [requests[i] for i in members], seeds,
                                   [each[i] for i in members], options.constraint))
        slots.append(members)
    def finished(run: int, got: list[SampleResult] | Exception) -> None:
        for k, i in enumerate(slots[run]):
            results[i] = got if isinstance(got, Exception) else got[k]
            if ready is not None:
                ready(i, results[i])

    yield from drive_steps(m.model, runs, finished)  # every run ends through `finished`
    return results


def shares_sampling(model: LanguageModel) -> bool:
    """Whether concurrent requests may share sampling steps: the rows of the model's decoder
    are independent of the batch (`LanguageModel.groups_sampling`)."""
    return model.groups_sampling


def _one(steps: Steps[SampleResult]) -> Steps[list[SampleResult]]:
    return [(yield from steps)]


def _group_results(m: LoadedModel, run: Steps[list[Drawn]], requests: list[SampleParams],
                   seeds: list[int], each: list[deadlines.Deadline | None],
                   c: Constraint) -> Steps[list[SampleResult]]:
    drawn = yield from run
    out = []
    for p, seed, deadline, d in zip(requests, seeds, each, drawn, strict=True):
        if d.fits < p.n and not d.timed_out:  # names were longer than max_len: draw again
            out.append((yield from sample_steps(m, p, deadline, seed=seed, first=d)))
        else:
            out.append(_sample_result(m, seed, list(zip(d.names, d.log_probs, strict=True)),
                                      p.n, d.drawn, d.fits, d.mass, c, d.timed_out))
    return out


def sample_steps(m: LoadedModel, p: SampleParams, deadline: deadlines.Deadline | None = None,
                 seed: int | None = None, first: Drawn | None = None) -> Steps[SampleResult]:
    """sample_names as steps for app.lm.sampling.drive, bounded by `deadline`: rounds of draws
    (`first`: the first one, already drawn) until n names fit and pass the filters, or the
    budget of draws is spent."""
    options = checked_sample(m, p)
    c = options.constraint
    n, unique, exclude_training = p.n, p.unique, p.exclude_training
    if seed is None:
        seed = draw_seed() if p.seed is None else p.seed
    rare = c.beyond_prefix or c.min_len > 1
    exact = exact_kind(m.model)  # sampled from P(name | fits): every draw fits
    budget = max(MAX_CONSTRAINED_DRAWS if rare else MIN_SAMPLE_DRAWS, MAX_SAMPLE_DRAWS * n)
    budget = cost.draws_within(m.model, c.prefix, p.max_len, budget)  # what the budget pays
    kept: list[tuple[str, float]] = []
    seen: set[str] = set()
    drawn = fits = 0
    mass: float | None = None
    r = 0
    timed_out = False  # whether the deadline stopped it (else a count did, or n names)
    while len(kept) < n and drawn < budget:
        if deadlines.passed(deadline):
            timed_out = True
            break
        if r == 0 and first is not None:
            d = first
        else:
            want = n - len(kept)
            if r == 0 and not (unique or exclude_training) and (exact or not rare):
                batch = want  # every draw fits, unless a name outgrows max_len
            else:  # enough draws for the rest at the rate seen so far, at least double
                rate = fits / drawn if drawn else 1.0
                batch = max(64, 2 * want, math.ceil(1.2 * want / max(rate, 1e-4)))
                batch = min(budget - drawn, batch, MAX_ROUND)
            d = yield from sampler(m.model, batch, round_generator(seed, r), options, deadline)
        r += 1
        drawn, fits, mass = drawn + d.drawn, fits + d.fits, d.mass
        timed_out = d.timed_out
        if d.drawn == 0:  # the deadline stopped the round, or no name fits at these knobs
            break
        for name, lp in zip(d.names, d.log_probs, strict=True):
            if exclude_training and name in m.data_set:
                continue
            if unique and name in seen:
                continue
            seen.add(name)
            kept.append((name, lp))
            if len(kept) == n:
                break
    return _sample_result(m, seed, kept, n, drawn, fits, mass, c,
                          timed_out=timed_out and len(kept) < n)


def fit_sentence(r: SampleResult, p: SampleParams) -> str | None:
    """The mass that fits, in words, for the page and the CLI: "1.3% of this model's names end
    in -lyn." (exact), "About 1.3% ... (13 of 1,000 draws fit)." (estimated), and how many draws
    a rare constraint took. None when nothing beyond the prefix was asked."""
    c = r.constraint
    if c is None or r.constraint_mass is None:
        return None
    parts = []
    if "suffix" in c.fields:
        parts.append(f"end in \u2011{c.fields['suffix']}")  # a hyphen that never breaks
    if "contains" in c.fields:
        parts.append(f"contain “{c.fields['contains']}”")
    if "pattern" in c.fields:
        parts.append(f"match {c.fields['pattern']}")
    default_max = SampleParams.model_fields["max_len"].default
    if c.min_len > 1 and c.max_len < default_max:
        parts.append(f"have {c.min_len} to {c.max_len} letters" if c.min_len < c.max_len
                     else f"have {c.min_len} letters")
    elif c.min_len > 1:
        parts.append(f"have at least {c.min_len} letters")
    elif c.max_len < default_max:
        parts.append(f"have at most {c.max_len} letters")
    if not parts:
        return None
    whose = "this model's names" + (f" that start with {c.prefix}" if c.prefix else "")
    if Knobs.of(p) != Knobs():
        whose += " at these settings"
    asked = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    mass = 100 * r.constraint_mass
    pct = f"{mass:.3g}%" if mass >= 0.01 or mass == 0 else f"{mass:.2g}%"
    if r.mass_exact:
        text = f"{pct} of {whose} {asked}."
    elif r.fits == 0:
        return f"None of the {r.drawn:,} names drawn from {whose} fit: they must {asked}."
    else:
        text = (f"About {pct} of {whose} {asked} ({r.fits:,} of {r.drawn:,} draws fit).")
    if r.drawn > 2 * max(1, len(r.names)) and r.names:
        text += f" It took {r.drawn:,} draws to find these {len(r.names)}."
    return text[0].upper() + text[1:]


def _sample_result(m: LoadedModel, seed: int, kept: list[tuple[str, float]], n: int,
                   drawn: int, fits: int, mass: float | None, c: Constraint,
                   timed_out: bool = False) -> SampleResult:
    return SampleResult(
        seed=seed,
        names=[
            SampledName(name=x, log_prob=lp, nll_per_char=-lp / (len(x) + 1),
                        in_data=x in m.data_set, in_training_set=x in m.training_set)
            for x, lp in kept
        ],
        exhausted=len(kept) < n,
        timed_out=timed_out and len(kept) < n,
        drawn=drawn, fits=fits,
        constraint_mass=mass if mass is not None else (fits / drawn if drawn else None),
        mass_exact=mass is not None,
        constraint=c,
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
    The routes check the names first (with their own field names): see app/serving/batching.py."""
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


@dataclass(frozen=True)
class TopResult:
    prefix: str  # normalised
    names: list[TopName]  # most probable first
    exhausted: bool  # fewer than k: the effort bound or the deadline stopped the search first
    timed_out: bool  # the deadline (a safety net) stopped it: the names depend on the load


def top_names(m: LoadedModel, p: TopParams) -> TopResult:
    """The k most probable names with the prefix that fit p's constraints (suffix, contains,
    pattern, min_len: app/lm/fitting_search.py), exactly, and whether the effort bound
    (search.MAX_EXPANSIONS) or the deadline of the work in progress cut the search short.

    Without constraints beyond the prefix, the search for the MAX_TOP most probable names of
    any length is done once per model and kept: a request whose names are among them (the
    model card's ten, `/top` without a prefix) reads them from there, any other is searched on
    its own. All are bounded by counts only, so the answer is the same on every machine unless
    the deadline passes (`timed_out`)."""
    c = checked_constraint(m, p)
    deadline = deadlines.current()
    if c.beyond_prefix or c.min_len > 1:  # the k most probable that fit: A* over the automaton
        result = most_probable_fitting(m.model, p.k, c, deadline=deadline)
        return TopResult(c.prefix, [TopName(x, lp) for x, lp in result.names],
                         exhausted=result.exhausted, timed_out=result.timed_out)
    best = most_probable_of(m, deadline)
    names = [(x, lp) for x, lp in best.names if x.startswith(c.prefix) and len(x) <= p.max_len]
    if len(names) >= p.k or best.timed_out:  # the k best of those among the best of all: exact
        return TopResult(c.prefix, [TopName(x, lp) for x, lp in names[: p.k]],
                         exhausted=len(names) < p.k, timed_out=best.timed_out)
    result = most_probable(m.model, p.k, prefix=c.prefix, max_len=p.max_len, deadline=deadline)
    return TopResult(c.prefix, [TopName(x, lp) for x, lp in result.names],
                     exhausted=result.exhausted, timed_out=result.timed_out)


def most_probable_of(m: LoadedModel, deadline: deadlines.Deadline | None) -> SearchResult:
    """The model's MAX_TOP most probable names (of up to MAX_LEN letters), searched on first
    use and kept unless the deadline cut the search short (the effort bound is a count: what
    it stops at is the same every time, so that result is kept too)."""
    kept = m.derived.get("top")
    if kept is not None:
        return kept
    result = most_probable(m.model, MAX_TOP, max_len=MAX_LEN, deadline=deadline)
    if not result.timed_out:
        m.derived["top"] = result
    return result


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
