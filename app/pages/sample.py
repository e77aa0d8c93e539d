"""The sampling form and its result table."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.domain.params import SampleParams
from app.domain.services import fit_sentence
from app.pages.common import flag, pick_model
from app.serving import batching
from app.web.deps import RegistryDep
from app.web.errors import USER_ERRORS, page_error
from app.web.templating import reads, render

router = APIRouter(tags=["pages"])

# The form's inputs: SampleParams' fields, shown as app/domain/params.py says (`Shown`: label,
# bounds, "more options"; "exclude" is exclude_training, as in shared links, which the API's name
# also sets). The folded "more options" group is open when one of its fields is set.
FORM = SampleParams.form()
MORE = [f.name for f in FORM if f.shown.more]
FIELDS = ("model", *(f.name for f in FORM))
ALIASES = tuple(f.field for f in FORM if f.field != f.name)


def raw_values(q) -> dict[str, str]:
    """Each input's raw value by its query name ('' when absent), under its field's name too."""
    return {f.name: q.get(f.name) or q.get(f.field) or "" for f in FORM}


def sample_params(q) -> SampleParams:
    """The form's raw values as SampleParams (InvalidParam says what is wrong); blank fields
    take their defaults."""
    return SampleParams.parse({
        f.field: flag(q.get(f.name)) or flag(q.get(f.field)) if f.type == "checkbox"
        else q.get(f.name) for f in FORM})


@router.get("/sample", response_class=HTMLResponse, summary="Sampling page")
@reads(*FIELDS, *ALIASES)
async def sample_page(request: Request, registry: RegistryDep):
    """Sample names from a model; the seed is shown so the same URL gives the same names."""
    q = request.query_params
    form = {"model": q.get("model", ""), **raw_values(q)}
    vocab_size = max((len(m.model.vocab) for m in registry.models.values()), default=27)
    ctx = {"nav": "sample", "title": "Sample names", "models": registry.names(), "form": form,
           "more_open": any(form[k] for k in MORE),
           "inputs": SampleParams.form({"top_k": {"max": vocab_size}})}
    try:
        # none named: the best neural model (app/store/registry.py's order)
        m = pick_model(registry, q.get("model")) if q.get("model") else registry.sampler()
        params = sample_params(q)
        result = await batching.sample(m, params)  # the API's queue: chunked, fair
    except USER_ERRORS as e:
        err = page_error(e, registry)
        return render(request, "sample.html", {**ctx, "error": err}, err.status)
    link = {**form, "model": m.name, "seed": result.seed}  # exactly these names
    return render(request, "sample.html", {**ctx, "m": m, "result": result, "link": link,
                                           "fit": fit_sentence(result, params)})
