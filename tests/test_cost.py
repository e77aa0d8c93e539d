"""What model work costs (app/domain/cost.py): counted from the model, checked before it is
queued."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

from app.config import DEFAULT_MODELS_DIR, Settings
from app.domain import cost
from app.lm import flops
from app.lm.flops import letter_flops, window_flops
from app.main import create_app
from app.serving import worker
from app.store.checkpoints import load_checkpoint


def matmul_flops(module: nn.Module) -> int:
    """2 x the weights of every Linear: what one row through them costs, written out."""
    return sum(2 * m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))


def test_a_letter_costs_what_the_model_computes_for_it_counted_from_its_layers(client):
    registry = client.app.state.registry
    V = len(registry.get("bigram").model.vocab)
    assert letter_flops(registry.get("bigram").model) == V  # a table lookup: the row
    mlp = registry.get("mlp").model
    assert letter_flops(mlp) == window_flops(mlp) == matmul_flops(mlp)  # one window, one row
    t = registry.get("transformer").model
    # every position of a full window through every Linear, plus attention: more than that
    assert window_flops(t) > t.block_size * matmul_flops(t.blocks)
    # a name read from its start: a letter is one of the window's positions
    assert letter_flops(t) * t.block_size == window_flops(t)
    assert letter_flops(t) > matmul_flops(t.blocks)


def test_the_transformers_steps_past_its_block_cost_a_window_each(client):
    t = client.app.state.registry.get("transformer").model
    T, letter, window = t.block_size, letter_flops(t), window_flops(t)
    assert cost.score_flops(t, ["a" * (T - 1)]) == T * letter  # T steps: all in the block
    assert cost.score_flops(t, ["a" * (T + 4)]) == T * letter + 5 * window
    assert cost.draw_flops(t, "", T - 1) == T * letter
    assert cost.draw_flops(t, "ab", T + 2) == (T - 2) * letter + 3 * window
    assert cost.draw_flops(t, "a" * T, T + 1) == 2 * window  # the prefix fills the block
    assert cost.draw_flops(t, "a" * 5, 5) == letter  # only the end
    mlp = client.app.state.registry.get("mlp").model  # a window a step, wherever it is
    assert cost.score_flops(mlp, ["a" * (T + 4)]) == (T + 5) * window_flops(mlp)


def test_the_pieces_of_a_request_depend_on_the_costs_alone():
    assert cost.chunks([3, 3, 3, 3], 6) == [2, 4]
    assert cost.chunks([7, 1, 1], 6) == [1, 3]  # an item over the chunk is a piece of its own
    assert cost.chunks([], 6) == [0]


def test_a_request_over_the_budget_is_refused_before_it_starts_naming_budget_and_cost(
        client, monkeypatch):
    t = client.app.state.registry.get("transformer").model
    names = ["abcdefghij"] * 10
    per_name = cost.score_flops(t, names[:1])  # 11 steps, the end's included
    budget = 9 * per_name
    monkeypatch.setattr(cost, "limits", cost.Limits(budget, per_name))
    r = client.post("/api/models/transformer/score", json={"names": names})
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["type"] == "too_costly" and err["loc"] == ["body", "names"]
    assert err["ctx"] == {"budget": budget, "cost": 10 * per_name}
    assert "NAMELAB_REQUEST_FLOPS" in err["msg"] and f"{10 * per_name:,}" in err["msg"]
    assert client.post("/api/models/transformer/score",
                       json={"names": names[:9]}).status_code == 200
    # a draw of up to 10 letters costs what a 10-letter name does
    assert cost.draw_flops(t, "", 10) == per_name
    r = client.post("/api/models/transformer/sample", json={"n": 10, "max_len": 10})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "n"]
    assert 10 * cost.draw_flops(t, "", 9) <= budget
    assert client.post("/api/models/transformer/sample",
                       json={"n": 10, "max_len": 9}).status_code == 200
    page = client.get("/sample?model=transformer&n=10&max_len=10")
    assert page.status_code == 422 and "NAMELAB_REQUEST_FLOPS" in page.text


def test_filtered_sampling_draws_no_more_than_the_budget_pays_for(client, monkeypatch):
    m = client.app.state.registry.get("mlp")
    per_draw = cost.draw_flops(m.model, "", 8)
    monkeypatch.setattr(cost, "limits", cost.Limits(300 * per_draw, per_draw))
    r = client.post("/api/models/mlp/sample",
                    json={"n": 200, "max_len": 8, "unique": True, "seed": 3}).json()
    assert r["drawn"] <= 300 and r["exhausted"] == (len(r["names"]) < 200)


def test_the_default_budget_admits_the_largest_default_sample_of_the_shipped_transformer():
    """The documented defaults (app/config.py) against the shipped Transformer's cost of a
    letter, counted from its checkpoint."""
    s = Settings()
    t = load_checkpoint(DEFAULT_MODELS_DIR / "transformer.safetensors").model
    # what docs/determinism.md and app/config.py quote
    assert (window_flops(t), letter_flops(t)) == (6_608_896, 413_056)
    assert 1000 * cost.draw_flops(t, "", 32) <= s.request_flops < 1000 * cost.draw_flops(t, "", 64)
    assert s.chunk_flops < s.request_flops
    assert 16 * 20 * letter_flops(t) <= s.chunk_flops  # 16 requests of 20 names share a step


@pytest.mark.parametrize("kind", ["bigram", "mlp", "transformer", "wavenet"])
def test_the_cost_is_counted_not_timed(client, kind):
    m = client.app.state.registry.get(kind).model
    assert letter_flops(m) == letter_flops(m)  # cached, and the same every time
    assert cost.score_flops(m, ["ab", "c"]) == 5 * letter_flops(m)


def test_a_letters_cost_is_counted_at_load_on_the_model_thread_and_only_read_after(
        settings, monkeypatch):
    """Counting runs model code: it happens as the models load (on the model thread), never
    where a request asks for the cost (the event loop, a pool thread)."""
    counted: list[int] = []
    real = flops.Flops

    def spy(*args, **kwargs):
        counted.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(flops, "Flops", spy)
    app = create_app(settings)
    with TestClient(app) as c:
        model_thread = worker.executor().submit(threading.get_ident).result()
        assert counted and set(counted) == {model_thread}  # at start-up, on the model thread
        counted.clear()
        for m in ("bigram", "mlp", "transformer"):
            assert c.post(f"/api/models/{m}/score", json={"names": ["emma"]}).status_code == 200
            assert c.post(f"/api/models/{m}/sample", json={"n": 2}).status_code == 200
            assert c.get(f"/sample?model={m}&n=2").status_code == 200
    assert counted == []  # every cost looked up since was read


def test_the_count_matches_the_products_written_out_and_imports_no_compiler():
    """The Transformer's window: every Linear of its blocks and head over the 16 positions of a
    window, and attention's two products over every query and key, written out by hand; and
    counting it (as loading does) imports neither torch's compiler nor sympy (start-up)."""
    code = ("import sys; from app.lm.flops import window_flops; "
            "from app.store.checkpoints import load_checkpoint; "
            "m = load_checkpoint(sys.argv[1]).model; print(window_flops(m)); "
            "print(' '.join(x for x in ('torch._dynamo', 'sympy') if x in sys.modules))")
    path = DEFAULT_MODELS_DIR / "transformer.safetensors"
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    m = load_checkpoint(path).model
    T, C, H = m.block_size, m.cfg.n_embd, m.cfg.n_head
    linears = sum(2 * T * x.in_features * x.out_features
                  for x in m.modules() if isinstance(x, torch.nn.Linear))
    attention = m.cfg.n_layer * 2 * (2 * H * T * T * (C // H))
    assert int(out[0]) == linears + attention
    assert out[1:] in ([], [""])
