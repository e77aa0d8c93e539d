"""Data spec in, checkpoint out: the whole `namelab train` run, without the argument parsing."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from app.data import DataError, Dataset, Split, load_dataset, split_words
from app.lm import KINDS, LanguageModel, Vocab
from app.lm.config import OptimConfig
from app.lm.scoring import length_quantiles, nll_quantiles
from app.lm.train import Progress, evaluate, fit
from app.lm.vocab import MAX_NAME_LEN
from app.store.checkpoints import (
    checkpoint_path,
    load_checkpoint,
    names_tensor,
    read_tensors,
    save_checkpoint,
    write_tensors,
)
from app.store.schema import OTHER_NAMES_TENSOR, CheckpointMeta, HeldOut


def namelab_version() -> str:
    try:
        return version("namelab")
    except PackageNotFoundError:
        return "0+unknown"


def held_out(model: LanguageModel, split: Split) -> HeldOut | None:
    """Plausibility's reference: the distinct names of the validation and test splits the
    model never trained on, overall and by length (app.lm.scoring.length_quantiles).

    Both held-out parts, not the validation split alone: a length's reference is a median of
    its names, and at 3 or 10 letters one part has only 20-40 of them, too few for the median
    to be within 15 points of a new name's (docs/defaults.md). Nothing else is fitted on the
    test split: the training loop never sees it."""
    names = sorted(set(split.val + split.test) - set(split.train))
    if not names:
        return None
    centre, scale, zq = length_quantiles(model, names, MAX_NAME_LEN)
    return HeldOut(split="val+test", n_names=len(names), quantiles=nll_quantiles(model, names),
                   length_centre=centre, length_scale=scale, length_quantiles=zq)


def other_names(split: Split) -> list[str]:
    """The names of the data outside the training split (what "in the data" adds)."""
    return sorted(set(split.val + split.test) - set(split.train))


def checked_split(words: list[str], seed: int | None) -> Split:
    """The split, refused when a part of 80/10/10 would be empty."""
    split = split_words(words, seed)
    if seed is not None and not (split.train and split.val and split.test):
        raise DataError(f"too few names for an 80/10/10 split: {len(words)} name"
                        f"{'s' if len(words) != 1 else ''} give {len(split.train)} training, "
                        f"{len(split.val)} validation and {len(split.test)} test names (at "
                        f"least 10 are needed); use --split none to train on all of them")
    return split


class Exists(FileExistsError):
    """The checkpoint to write is already there, and replacing it was not asked for."""


def calibrate(path: Path | str, data: str | None = None) -> CheckpointMeta:
    """Rewrite a checkpoint's plausibility reference (held_out) and its other names from its
    own data and split, atomically, its weights and training names untouched (the same bytes).

    A pure function of the weights, the data (by default the spec the checkpoint records;
    `data` for a file moved since) and the split seed: the data must be the very words it was
    trained on (same sha256), and the split's training names those the checkpoint holds.
    """
    path = Path(path)
    ckpt = load_checkpoint(path)
    meta = ckpt.meta
    dataset = load_dataset(data or meta.dataset.spec)
    if dataset.sha256 != meta.dataset.sha256:
        raise DataError(f"{dataset.spec!r} is not the data {ckpt.name} was trained on "
                        f"({meta.dataset.spec!r}, {meta.dataset.n_words:,} words, sha256 "
                        f"{meta.dataset.sha256[:12]}...); pass that data with --data")
    split = split_words(dataset.words, meta.split.seed)
    if sorted(set(split.train)) != ckpt.training_names:
        raise DataError(f"the split of {dataset.spec!r} (seed {meta.split.seed}) does not give "
                        f"the training names {ckpt.name} holds")
    new = meta.model_copy(update={"held_out": held_out(ckpt.model, split)})
    tensors = read_tensors(path)
    tensors[OTHER_NAMES_TENSOR] = names_tensor(other_names(split))
    write_tensors(path, tensors, new)
    return new


@dataclass
class TrainResult:
    path: Path
    model: LanguageModel
    meta: CheckpointMeta


def train_to_checkpoint(
    model_type: str,
    data: str | Dataset,
    out_dir: Path | str,
    name: str,
    split_seed: int | None = 42,
    config: Any = None,
    training: OptimConfig | None = None,
    progress: Progress | None = None,
    overwrite: bool = True,
) -> TrainResult:
    """Train one model of a registered kind on a dataset spec, or a dataset already read (its
    default config and training unless given), and write `out_dir/name.safetensors`
    atomically (Exists, before any training, if the file is there and not `overwrite`; and
    without `overwrite`, a file that appears during training is never replaced)."""
    try:
        kind = KINDS[model_type]
    except KeyError:
        raise ValueError(f"unknown model type {model_type!r}; use "
                         f"{', '.join(KINDS)}") from None
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    split = checked_split(dataset.words, split_seed)
    target = checkpoint_path(out_dir, name)
    if not overwrite and target.exists():
        raise Exists(f"{target.resolve()} exists; use --force to replace it, or --name to "
                     f"write another")
    vocab = Vocab.from_words(dataset.words)
    t0 = time.perf_counter()
    model, history = fit(kind, vocab, split, config, training, progress)
    model.note_dataset(dataset.words)
    seconds = time.perf_counter() - t0
    used = None if kind.trains_by_counting else (training or kind.training)
    config = model.config()
    # A counted model's training options are its config (the smoothing), as checkpoints say.
    training_meta = asdict(used) if used else config

    def nll(words: list[str]) -> float | None:
        return round(evaluate(model, words), 6) if words else None

    meta = CheckpointMeta(
        format_version=1,
        model_type=model_type,
        config=config,
        training=training_meta,
        vocab=str(vocab),
        dataset=dataset.describe(),
        split={"seed": split_seed, "n_train": len(split.train), "n_val": len(split.val),
               "n_test": len(split.test)},
        metrics={"train_nll": nll(split.train), "val_nll": nll(split.val),
                 "test_nll": nll(split.test)},
        n_params=model.n_params,
        training_seconds=round(seconds, 3),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        torch_version=torch.__version__,
        namelab_version=namelab_version(),
        history=history,
        held_out=held_out(model, split),
    )
    path = save_checkpoint(target, model, meta, split.train, other_names(split),
                           replace=overwrite)
    return TrainResult(path=path, model=model, meta=meta)
