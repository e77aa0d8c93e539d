"""The models a server has loaded, by name, with what serving them needs precomputed.

The order of the models (issue 21): one rule, here, for every default a page, the home page's
cards and the CLI's examples take (`ordered`; lists of names, the API's included, stay in name
order, which is easier to scan).

1. the model NAMELAB_DEFAULT_MODEL names, when it is set;
2. the main models: those of the default data (app.data.DEFAULT_SPEC, ssa:2017), best first
   (lowest validation NLL per character; a model without one after, then by name);
3. the era models: SSA data of a range of years (ssa:1880-1889), earliest first;
4. the rest (other data: a user's own file, one other year...), best first.

A page that needs something of a model (a bigram table, embeddings) opens on the first model in
this order that has it; sampling opens on the default model if one is set, else on the best
neural model (`sampler`: the first model of a kind that does not count, so the count bigram
only when nothing else is loaded); the compare
page sets the earliest era against the latest (`eras`).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.data import DEFAULT_SPEC, SSA_SPEC
from app.lm import KINDS, Kind
from app.lm.flops import letter_flops
from app.lm.scoring import Plausibility
from app.store.checkpoints import PICKLE_SUFFIXES, load_checkpoint
from app.store.checks import Limits
from app.store.schema import SUFFIX, Checkpoint, CheckpointError, one_line

log = logging.getLogger("namelab.registry")

# A model's name is its file's name without .safetensors: it goes into URLs, headers
# (Content-Disposition) and log lines, so it is a plain identifier or the file is refused.
MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class UnknownModel(LookupError):
    def __init__(self, name: str, available: list[str]) -> None:
        self.name, self.available = name, available
        super().__init__(
            f"unknown model {name!r}; available models: {', '.join(available) or 'none'}"
        )


@dataclass
class LoadedModel:
    checkpoint: Checkpoint
    training_set: frozenset[str]  # the names of its training split
    plausibility: Plausibility
    # every name of its data (the training split and the held-out ones); the training set
    # alone for a checkpoint that does not carry its other names (see `knows_its_data`)
    data_set: frozenset[str] = frozenset()
    # views derived from the weights that take work to compute (t-SNE...): made once, on first
    # use, and kept (the weights never change while served)
    derived: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.checkpoint.name

    @property
    def model(self):
        return self.checkpoint.model

    @property
    def meta(self):
        return self.checkpoint.meta

    @property
    def kind(self) -> Kind:
        return KINDS[self.checkpoint.meta.model_type]  # loading checked it is registered

    @property
    def knows_its_data(self) -> bool:
        """Whether `data_set` is all of the model's data (the checkpoint carries the names
        outside its training split: `namelab train` and `namelab calibrate` store them)."""
        return self.checkpoint.other_names is not None

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> LoadedModel:
        training = frozenset(ckpt.training_names)
        return cls(
            checkpoint=ckpt,
            training_set=training,
            plausibility=plausibility_of(ckpt),
            data_set=training | frozenset(ckpt.other_names or ()),
        )


def plausibility_of(ckpt: Checkpoint) -> Plausibility:
    """The checkpoint's held-out quantiles, or why there are none."""
    h = ckpt.meta.held_out
    if h is not None:
        by_length = ((h.length_centre, h.length_scale, h.length_quantiles) if h.by_length
                     else None)
        return Plausibility(h.quantiles, h.n_names, by_length=by_length)
    if ckpt.meta.split.n_val == 0:
        why = "the model was trained without a validation split, so it has no held-out names"
    else:
        why = ("the checkpoint predates held-out quantiles; retrain it with namelab train "
               "to get them")
    return Plausibility(None, reason=why)


def era(m: LoadedModel) -> tuple[int, int] | None:
    """The (first, last) years of an era model's data (an SSA spec with a range of years)."""
    found = SSA_SPEC.fullmatch(m.meta.dataset.spec)
    if found is None or found[2] is None:
        return None
    return int(found[1]), int(found[2])


def rank(m: LoadedModel) -> tuple:
    """A model's place in the order of the module's docstring (the default model aside)."""
    nll = m.meta.metrics.val_nll
    best = (nll is None, nll or 0.0, m.name)
    if m.meta.dataset.spec == DEFAULT_SPEC:
        return 0, best
    years = era(m)
    if years is not None:
        return 1, (years, m.name)
    return 2, best


