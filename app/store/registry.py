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
from app.lm.flops import window_flops
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
    # use, and kept (the weights never change while served; a replaced file makes a new
    # LoadedModel, with its own)
    derived: dict = field(default_factory=dict, repr=False)
    user: bool = False  # from the users' folder (NAMELAB_USER_MODELS_DIR): may be deleted

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
    def from_checkpoint(cls, ckpt: Checkpoint, user: bool = False) -> LoadedModel:
        training = frozenset(ckpt.training_names)
        return cls(
            checkpoint=ckpt, user=user,
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


class NoModelLoaded(LookupError):
    """Every checkpoint file was removed while the server ran: 503 until one is back."""

    def __init__(self) -> None:
        super().__init__("no model is loaded: every checkpoint file was removed from the "
                         "models folders; put one back and it is served within a second")


class ShippedModel(PermissionError):
    """A shipped model cannot be deleted (only a user's can): 403."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"model {name!r} is shipped with the server, not a user's model: it "
                         "cannot be deleted")


class TooManyUserModels(RuntimeError):
    """The users' folder holds NAMELAB_MAX_USER_MODELS models already: 409 naming them."""

    def __init__(self, cap: int, names: list[str]) -> None:
        self.cap, self.names = cap, names
        super().__init__(f"there are {len(names)} user models, at most {cap} are kept "
                         f"(NAMELAB_MAX_USER_MODELS): delete one first (DELETE "
                         f"/api/models/NAME): {', '.join(names)}")


@dataclass(frozen=True)
class Stamp:
    """What a scan compares to see that a file changed: writing it in place changes its size
    or mtime, an atomic replace (a rename over it) its inode."""
    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True)
class Folder:
    path: Path
    user: bool  # the users' folder (NAMELAB_USER_MODELS_DIR): its models may be deleted


USERS = "users"  # the refused files of the users' folder are listed as users/FILE


