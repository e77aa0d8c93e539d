"""Self-describing checkpoints, read and written: safetensors weights + JSON metadata in the
safetensors header (its schema: app/store/schema.py).

No pickle anywhere: a checkpoint is tensors and a JSON string, so loading one never runs code.
Writes are atomic (temporary file in the same folder, fsync, rename), so an interrupted run never
leaves a half-written file in place of a good one. Loading validates everything (app/store/
checks.py, in the order that makes a hostile file cost little) and every failure is a
CheckpointError naming the file and the problem. What a server accepts is bounded (checks.py's
MAX_* and Limits): a file that passes is small enough to load and its probabilities are numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from app.lm import LanguageModel
from app.store import checks
from app.store.checks import Limits
from app.store.files import write_atomically
from app.store.schema import (
    META_KEY,
    NAMES_TENSOR,
    OTHER_NAMES_TENSOR,
    SUFFIX,
    Checkpoint,
    CheckpointError,
    CheckpointMeta,
)

PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt"}


def checkpoint_path(out_dir: Path | str, name: str) -> Path:
    return Path(out_dir) / f"{name}{SUFFIX}"


def names_tensor(names: list[str]) -> torch.Tensor:
    """The sorted distinct names as the UTF-8 bytes of their lines."""
    data = "\n".join(sorted(set(names))).encode()
    if not data:  # frombuffer refuses an empty buffer
        return torch.zeros(0, dtype=torch.uint8)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def save_checkpoint(
    path: Path, model: LanguageModel, meta: CheckpointMeta, training_names: list[str],
    other_names: list[str] | None = None, replace: bool = True,
) -> Path:
    """Write atomically; returns the final path (always ending in .safetensors)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tensors[NAMES_TENSOR] = names_tensor(training_names)
    if other_names is not None:
        tensors[OTHER_NAMES_TENSOR] = names_tensor(other_names)
    return write_tensors(path, tensors, meta, replace)


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: CheckpointMeta,
                  replace: bool = True) -> Path:
    """The checkpoint file of these tensors and metadata, written atomically; with
    replace=False never over a file already there (CheckpointError, and nothing written)."""
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    blob = st_save(tensors, metadata={META_KEY: meta.model_dump_json()})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, blob, replace)  # the old checkpoint, if any, is untouched
    except FileExistsError:
        raise CheckpointError(path, "already exists; it is never replaced here") from None
    except OSError as e:  # a full disk (ENOSPC), a quota, a read-only folder
        raise CheckpointError(path, f"cannot write: {e.strerror or e}") from None
    return path


def load_checkpoint(path: Path | str, limits: Limits = Limits()) -> Checkpoint:  # noqa: B008
    """Load and check a checkpoint, or raise CheckpointError naming the file and the problem.

    In order, so that a hostile file costs little: the header, by a bounded read (its size, its
    tensors' offsets against the file's size); the metadata (every number bounded, every
    string printable, the loss history consistent); the model's shape, built on the meta
    device (no memory, no initialisation), its parameters counted against `limits` and
    compared with the header's tensors; the training names counted (a bounded read of their
    bytes alone) and the memory the load needs estimated, both against `limits`; only then
    the tensors are read, checked (finite, bounded) and loaded; the model's log-probabilities
    are checked last.
    """
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            path, f"refusing a {path.suffix} file: pickle checkpoints can run code and are "
                  f"never loaded; Namelab reads only {SUFFIX} files")
    if path.suffix != SUFFIX:
        raise CheckpointError(path, f"not a checkpoint: expected a {SUFFIX} file")
    with _open(path) as f:
        header, size = checks.read_header(path, f)
        meta = checks.parse_meta(path, header)
        vocab = checks.vocab_of(path, meta)
        shape = checks.shape_of(path, meta, vocab, limits)
        checks.check_layout(path, meta, shape, header, limits)
        n_names = checks.count_names(path, f, header, limits)
        checks.check_load_bytes(path, shape, header, size, n_names, limits)
        f.seek(0)
        data = f.read(size)  # bounded now: the header's tensors are the shape's, few enough
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(path, f"not a valid safetensors file (corrupted?): {e}") from None
    del data
    names_bytes = tensors.pop(NAMES_TENSOR)
    other_bytes = tensors.pop(OTHER_NAMES_TENSOR, None)
    checks.check_weights(path, shape, tensors)
    # Copies of the file's tensors (safetensors reads them as views of read-only bytes), in the
    # model's own dtypes, become the model's: the meta-device shape has no memory to copy into,
    # and giving it some (to_empty) imports sympy, half a second at start-up.
    want = shape.state_dict()
    model = shape
    model.load_state_dict({k: t.to(want[k].dtype, copy=True) for k, t in tensors.items()},
                          assign=True)
    try:
        model.freeze()  # served as loaded: eval mode, no gradients, the fast inference form
    except AssertionError:
        raise CheckpointError(path, "its weights give different logits in the fast inference "
                                    "form (too large to compute reliably?)") from None
    checks.check_log_probs(path, model)
    training_names = checks.training_names(path, names_bytes, vocab, meta)
    other_names = (None if other_bytes is None
                   else checks.training_names(path, other_bytes, vocab, meta, OTHER_NAMES_TENSOR))
    return Checkpoint(path=path, model=model, meta=meta, training_names=training_names,
                      other_names=other_names)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint that loads (load_checkpoint checks it first), as stored."""
    load_checkpoint(path)
    with _open(Path(path)) as f:
        return {k: v.clone() for k, v in st_load(f.read()).items()}


@contextmanager
def _open(path: Path) -> Iterator[BinaryIO]:
    if not path.is_file():  # a folder, a FIFO (open() would block), a device
        what = "no such checkpoint file" if not path.exists() else "not a regular file"
        raise CheckpointError(path, what)
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise CheckpointError(path, "no such checkpoint file") from None
    except OSError as e:
        raise CheckpointError(path, f"cannot read: {e.strerror}") from None
    with f:
        yield f
