"""The sampling form and its result table."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app import batching
from app.pages.common import flag, pick_model
from app.params import SampleParams
from app.services import fit_sentence
from app.web import USER_ERRORS, RegistryDep, page_error, reads, render

router = APIRouter(tags=["pages"])

# The form's fields: SampleParams' fields ("exclude" is exclude_training, as in shared links).
# MORE are in the form's folded "more options" group (open when one of them is set).
MORE = ("suffix", "contains", "pattern", "min_len", "top_p", "min_p")
TEXT = ("n", "temperature", "top_k", "prefix", "seed", "max_len", *MORE)
FIELDS = ("model", *TEXT, "unique", "exclude")


def sample_params(q) -> SampleParams:
    """The form's raw values as SampleParams (InvalidParam says what is wrong); blank fields
    take their defaults."""
    values = {k: q.get(k) for k in TEXT}
    exclude = flag(q.get("exclude")) or flag(q.get("exclude_training"))  # the API's name too
    return SampleParams.parse({**values, "unique": flag(q.get("unique")),
                               "exclude_training": exclude})


@router.get("/sample", response_class=HTMLResponse, summary="Sampling page")
@reads(*FIELDS, "exclude_training")
async def sample_page(request: Request, registry: RegistryDep):
    """Sample names from a model; the seed is shown so the same URL gives the same names."""
    q = request.query_params
    form = {k: q.get(k, "") for k in FIELDS}
    ctx = {"nav": "sample", "title": "Sample names", "models": registry.names(),
           "form": {**form, "exclude": q.get("exclude") or q.get("exclude_training") or ""},
           "more_open": any(form[k] for k in MORE),
           "params": SampleParams,
           "vocab_size": max((len(m.model.vocab) for m in registry.models.values()), default=27)}
    try:
        # none named: the best neural model (app/registry.py's order)
        m = pick_model(registry, q.get("model")) if q.get("model") else registry.sampler()
        params = sample_params(q)
        result = await batching.sample(m, params)  # the API's queue: chunked, fair
    except USER_ERRORS as e:
        err = page_error(e, registry)
        return render(request, "sample.html", {**ctx, "error": err}, err.status)
    return render(request, "sample.html", {**ctx, "m": m, "result": result,
                                           "fit": fit_sentence(result, params)})
