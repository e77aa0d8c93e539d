"""The sampling form and its result table."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.pages.common import (
    USER_ERRORS,
    RegistryDep,
    flag,
    float_param,
    int_param,
    page_error,
    pick_model,
    render,
)
from app.services import MAX_SEED, sample_names
from app.worker import model_thread

router = APIRouter(tags=["pages"])

MAX_N = 200
MAX_TEMPERATURE = 10.0
MAX_LEN = 64  # letters per name, as in the API
DEFAULT_MAX_LEN = 32
FIELDS = ("model", "n", "temperature", "top_k", "prefix", "max_len", "seed", "unique", "exclude")


def sample_args(q, m) -> dict:
    """The form's raw values -> sample_names() keyword arguments (BadInput says what is wrong)."""
    return {
        "n": int_param(q.get("n"), "n", 10, 1, MAX_N),
        "temperature": float_param(q.get("temperature"), "temperature", 1.0, 0.0,
                                   MAX_TEMPERATURE),
        "top_k": int_param(q.get("top_k"), "top-k", None, 1, len(m.model.vocab)),
        "prefix": q.get("prefix", ""),
        "max_len": int_param(q.get("max_len"), "max length", DEFAULT_MAX_LEN, 1, MAX_LEN),
        "seed": int_param(q.get("seed"), "seed", None, 0, MAX_SEED),
        "unique": flag(q.get("unique")),
        "exclude_training": flag(q.get("exclude")),
    }


@router.get("/sample", response_class=HTMLResponse, summary="Sampling page")
@model_thread
def sample_page(request: Request, registry: RegistryDep):
    """Sample names from a model; the seed is shown so the same URL gives the same names."""
    q = request.query_params
    ctx = {"nav": "sample", "title": "Sample names", "models": registry.names(),
           "form": {k: q.get(k, "") for k in FIELDS}, "max_n": MAX_N,
           "max_temperature": MAX_TEMPERATURE, "max_len": MAX_LEN,
           "default_max_len": DEFAULT_MAX_LEN,
           "vocab_size": max((len(m.model.vocab) for m in registry.models.values()), default=27)}
    try:
        m = pick_model(registry, q.get("model"))
        result = sample_names(m, **sample_args(q, m))
    except USER_ERRORS as e:
        err = page_error(e, registry)
        return render(request, "sample.html", {**ctx, "error": err}, err.status)
    return render(request, "sample.html", {**ctx, "m": m, "result": result})