@dataclass
class Registry:
    models: dict[str, LoadedModel] = field(default_factory=dict)  # in name order
    refused: dict[str, str] = field(default_factory=dict)  # file name -> why
    default: str | None = None  # NAMELAB_DEFAULT_MODEL: first in the order

    @classmethod
    def load_dir(cls, models_dir: Path | str, limits: Limits = Limits(),  # noqa: B008
                 default: str | None = None) -> Registry:
        """Load every checkpoint in the folder (in name order; kept in the module's order).
        Never raises for a file: each one that looks like a checkpoint (any case of
        .safetensors, or a pickle suffix) is loaded or refused, with a one-line reason, whatever
        is wrong with it. `default` goes first (a name that is not loaded: UnknownModel)."""
        reg = cls(default=default)
        folder = Path(models_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"models folder {str(folder)!r} does not exist")
        try:
            entries = sorted(folder.iterdir())
        except OSError as e:
            raise FileNotFoundError(
                f"models folder {str(folder)!r} cannot be read: {e.strerror}") from None
        for path in entries:
            suffix = path.suffix.lower()
            if path.name.startswith(".") or (suffix != SUFFIX and suffix not in PICKLE_SUFFIXES):
                continue  # READMEs, half-written .tmp files and the like
            try:
                reason = cls._skip_reason(path)
                if reason is None:
                    start = time.perf_counter()
                    reg.add(load_checkpoint(path, limits), time.perf_counter() - start)
                    continue
            except CheckpointError as e:
                reason = e.reason
            except Exception as e:  # noqa: BLE001 (one bad file never stops the server)
                reason = one_line(f"cannot be loaded: {type(e).__name__}: {e}")
            reg.refused[path.name] = reason
            log.warning("refused checkpoint %r: %s", path.name, reason)
        if default is not None and default not in reg.models:
            raise UnknownModel(default, reg.names())
        return reg

    @staticmethod
    def _skip_reason(path: Path) -> str | None:
        """Why a file with a checkpoint's suffix is not even opened, or None."""
        if path.suffix.lower() in PICKLE_SUFFIXES:
            return None  # load_checkpoint refuses it, unread, with the reason
        if path.is_symlink() and not path.exists():
            return "a symbolic link to nothing"
        if path.is_dir():
            return "a folder, not a checkpoint file"
        if not path.is_file():
            return "not a regular file"
        if path.suffix != SUFFIX:
            return f"the suffix must be {SUFFIX}, in lower case"
        if not MODEL_NAME.fullmatch(path.stem):
            return (f"the model name {one_line(repr(path.stem), 80)} is not allowed: a name is "
                    "1-64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit")
        return None

    def add(self, ckpt: Checkpoint, seconds: float | None = None) -> LoadedModel:
        """Serve `ckpt`; `seconds`, the time its loading took, goes into the log line."""
        loaded = LoadedModel.from_checkpoint(ckpt)
        # counted now, on the thread that loads (the model thread in a server), never later
        # on the event loop or a pool thread where a request asks for it (app/serving/worker.py)
        letter_flops(ckpt.model)
        self.models[loaded.name] = loaded
        took = "" if seconds is None else f" in {seconds:.2f} s"
        log.info("loaded model %s (%s) from %s%s", loaded.name, ckpt.meta.model_type, ckpt.path,
                 took)
        return loaded

    def names(self) -> list[str]:
        return list(self.models)

    def get(self, name: str) -> LoadedModel:
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModel(name, self.names()) from None

    def ordered(self) -> list[LoadedModel]:
        """The loaded models in the order of the module's docstring."""
        return sorted(self.models.values(), key=lambda m: (m.name != self.default, rank(m)))

    def first(self, predicate=None) -> LoadedModel | None:
        """The first loaded model, in the order, for which predicate(loaded) is true."""
        return next((m for m in self.ordered() if predicate is None or predicate(m)), None)

    def sampler(self) -> LoadedModel | None:
        """What sampling opens on: the default model if one is set (NAMELAB_DEFAULT_MODEL),
        else the first model, in the order, of a kind that does not count (the best neural
        model), else the first model."""
        if self.default is not None:
            return self.models[self.default]
        return self.first(lambda m: not m.kind.has_counts) or self.first()

    def eras(self, predicate=None) -> list[LoadedModel]:
        """The era models for which predicate is true, earliest first."""
        return sorted((m for m in self.models.values() if era(m) is not None
                       and (predicate is None or predicate(m))), key=lambda m: (era(m), m.name))
