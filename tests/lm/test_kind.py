"""The kind registry: every registered kind declares what it is, and the declaration is true."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import torch

from app.data import split_words
from app.lm import KINDS, Kind, LanguageModel, Vocab
from app.lm.config import OptimConfig, check_fields, param
from app.lm.kind import register
from app.lm.mlp import MLP, MLPConfig
from app.lm.train import fit
from tests.conftest import TINY_NAMES

VOCAB = Vocab.from_words(TINY_NAMES)


@pytest.fixture(scope="module")
def tiny_models():
    """Every registered kind's tiny model, trained with its tiny training."""
    split = split_words(TINY_NAMES)
    return {k.name: fit(k, VOCAB, split, k.tiny, k.tiny_training)[0] for k in KINDS.values()}


@pytest.mark.parametrize("name", list(KINDS))
def test_capabilities_are_what_the_model_answers(tiny_models, name):
    kind, model = KINDS[name], tiny_models[name]
    assert kind.has_counts == (model.bigram_counts() is not None)
    assert kind.has_table == (model.bigram_probs() is not None)
    assert kind.has_embeddings == (model.embedding_table() is not None)
    assert kind.has_conditions == hasattr(model, "conditioned")
    overrides = kind.model.inference_form is not LanguageModel.inference_form
    assert overrides == (model.inference_form() is not None)
    assert model.kind == name and kind.title and kind.description


@pytest.mark.parametrize("name", list(KINDS))
def test_a_config_round_trips_through_the_checkpoint_dict(tiny_models, name):
    kind, model = KINDS[name], tiny_models[name]
    again = kind.build(VOCAB, model.config())
    assert again.config() == model.config()
    assert set(again.state_dict()) == set(model.state_dict())


@pytest.mark.parametrize("name", list(KINDS))
def test_every_config_field_has_help_and_a_checked_default(name):
    kind = KINDS[name]
    check_fields(kind.config())
    for f in dataclasses.fields(kind.config):
        assert f.metadata.get("help"), f"{name}.{f.name} has no help text"


@dataclass
class Demo:
    n: int = param(3, "a count", ge=1, le=10)
    p: float = param(0.5, "a fraction", ge=0, lt=1)

    def __post_init__(self) -> None:
        check_fields(self)


@pytest.mark.parametrize("name", list(KINDS))
def test_a_shape_built_on_the_meta_device_is_not_initialised(monkeypatch, name):
    """The checkpoint loader builds each model on the meta device only to compare shapes;
    initialising an embedding there made torch import its compiler (over a second at start-up).
    On the CPU, embeddings get nn.Embedding's own N(0, 1) from the global generator, as before
    (a seeded training run repeats)."""
    kind = KINDS[name]

    def refuse(*args, **kwargs):
        raise AssertionError("initialised on the meta device")

    monkeypatch.setattr(torch.nn.init, "normal_", refuse)
    with torch.device("meta"):
        shape = kind.build(VOCAB, kind.config())
    assert all(t.is_meta for t in shape.state_dict().values())
    monkeypatch.undo()
    torch.manual_seed(0)
    real = kind.build(VOCAB, kind.config())
    first = next((m for m in real.modules() if isinstance(m, torch.nn.Embedding)), None)
    if first is not None:  # built first, so it drew first: the same draws as nn.Embedding's
        torch.manual_seed(0)
        assert torch.equal(first.weight, torch.nn.Embedding(*first.weight.shape).weight)


@pytest.mark.parametrize("name", list(KINDS))
def test_freeze_and_train_again_for_every_kind(name):
    """Serving freezes a model (no gradients: no optimiser can move it); train() gives it back
    its gradients, for every kind, with a fast inference form or without one."""
    kind = KINDS[name]
    model = kind.build(VOCAB, kind.tiny)
    model.freeze()
    assert model._frozen and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not model._frozen and model.training
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(("values", "error", "message"), [
    ({"n": 0}, ValueError, "n must be >= 1, got 0"),
    ({"n": 11}, ValueError, "n must be <= 10, got 11"),
    ({"p": 1.0}, ValueError, "p must be < 1, got 1.0"),
    ({"p": float("nan")}, ValueError, "p must be finite"),
    ({"n": "3"}, TypeError, "n must be int, got '3'"),
    ({"n": True}, TypeError, "n must be int, got True"),
    ({"n": 2.0}, TypeError, "n must be int, got 2.0"),
])
def test_bounds_and_types_come_from_the_field_declarations(values, error, message):
    with pytest.raises(error, match=message):
        Demo(**values)


def test_an_int_is_a_float():
    assert Demo(p=0).p == 0.0 and type(Demo(p=0).p) is float


def test_mlp_config_keeps_its_bounds():
    with pytest.raises(ValueError, match="n_layers must be <= 64"):
        MLPConfig(n_layers=65)


def test_weight_decay_goes_to_linear_weights_only():
    """By module type, not by name: an MLP's embedding, norms and biases are not decayed."""
    m = MLP(VOCAB, MLPConfig(block_size=2, n_embd=3, n_hidden=8, n_layers=2))
    opt = m.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    decay, no_decay = ({id(p) for p in g["params"]} for g in opt.param_groups)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    linears = [x for x in m.modules() if isinstance(x, torch.nn.Linear)]
    assert decay == {id(x.weight) for x in linears} and len(decay) == 3
    assert id(m.C.weight) in no_decay and all(id(x.bias) in no_decay for x in linears)
    assert len(decay) + len(no_decay) == len(list(m.parameters()))


def test_register_refuses_a_name_twice_and_a_flag_collision():
    mlp = KINDS["mlp"]
    with pytest.raises(ValueError, match="registered twice"):
        register(mlp, mlp)

    @dataclass
    class Clashing:
        steps: int = param(1, "collides with OptimConfig.steps")

    with pytest.raises(ValueError, match="collide"):
        register(dataclasses.replace(mlp, config=Clashing))
    with pytest.raises(ValueError, match="says kind"):
        register(dataclasses.replace(mlp, name="other"))


def test_a_counted_kind_takes_no_training_options():
    bigram = KINDS["bigram"]
    with pytest.raises(ValueError, match="trained by counting"):
        fit(bigram, VOCAB, split_words(TINY_NAMES), None, OptimConfig())


def test_kind_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        KINDS["mlp"].name = "x"  # type: ignore[misc]
    assert isinstance(KINDS["mlp"], Kind)
