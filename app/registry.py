"""The models a server has loaded, by name, with what serving them needs precomputed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from app.checkpoints import PICKLE_SUFFIXES, SUFFIX, Checkpoint, CheckpointError, load_checkpoint
from app.lm.scoring import Plausibility

log = logging.getLogger("namelab.registry")


class UnknownModel(LookupError):
    def __init__(self, name: str, available: list[str]) -> None:
        self.name, self.available = name, available
        super().__init__(
            f"unknown model {name!r}; available models: {', '.join(available) or 'none'}"
        )


@dataclass
class LoadedModel:
    checkpoint: Checkpoint
    training_set: frozenset[str]
    plausibility: Plausibility
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

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> LoadedModel:
        return cls(
            checkpoint=ckpt,
            training_set=frozenset(ckpt.training_names),
            plausibility=plausibility_of(ckpt),
        )


def plausibility_of(ckpt: Checkpoint) -> Plausibility:
    """The checkpoint's held-out quantiles, or why there are none."""
    h = ckpt.meta.held_out
    if h is not None:
        return Plausibility(h.quantiles, h.n_names)
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
    def load_dir(cls, models_dir: Path | str) -> Registry:
        """Load every checkpoint in the folder, in name order; refuse (and log) the bad ones."""
        reg = cls()
        folder = Path(models_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"models folder {str(folder)!r} does not exist")
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue
            if path.suffix != SUFFIX and path.suffix.lower() not in PICKLE_SUFFIXES:
                continue  # READMEs and the like
            try:
                reg.add(load_checkpoint(path))
            except CheckpointError as e:
                reg.refused[path.name] = str(e)
                log.warning("refused checkpoint: %s", e)
        return reg

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
