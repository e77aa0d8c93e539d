"""The /train page: a form that queues a training job (the API's checks, app/domain/training.py),
and a job's page: its state, steps, times, loss curves, the bigram of the same names as a
yardstick, cancel, and once done the new model's pages and ten of its names.

Without script the job's page reloads itself while the job runs (a <meta> refresh inside
<noscript>); static/train.js instead follows /api/train/{id}/events and swaps in the job's
live part (GET /train/{id}/live) as it changes.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from app.config import MAX_UPLOAD_BYTES
from app.domain import trainform
from app.domain.params import SampleParams
from app.domain.training import Training, estimates, model_links, submit_form
from app.pages import plots
from app.serving import batching
from app.store.jobs import JobState
from app.store.registry import Registry
from app.web.deps import RegistryDep, check_trainer
from app.web.errors import STATUS, USER_ERRORS, error_page, page_error
from app.web.templating import render

router = APIRouter(tags=["pages"])
REFRESH = 3  # seconds between two reloads of a running job's page without script
SAMPLE_SEED = 1  # the done page's ten names: the same on every reload
TEXT_FIELDS = ("name", "kind", "text", "dataset", *trainform.MAIN_OPTIONS)
FORM_FIELDS = 16  # a form of this page has 8 (TEXT_FIELDS, the file, the token)
bigram_reference = trainform.BigramReference()


def training_of(request: Request) -> Training | None:
    return getattr(request.app.state, "training", None)


def form_context(request: Request, registry: Registry, form: dict[str, str]) -> dict[str, Any]:
    """What the form shows: the kinds and their costs, the presets, the option inputs, whether
    the server asks for its token."""
    settings = request.app.state.settings
    training = training_of(request)
    recent = estimates(training.runner.jobs.all()) if training else {}
    return {"nav": "train", "title": "Train a model", "form": form, "errors": {},
            "kinds": trainform.kind_choices(recent, trainform.shipped_seconds(
                registry.models.values())),
            "presets": trainform.PRESETS, "options": trainform.option_fields(
                settings.train_max_steps),
            "needs_token": settings.train_token is not None, "off": training is None,
            "max_mib": MAX_UPLOAD_BYTES // 2**20}


@router.get("/train", response_class=HTMLResponse, summary="Training page")
async def train_page(request: Request, registry: RegistryDep):
    """The form: names (pasted, a file, or an SSA preset), a kind, a model name, options."""
    return render(request, "train.html", form_context(request, registry, {"kind": "bigram"}))


@router.post("/train", response_class=HTMLResponse, summary="Submit a training job")
async def submit_training(request: Request, registry: RegistryDep):
    """Queue the job and go to its page (303); a refusal shows the form again, as it was
    typed, with the message next to the field it is about."""
    async with request.form(max_files=1, max_fields=FORM_FIELDS,
                            max_part_size=MAX_UPLOAD_BYTES) as form:  # closed: its file too
        fields = {k: v.strip() if k != "text" else v for k, v in form.items()
                  if isinstance(v, str)}
        upload = form.get("file")  # a browser sends an empty part when no file was chosen
        chosen = hasattr(upload, "read") and (upload.filename or upload.size)
        file = (await upload.read(), upload.filename) if chosen else None
    ctx = form_context(request, registry, {k: fields.get(k, "") for k in TEXT_FIELDS})
    token = fields.pop("token", "")
    try:
        check_trainer(request.app.state.settings,
                      request.headers.get("authorization") or (f"Bearer {token}" if token else ""))
        training = training_of(request)
        if training is None:
            raise HTTPException(503, "training is off on this server: the users' models folder "
                                     "(NAMELAB_USER_MODELS_DIR) could not be created or written")
        job = await run_in_threadpool(submit_form, training, fields, file)
    except HTTPException as e:
        where = "token" if e.status_code == 401 else "form"
        return render(request, "train.html", {**ctx, "errors": {where: e.detail}}, e.status_code)
    except USER_ERRORS as e:
        where = trainform.field_of(str(e), fields.get("kind"))
        return render(request, "train.html", {**ctx, "errors": {where: str(e)}}, STATUS[type(e)])
    return RedirectResponse(request.url_for("show_job", job_id=job.id).path, status_code=303)


def loss_chart(job: JobState, reference: float | None) -> plots.LineChart | None:
    """The running training loss and the validation points so far against the step; the
    bigram of the same names as a reference line."""
    if len(job.losses["step"]) < 2 and len(job.history["step"]) < 2:
        return None  # a line needs two points
    series = [plots.Series("training loss", "train", job.losses["step"], job.losses["loss"]),
              plots.Series("validation loss", "val", job.history["step"], job.history["val"],
                           markers=True)]
    refs = [("bigram of the same names, validation NLL", reference)] if reference else []
    return plots.line_chart(series, "step", "NLL per character (nats)", refs)


async def job_context(request: Request, registry: Registry, job_id: str) -> dict[str, Any]:
    """A job's state as the page shows it (UnknownJob: 404)."""
    training = training_of(request)
    if training is None:
        raise HTTPException(503, "training is off on this server")
    job = training.runner.get(job_id)
    reference = await run_in_threadpool(bigram_reference, job,
                                        lambda: training.runner.jobs.words(job.id))
    model = registry.models.get(job.name) if job.state == "done" else None
    names = None
    if model is not None:
        names = (await batching.sample(model, SampleParams(n=10, seed=SAMPLE_SEED))).names
    # done: the model's own (the checkpoint keeps the weights of the best validation loss)
    val = job.metrics.get("val_nll") if job.state == "done" else \
        (job.history["val"][-1] if job.history["val"] else None)
    return {"nav": "train", "title": f"Training {job.name}", "job": job,
            "elapsed": job.elapsed(time.time()), "left": job.seconds_left(),
            "reference": reference, "val": val, "chart": loss_chart(job, reference),
            "model": model, "names": names, "links": model_links(job) if model else {},
            # final for the page: ended, and if done, its model served (a moment after)
            "settled": job.final and (job.state != "done" or model is not None),
            "refresh": REFRESH, "needs_token": request.app.state.settings.train_token is not None}


