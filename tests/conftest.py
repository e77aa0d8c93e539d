"""Shared fixtures: a tiny dataset and tiny trained models, built once per test session."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.config import Settings
from app.lm import KINDS, MLPConfig
from app.lm.config import OptimConfig
from app.main import create_app
from app.serving.pagecache import PageCache
from app.store.training import train_to_checkpoint

# Tests use tiny tensors: one thread is as fast, and much faster on a loaded machine (worker
# threads spinning for cores other processes hold).
torch.set_num_threads(1)

SHARED_NAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "names.txt"

# Names with every letter a-z, so the tiny models have the full 27-symbol vocabulary.
TINY_NAMES = """emma olivia ava isabella sophia mia charlotte amelia harper evelyn abigail emily
elizabeth sofia madison avery ella scarlett grace chloe victoria riley aria lily aubrey zoey
penelope lillian addison layla natalie camila hannah brooklyn zoe nora leah savannah audrey
claire eleanor skylar ellie samantha stella paisley violet mila allison alexa anna hazel
quinn xavier jack kevin william benjamin oliver james lucas mason""".split()


@pytest.fixture(scope="session")
def tiny_names_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tiny.txt"
    path.write_text("\n".join(TINY_NAMES) + "\n")
    return path


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, tiny_names_file) -> Path:
    """A checkpoint of every registered kind, named after it, trained on the tiny data with
    the kind's tiny config in a few seconds."""
    out = tmp_path_factory.mktemp("models")
    for kind in KINDS.values():
        train_to_checkpoint(kind.name, str(tiny_names_file), out, kind.name, config=kind.tiny,
                            training=kind.tiny_training)
    return out


@pytest.fixture(scope="session")
def settings(models_dir) -> Settings:
    return Settings(models_dir=models_dir)


@pytest.fixture(scope="session")
def client(settings):
    """An in-process client with the lifespan run (models loaded), shared by the session."""
    with TestClient(create_app(settings)) as c:
        yield c


def forget_pages(app) -> None:
    """Empty the app's page cache (app/serving/pagecache.py), so that a cacheable URL asked again
    runs its route: for tests of what the route does, on the session's shared client."""
    node = app.middleware_stack
    if node is None:  # never called: nothing cached yet
        return
    while not isinstance(node, PageCache):
        node = node.app  # every middleware keeps the one inside it as .app
    node.clear()


@pytest.fixture(scope="session")
def tiny_mlp():
    """A tiny MLP (block_size 3) trained for a few steps on TINY_NAMES."""
    from app.data import split_words
    from app.lm import Vocab
    from app.lm.train import fit

    model, _ = fit(
        KINDS["mlp"], Vocab.from_words(TINY_NAMES), split_words(TINY_NAMES),
        MLPConfig(block_size=3, n_embd=4, n_hidden=32, n_layers=1, dropout=0.0),
        OptimConfig(steps=100, batch_size=32, warmup=10, eval_interval=50),
    )
    return model


class CountedDeadline:
    """Stands in for a request's deadline (app.serving.worker.request_deadline): each request's
    passes at its k-th look, with no real time involved; `looks` counts every request's looks."""

    def __init__(self, monkeypatch, k: int) -> None:
        from app.lm.deadline import Deadline
        from app.serving import worker

        self.looks = 0

        def new() -> Deadline:
            ticks = itertools.count()

            def clock() -> int:
                self.looks += 1
                return next(ticks)

            return Deadline(k, clock=clock)

        monkeypatch.setattr(worker, "request_deadline", new)


@pytest.fixture
def deadline_after(monkeypatch):
    """deadline_after(k): every model-thread request's deadline passes at its k-th look."""
    return lambda k: CountedDeadline(monkeypatch, k)


@pytest.fixture
def slow_model_thread(monkeypatch):
    """slow_model_thread(s): the model thread as on a machine where the work between two looks
    at a request's deadline (one forward pass, about) takes `s` seconds: each request's clock
    moves on by s at every look. The deadline keeps its real length (worker.MODEL_SECONDS)."""
    from app.lm.deadline import Deadline
    from app.serving import worker

    def slow(seconds: float) -> None:
        def new() -> Deadline:
            ticks = itertools.count()
            return Deadline(worker.MODEL_SECONDS, clock=lambda: next(ticks) * seconds)

        monkeypatch.setattr(worker, "request_deadline", new)

    return slow


@pytest.fixture
def fresh_client(settings):
    """A client of an app of its own (nothing computed or cached yet), models loaded."""
    with TestClient(create_app(settings)) as c:
        yield c
