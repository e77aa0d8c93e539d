"""The server's training jobs: the runner (app/store/runner.py) starts with the app and stops
with it, and a finished job's model is served at once: its runner thread asks the reloader for a
pass right away (app/serving/reloading.py) rather than waiting for the next scan, which is how a
bigram of 32,000 names is served within 2 s of its request."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import FastAPI

from app.config import Settings
from app.domain.training import Training
from app.store.jobs import JobState
from app.store.runner import Runner

log = logging.getLogger("namelab.jobs")


def start(app: FastAPI, settings: Settings, folder: Path | None) -> None:
    """app.state.training: the jobs writing into `folder` (the users' models); None, and
    training off (503), when there is no such folder."""
    app.state.training = None
    if folder is None:
        log.warning("training is off: there is no writable folder for users' models")
        return
    loop = asyncio.get_running_loop()

    def serve_now(job: JobState, path: Path) -> None:  # on the runner's thread
        asyncio.run_coroutine_threadsafe(app.state.reloader.sync(), loop)

    runner = Runner(folder, settings.train_jobs, settings.train_queue,
                    settings.train_max_seconds, on_done=serve_now)
    runner.start()
    app.state.training = Training(
        runner=runner, served=lambda: app.state.registry.names(),
        check_room=lambda: app.state.registry.check_room(settings.max_user_models),
        max_steps=settings.train_max_steps, max_params=settings.max_model_params)


async def stop(app: FastAPI) -> None:
    """This server's job processes stop; their jobs end `interrupted`, no file half-written."""
    training: Training | None = getattr(app.state, "training", None)
    if training is not None:
        await asyncio.to_thread(training.runner.stop)


async def served(app: FastAPI, job: JobState) -> JobState:
    """`job`, once done, answered only when this server serves its model: the job process says
    done as soon as its file is written, and this server (or a replica's, sharing the folder)
    may not have scanned it yet, so a pass is made now, before the answer."""
    if job.state == "done" and job.model and job.model not in app.state.registry.models:
        await app.state.reloader.sync()
    return job
