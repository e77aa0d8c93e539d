"""What the /train page shows beyond a job's state: the kinds and what each costs, the main
options of the form with their bounds (from the trainer's own declaration), which field a
refusal is about, and the bigram of a job's own names as the yardstick of its validation loss.

The checks themselves are app/domain/training.py's and app/store/jobinput.py's: this module only
places their messages next to the field they name, so the page and the API refuse the same
things with the same words.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

from app.data import split_words
from app.lm import KINDS
from app.lm.config import OptimConfig, bounds_text
from app.lm.train import evaluate, fit
from app.lm.vocab import Vocab
from app.store import jobinput
from app.store.jobinput import MIN_SPLIT, SPLIT_SEED
from app.store.jobs import JobState

# SSA slices a person may pick instead of a list (app/data: the records of those years).
PRESETS = ("ssa:2017", "ssa:2010-2017", "ssa:1990-1999:F", "ssa:1950-1959:M")
# The options the form shows: the gradient trainer's (a counted kind has none; blank: default).
MAIN_OPTIONS = ("steps", "eval_interval")
INSTANT = 2.0  # seconds: below this a job is "instant" (a bigram counts 32,000 names in <1 s)


@dataclass(frozen=True)
class OptionField:
    """One option input: its name, label, help text with bounds, and the input's bounds."""

    name: str
    label: str
    help: str
    attrs: dict[str, Any]


def option_fields(max_steps: int) -> list[OptionField]:
    """The form's option inputs, their bounds those OptimConfig declares (steps capped by the
    server's NAMELAB_TRAIN_MAX_STEPS)."""
    out = []
    for f in fields(OptimConfig):
        if f.name not in MAIN_OPTIONS:
            continue
        attrs = {"min": f.metadata.get("ge", 1)}
        if f.name == "steps":
            attrs["max"] = max_steps
        bounds = bounds_text({**f.metadata, "le": attrs.get("max")})
        out.append(OptionField(f.name, f.name.replace("_", " "),
                               f"{f.metadata['help']} ({bounds})", attrs))
    return out


def in_words(seconds: float | None) -> str:
    """'instant', 'about 20 seconds', 'about a minute', 'about 7 minutes'."""
    if seconds is None or not math.isfinite(seconds):
        return "not timed here yet"
    if seconds < INSTANT:
        return "instant"
    if seconds < 45:
        return f"about {max(5, round(seconds / 5) * 5)} seconds"
    if seconds < 90:
        return "about a minute"
    return f"about {round(seconds / 60)} minutes"


@dataclass(frozen=True)
class KindChoice:
    name: str
    label: str  # "mlp: about a minute"
    seconds: float | None
    measured: str  # where the figure comes from


def kind_choices(recent: dict[str, float | None], shipped: dict[str, float]) -> list[KindChoice]:
    """Each trainable kind with its cost in words: from this machine's recent jobs
    (app/domain/training.estimates) or, when it has none yet, the measured training time a
    served model of that kind records (its checkpoint's training_seconds); a counted kind is
    instant whatever the machine."""
    out = []
    for name, kind in jobinput.TRAINABLE.items():
        seconds, measured = recent.get(name), "this server's recent jobs"
        if seconds is None and kind.trains_by_counting:
            seconds, measured = 0.0, "counted in one pass"
        elif seconds is None and name in shipped:
            seconds, measured = shipped[name], "the training time a served model records"
        out.append(KindChoice(name, f"{name}: {in_words(seconds)}", seconds, measured))
    return out


def shipped_seconds(models: Iterable[Any]) -> dict[str, float]:
    """Each kind's seconds at its default steps, measured: the training time the first served
    model of that kind records (LoadedModel: its checkpoint's training_seconds), per step of
    its own training times the kind's default steps."""
    out: dict[str, float] = {}
    for m in models:
        seconds, kind = m.meta.training_seconds, m.kind
        if seconds is None or kind.name in out:
            continue
        steps = (m.meta.training or {}).get("steps") if kind.training else None
        out[kind.name] = float(seconds) * (kind.training.steps / steps if steps else 1.0)
    return out


def field_of(message: str, kind: str | None) -> str:
    """The form field a refusal is about: an option it names first, else the kind or the model
    name when their own check refuses them, else the names."""
    k = KINDS.get(kind or "")
    if k is None or k.name not in jobinput.TRAINABLE:
        return "kind"
    for option in jobinput.option_names(k) + list(MAIN_OPTIONS):
        if re.match(rf"({k.name}: )?(option )?{option}\b", message) or re.search(
                rf"\bunknown options? {option}\b", message):
            return option
    return "name" if "model name" in message or "name is taken" in message else "names"


class BigramReference:
    """The validation NLL of the counting bigram of a job's own names and split: what a neural
    model of those names should beat. Counted once per job (a pass over at most 200,000 names,
    as a bigram job itself), kept for the last KEEP jobs asked about."""

    KEEP = 32

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.known: OrderedDict[str, float | None] = OrderedDict()

    def __call__(self, job: JobState, words: Callable[[], list[str]]) -> float | None:
        """`words`: reads the job's names (only when not known yet); None if they are gone."""
        with self.lock:
            if job.id in self.known:
                return self.known[job.id]
        try:
            value = bigram_val_nll(words())
        except OSError:  # the job's names file was removed (an old job's, pruned)
            return None
        with self.lock:
            self.known[job.id] = value
            while len(self.known) > self.KEEP:
                self.known.popitem(last=False)
        return value


def bigram_val_nll(words: list[str]) -> float | None:
    """The counting bigram fitted on the split a job makes (seed SPLIT_SEED, as
    app/store/jobs.py), its NLL per character on the validation names; None without a split."""
    if len(words) < MIN_SPLIT:
        return None
    split = split_words(words, SPLIT_SEED)
    if not split.val:
        return None
    model, _ = fit(KINDS["bigram"], Vocab.from_words(words), split)
    return round(evaluate(model, split.val), 4)
