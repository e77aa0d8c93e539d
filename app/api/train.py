"""Training jobs: submit (JSON or a form with a file), follow (state, server-sent events), cancel.

Thin: the body is read here (JSON, or multipart with its own body limit: app/config.py
LARGE_BODIES), everything in it is checked and queued by app/domain/training.py, and a job runs
in its own process (app/store/runner.py), never on the model thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from app.api.schemas import TrainRequest
from app.config import MAX_UPLOAD_BYTES
from app.domain.training import job_view, submit, submit_form
from app.serving.jobs import served
from app.store.jobinput import BadJobInput
from app.web.deps import TrainerDep, TrainingDep
from app.web.errors import not_json

router = APIRouter(prefix="/api", tags=["training"])
EVENT_POLL = 0.25  # seconds between two reads of a job's state while its events stream
KEEP_ALIVE = 15.0  # seconds of silence before a comment line keeps proxies from closing
FORM_FIELDS = 64  # fields of a training form, at most (the options of the largest kind: 14)
# Who may train and cancel (app/web/deps.py, require_trainer).
TRAINER = {401: {"description": "NAMELAB_TRAIN_TOKEN is set and the request does not carry it"},
           403: {"description": "training is off on this server: not on a loopback address, "
                                "and NAMELAB_TRAIN_TOKEN is not set"}}
JOB_ERRORS = {
    404: {"description": "no such job"},
    409: {"description": "the model name is taken (a served model or another job's), or the "
                         "users' models are at NAMELAB_MAX_USER_MODELS"},
    413: {"description": "more than 200,000 names, or an upload over 4 MiB"},
    422: {"description": "bad input, named: no usable names, a file not UTF-8 or binary, an "
                         "unknown kind or option, an option out of its bounds, a bad model name"},
    429: {"description": "the queue is full (NAMELAB_TRAIN_QUEUE): Retry-After says when"},
    503: {"description": "training is off: the users' models folder is not writable"},
}
BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": TrainRequest.model_json_schema()},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "kind": {"type": "string"}, "name": {"type": "string"},
        "text": {"type": "string", "description": "names, one per line"},
        "file": {"type": "string", "format": "binary", "description": "UTF-8, one per line"},
        "dataset": {"type": "string"}},
        "additionalProperties": {"type": "string", "description": "an option of the kind"}}}}}}


@router.post("/train", summary="Train a model", status_code=202, openapi_extra=BODY,
             dependencies=[TrainerDep],
             responses={**TRAINER, **{k: v for k, v in JOB_ERRORS.items() if k != 404}})
async def train_model(request: Request, training: TrainingDep) -> JSONResponse:
    """Queue a training job: the names (a list, text one per line, an uploaded file, or an SSA
    spec), the kind, the new model's name and the kind's options; 202 with its id and URL."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=FORM_FIELDS,
                                max_part_size=MAX_UPLOAD_BYTES) as form:
            upload = form.get("file")  # a browser sends an empty part when no file is chosen
            chosen = hasattr(upload, "read") and (upload.filename or upload.size)
            file = (await upload.read(), upload.filename) if chosen else None
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
        job = await run_in_threadpool(submit_form, training, fields, file)
    else:
        try:
            body = TrainRequest.model_validate_json(await request.body())
        except ValidationError as e:
            message = not_json(e.errors())
            if message is not None:
                raise HTTPException(400, message) from None
            raise BadJobInput("; ".join(f"{'.'.join(map(str, x['loc'])) or 'body'}: {x['msg']}"
                                        for x in e.errors()[:5])) from None
        job = await run_in_threadpool(submit, training, body.kind, body.name, body.options,
                                      names=body.names, text=body.text, dataset=body.dataset)
    view = job_view(job)
    return JSONResponse(view, status_code=202, headers={"Location": view["url"]})


@router.get("/train/{job_id}", summary="A training job's state", responses={404: JOB_ERRORS[404]})
async def get_training_job(job_id: str, training: TrainingDep,
                           request: Request) -> dict[str, Any]:
    """State (queued, running, done, failed, cancelled, interrupted), step and total steps,
    losses so far, elapsed time and time left; once done (and served), the new model and its
    links."""
    return job_view(await served(request.app, training.runner.get(job_id)))


@router.get("/train/{job_id}/events", summary="A training job's state as server-sent events",
            responses={404: JOB_ERRORS[404], 200: {"content": {"text/event-stream": {}}}})
async def stream_training_job(job_id: str, training: TrainingDep,
                              request: Request) -> StreamingResponse:
    """The state of GET /api/train/{id} as an event each time it changes (a step, a loss, the
    state), ending with the final state."""
    training.runner.get(job_id)  # 404 now, not inside a stream that has begun
    return StreamingResponse(events(request.app, training, job_id),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def events(app, training, job_id: str) -> AsyncIterator[str]:
    last, quiet = None, 0.0
    while True:
        job = await served(app, training.runner.get(job_id))
        key = (job.state, job.step, len(job.history["step"]), len(job.losses["step"]))
        if key != last:
            yield f"id: {job.step}\ndata: {json.dumps(job_view(job))}\n\n"
            last, quiet = key, 0.0
        elif quiet >= KEEP_ALIVE:
            yield ": keep-alive\n\n"
            quiet = 0.0
        if job.final:
            return
        await asyncio.sleep(EVENT_POLL)
        quiet += EVENT_POLL


@router.delete("/train/{job_id}", summary="Cancel a training job", dependencies=[TrainerDep],
               responses={**TRAINER, 404: JOB_ERRORS[404]})
async def cancel_training_job(job_id: str, training: TrainingDep) -> dict[str, Any]:
    """Stop a queued or running job (its model is never written); a finished job is left as
    it is. Answers the job's state once it has stopped."""
    return job_view(await run_in_threadpool(training.runner.cancel, job_id))
