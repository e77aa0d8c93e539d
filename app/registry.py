"""The models a server has loaded, by name, with what serving them needs precomputed."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from app.checkpoints import (
    PICKLE_SUFFIXES,
    SUFFIX,
    Checkpoint,
    CheckpointError,
    Limits,
    load_checkpoint,
    one_line,
)
from app.lm import KINDS, Kind
from app.lm.scoring import Plausibility

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


@dataclass
class Registry:
    models: dict[str, LoadedModel] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # file name -> why

    @classmethod
    def load_dir(cls, models_dir: Path | str, limits: Limits = Limits()) -> Registry:  # noqa: B008
        """Load every checkpoint in the folder, in name order. Never raises for a file: each
        one that looks like a checkpoint (any case of .safetensors, or a pickle suffix) is
        loaded or refused, with a one-line reason, whatever is wrong with it."""
        reg = cls()
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
                    reg.add(load_checkpoint(path, limits))
                    continue
            except CheckpointError as e:
                reason = e.reason
            except Exception as e:  # noqa: BLE001 (one bad file never stops the server)
                reason = one_line(f"cannot be loaded: {type(e).__name__}: {e}")
            reg.refused[path.name] = reason
            log.warning("refused checkpoint %r: %s", path.name, reason)
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

    def add(self, ckpt: Checkpoint) -> LoadedModel:
        loaded = LoadedModel.from_checkpoint(ckpt)
        self.models[loaded.name] = loaded
        log.info("loaded model %s (%s) from %s", loaded.name, ckpt.meta.model_type, ckpt.path)
        return loaded

    def names(self) -> list[str]:
        return list(self.models)

    def get(self, name: str) -> LoadedModel:
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModel(name, self.names()) from None

    def first(self, predicate) -> LoadedModel | None:
        """The first loaded model (in name order) for which predicate(loaded) is true."""
        return next((m for m in self.models.values() if predicate(m)), None)