@router.get("/train/{job_id}", response_class=HTMLResponse, summary="Training job page")
async def show_job(request: Request, job_id: str, registry: RegistryDep):
    """The job's state, steps, times and loss curves; its new model's pages once done."""
    return await job_page(request, job_id, registry, "train_job.html")


@router.get("/train/{job_id}/live", response_class=HTMLResponse, summary="A job's live part")
async def job_live(request: Request, job_id: str, registry: RegistryDep):
    """The part of the job's page that changes, for static/train.js to swap in."""
    response = await job_page(request, job_id, registry, "_train_live.html")
    response.headers["Cache-Control"] = "no-store"
    return response


async def job_page(request: Request, job_id: str, registry: Registry,
                   template: str) -> HTMLResponse:
    try:
        ctx = await job_context(request, registry, job_id)
    except USER_ERRORS as e:
        return error_page(request, page_error(e, registry))
    return render(request, template, ctx)


@router.post("/train/{job_id}/cancel", response_class=HTMLResponse, summary="Cancel a job")
async def cancel_job(request: Request, job_id: str, registry: RegistryDep):
    """Stop the job (its model is never written) and show its page again (303)."""
    async with request.form(max_files=0, max_fields=4) as form:
        token = str(form.get("token") or "")
    check_trainer(request.app.state.settings,
                  request.headers.get("authorization") or (f"Bearer {token}" if token else ""))
    training = training_of(request)
    if training is None:
        raise HTTPException(503, "training is off on this server")
    try:
        await run_in_threadpool(training.runner.cancel, job_id)
    except USER_ERRORS as e:
        return error_page(request, page_error(e, registry))
    return RedirectResponse(request.url_for("show_job", job_id=job_id).path, status_code=303)

