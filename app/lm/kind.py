"""What the rest of Namelab knows about a model kind, declared once, in the kind's module.

Each `app/lm/<kind>.py` ends with `KIND = Kind(...)`, and `app/lm/__init__.py` registers it in
one line. Training, the CLI's flags, checkpoint loading, model cards, templates and test fixtures
loop over the registered kinds; no if/elif on a kind's name lives outside its module.

A kind's config is a dataclass whose fields are declared with `param` (app/lm/config.py).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from app.lm.base import LanguageModel
from app.lm.config import OptimConfig
from app.lm.vocab import Vocab


@dataclass(frozen=True)
class Kind:
    """A model kind: everything the app needs to know to train, load, show and test it."""

    name: str  # 'mlp': in checkpoints (model_type), URLs, `namelab train --model`
    title: str  # for prose: 'an MLP', 'a bigram'
    description: str  # one line: API schema descriptions, the model card, `namelab train --help`
    model: type[LanguageModel]
    config: type  # the config dataclass (fields declared with `param`)
    training: OptimConfig | None  # the shared gradient trainer's defaults; None: model.fit(words)
    tiny: Any  # a config small enough for tests to train in about a second
    tiny_training: OptimConfig | None  # the training of the tests' tiny model
    # A config and training that learn within seconds from a few hundred names, for a kind
    # trained by gradient descent: the CLI test trains it and checks that it learned.
    quick: Any = None
    quick_training: OptimConfig | None = None
    has_counts: bool = False  # a (V, V) table of pair counts: model.bigram_counts()
    has_table: bool = False  # a (V, V) next-letter table: model.bigram_probs(), the heatmap
    has_embeddings: bool = False  # character embeddings: model.embedding_table()
    has_attention: bool = False  # self-attention: model.attention_weights(x)
    # conditioned on decade and sex: model.conditioned(decade, sex), model.prior
    # (app/lm/conditional.py); takes `decade` and `sex` when sampling, answers /era
    has_conditions: bool = False

    @property
    def trains_by_counting(self) -> bool:
        return self.training is None

    def make_config(self, values: dict[str, Any]) -> Any:
        """The config from a checkpoint's or a caller's dict (TypeError/ValueError if bad)."""
        return self.config(**values)

    def build(self, vocab: Vocab, config: Any) -> LanguageModel:
        """An untrained model of this kind with the given config (a config or a dict)."""
        if isinstance(config, dict):
            config = self.make_config(config)
        if not isinstance(config, self.config):
            raise TypeError(f"{self.name} needs a {self.config.__name__}, got {config!r}")
        return self.model.from_config(vocab, config)


def register(*kinds: Kind) -> dict[str, Kind]:
    """The registry: kinds by name, checked to be distinct and to have no config field that
    collides with a training option (both become `namelab train` flags)."""
    optim = {f.name for f in fields(OptimConfig)}
    registry: dict[str, Kind] = {}
    for kind in kinds:
        if kind.name in registry:
            raise ValueError(f"model kind {kind.name!r} registered twice")
        clash = {f.name for f in fields(kind.config)} & optim
        if clash:
            raise ValueError(f"{kind.name}: config fields {sorted(clash)} collide with the "
                             f"training options of the same names")
        if kind.model.kind != kind.name:
            raise ValueError(f"{kind.name}: its model class says kind {kind.model.kind!r}")
        registry[kind.name] = kind
    return registry
