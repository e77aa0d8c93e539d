"""Data spec in, checkpoint out: the whole `namelab train` run, without the argument parsing."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from app.checkpoints import CheckpointMeta, checkpoint_path, save_checkpoint
from app.data import load_dataset, split_words
from app.lm import KINDS, LanguageModel, Vocab
from app.lm.train import OptimConfig, Progress, evaluate, fit


def namelab_version() -> str:
    try:
        return version("namelab")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass
class TrainResult:
    path: Path
    model: LanguageModel
    meta: CheckpointMeta


def train_to_checkpoint(
    model_type: str,
    data: str,
    out_dir: Path | str,
    name: str,
    split_seed: int | None = 42,
    config: Any = None,
    training: OptimConfig | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train one model of a registered kind on a dataset spec (its default config and
    training unless given) and write `out_dir/name.safetensors` atomically."""
    try:
        kind = KINDS[model_type]
    except KeyError:
        raise ValueError(f"unknown model type {model_type!r}; use "
                         f"{', '.join(KINDS)}") from None
    dataset = load_dataset(data)
    split = split_words(dataset.words, split_seed)
    vocab = Vocab.from_words(dataset.words)
    t0 = time.perf_counter()
    model, history = fit(kind, vocab, split, config, training, progress)
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
    )
    path = save_checkpoint(checkpoint_path(out_dir, name), model, meta, split.train)
    return TrainResult(path=path, model=model, meta=meta)