@dataclass
class Registry:
    """The loaded models, kept in step with their folders while a server runs.

    `scan` lists the folders' checkpoint files with their stamps (no model code: any thread);
    `changed` says which differ from what was last looked at; `update` brings one file's model
    up to date (on the model thread in a server, like every load: app/serving/reloading.py). A
    change never mutates `models` or `refused` in place: `update` builds a new dict and assigns
    it (one atomic store), so a request iterating them, or holding a LoadedModel, finishes on
    what it started with, and a model is replaced only once its new file has loaded and passed
    every check (a bad new file is refused, the model it would have replaced stays)."""
    models: dict[str, LoadedModel] = field(default_factory=dict)  # in name order
    refused: dict[str, str] = field(default_factory=dict)  # file name -> why
    default: str | None = None  # NAMELAB_DEFAULT_MODEL: first in the order
    limits: Limits = field(default_factory=Limits)
    folders: list[Folder] = field(default_factory=list)  # the shipped one first
    stamps: dict[Path, Stamp] = field(default_factory=dict)  # each file as last looked at

    @classmethod
    def load_dir(cls, models_dir: Path | str, limits: Limits = Limits(),  # noqa: B008
                 default: str | None = None, users_dir: Path | None = None) -> Registry:
        """Load every checkpoint in the folder (in name order; kept in the module's order), and
        in `users_dir` if given (users' models; a name the folder has too is refused there).
        Never raises for a file: each one that looks like a checkpoint (any case of
        .safetensors, or a pickle suffix) is loaded or refused, with a one-line reason, whatever
        is wrong with it. `default` goes first (a name that is not loaded: UnknownModel)."""
        folder = Path(models_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"models folder {str(folder)!r} does not exist")
        try:
            list(folder.iterdir())
        except OSError as e:
            raise FileNotFoundError(
                f"models folder {str(folder)!r} cannot be read: {e.strerror}") from None
        folders = [Folder(folder, user=False)]
        if users_dir is not None:
            folders.append(Folder(Path(users_dir), user=True))
        reg = cls(default=default, limits=limits, folders=folders)
        listing, listed = reg.scan()
        for path in reg.changed(listing, listed):
            reg.update(path, listing.get(path))
        if default is not None and default not in reg.models:
            raise UnknownModel(default, reg.names())
        return reg

    def scan(self) -> tuple[dict[Path, Stamp], set[Path]]:
        """Every file of the folders that looks like a checkpoint, with its stamp, and the
        folders that could be listed (a folder that cannot be, for a moment, changes
        nothing)."""
        listing: dict[Path, Stamp] = {}
        listed: set[Path] = set()
        for folder in self.folders:
            try:
                entries = list(folder.path.iterdir())
            except OSError:
                continue
            listed.add(folder.path)
            for path in entries:
                suffix = path.suffix.lower()
                if path.name.startswith(".") or (suffix != SUFFIX
                                                 and suffix not in PICKLE_SUFFIXES):
                    continue  # READMEs, the .name.*.tmp files of atomic writes and the like
                try:
                    st = path.stat() if path.exists() else path.lstat()
                except OSError:  # gone between the listing and now
                    continue
                listing[path] = Stamp(st.st_size, st.st_mtime_ns, st.st_ino)
        return listing, listed

    def changed(self, listing: dict[Path, Stamp], listed: set[Path]) -> list[Path]:
        """The files of `listing` new or changed since last looked at, and those gone from a
        listed folder: the shipped folder's first (its names win), each in name order."""
        paths = {p for p, stamp in listing.items() if self.stamps.get(p) != stamp}
        paths |= {p for p in self.stamps if p.parent in listed and p not in listing}
        rank = {f.path: i for i, f in enumerate(self.folders)}
        return sorted(paths, key=lambda p: (rank.get(p.parent, len(rank)), p.name))

    def update(self, path: Path, stamp: Stamp | None) -> None:
        """Bring the model of one file up to date with it (`stamp` None: it was removed).
        Never raises for the file: a bad one is refused, with a one-line reason, logged."""
        user = self._folder(path).user
        label, name = self._label(path), path.name.removesuffix(SUFFIX)
        current = self.models.get(name)
        if stamp is None:
            self.stamps.pop(path, None)
            self._set(refused={label: None})
            if current is not None and current.checkpoint.path == path:
                self._set(models={name: None})
                log.info("dropped model %s: its file %s was removed", name, label)
                if not user:  # a user's file of that name was refused for it: look again
                    self.stamps.pop(self._users_path(name), None)
            return
        self.stamps[path] = stamp
        try:
            reason = self._skip_reason(path) or (self._shipped_has(name) if user else None)
            if reason is None:
                start = time.perf_counter()
                self.add(load_checkpoint(path, self.limits), time.perf_counter() - start,
                         user=user, replaced=current is not None)
                self._set(refused={label: None})
                if not user and (mine := self._users_path(name)) in self.stamps:
                    self._set(refused={self._label(mine): self._shipped_has(name)})
                return
        except CheckpointError as e:
            reason = e.reason
        except Exception as e:  # noqa: BLE001 (one bad file never stops the server)
            reason = one_line(f"cannot be loaded: {type(e).__name__}: {e}")
        self._set(refused={label: reason})
        kept = " (the model loaded before stays)" if current is not None and \
            current.checkpoint.path == path else ""
        log.warning("refused checkpoint %r: %s%s", label, reason, kept)

    def _folder(self, path: Path) -> Folder:
        return next((f for f in self.folders if f.path == path.parent),
                    Folder(path.parent, user=False))

    def _label(self, path: Path) -> str:
        """How /readyz names a file: its name; in the users' folder, users/ and its name."""
        return f"{USERS}/{path.name}" if self._folder(path).user else path.name

    def _users_path(self, name: str) -> Path | None:
        return next((f.path / f"{name}{SUFFIX}" for f in self.folders if f.user), None)

    def _shipped_has(self, name: str) -> str | None:
        """Why a user's file of this name is not served: a shipped model has it; or None."""
        shipped = self.models.get(name)
        if (shipped is not None and not shipped.user) or any(
                f.path / f"{name}{SUFFIX}" in self.stamps for f in self.folders if not f.user):
            return f"the name {name!r} is a shipped model's: the shipped one is served"
        return None

    def _set(self, models: dict[str, LoadedModel | None] | None = None,
             refused: dict[str, str | None] | None = None) -> None:
        """Copy, change and assign (None removes): never a change in place (the class's
        docstring)."""
        if models:
            new = {**self.models, **models}
            self.models = {k: v for k, v in sorted(new.items()) if v is not None}
        if refused and any(self.refused.get(k) != v for k, v in refused.items()):
            new_refused = {**self.refused, **refused}
            self.refused = {k: v for k, v in sorted(new_refused.items()) if v is not None}

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

    def add(self, ckpt: Checkpoint, seconds: float | None = None, user: bool = False,
            replaced: bool = False) -> LoadedModel:
        """Serve `ckpt` (in place of a model of its name: `replaced`, for the log); `seconds`,
        the time its loading took, goes into the log line."""
        loaded = LoadedModel.from_checkpoint(ckpt, user=user)
        # counted now, on the thread that loads (the model thread in a server), never later
        # on the event loop or a pool thread where a request asks for it (app/serving/worker.py)
        window_flops(ckpt.model)  # the window is what is counted; a letter is read from it
        self._set(models={loaded.name: loaded})
        took = "" if seconds is None else f" in {seconds:.2f} s"
        log.info("%s model %s (%s%s) from %s%s", "replaced" if replaced else "loaded",
                 loaded.name, ckpt.meta.model_type, ", a user's" if user else "", ckpt.path, took)
        return loaded

    def user_models(self) -> list[str]:
        """The loaded users' models, by name."""
        return [name for name, m in self.models.items() if m.user]

    def check_room(self, cap: int) -> None:
        """TooManyUserModels (409, naming them) if `cap` user models are served already: what a
        training job checks before it starts (NAMELAB_MAX_USER_MODELS)."""
        names = self.user_models()
        if len(names) >= cap:
            raise TooManyUserModels(cap, names)

    def user_file(self, name: str) -> Path:
        """The file of the user's model `name`, to delete: UnknownModel if no model has that
        name, ShippedModel if a shipped one has."""
        m = self.get(name)
        if not m.user:
            raise ShippedModel(name)
        return m.checkpoint.path

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
        if self.default in self.models:  # it may have been removed since (hot reload)
            return self.models[self.default]
        return self.first(lambda m: not m.kind.has_counts) or self.first()

    def eras(self, predicate=None) -> list[LoadedModel]:
        """The era models for which predicate is true, earliest first."""
        return sorted((m for m in self.models.values() if era(m) is not None
                       and (predicate is None or predicate(m))), key=lambda m: (era(m), m.name))
