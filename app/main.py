"""create_app(): assembles the FastAPI app. Models load once, in the lifespan handler."""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from app import api, middleware, pages
from app.api.fastlane import FastLane
from app.config import STATIC_DIR, Settings
from app.domain import cost
from app.serving import batching, jobs, logs, memory, worker
from app.serving.pagecache import PageCache
from app.serving.reloading import Reloader
from app.store.checks import Limits
from app.store.registry import Registry, UnknownModel
from app.web import errors, openapi, static
from app.web.static import HashedStaticFiles

log = logging.getLogger("namelab")


class NoModels(RuntimeError):
    """The server has no valid model to serve."""


def users_dir(settings: Settings) -> Path | None:
    """The users' models' folder, created if absent; None (logged) if it cannot be: then
    users' models are off (a read-only image without a volume for them)."""
    if not settings.models_dir.is_dir():
        return None  # the registry stops start-up, saying so; nothing is made in its place
    folder = settings.users_dir()
    try:
        folder.mkdir(parents=settings.user_models_dir is not None, exist_ok=True)
    except OSError as e:
        log.warning("users' models are off: their folder %s cannot be created: %s", folder,
                    e.strerror or e)
        return None
    if not folder.is_dir():
        log.warning("users' models are off: %s is not a folder", folder)
        return None
    return folder


def load_registry(settings: Settings) -> Registry:
    try:
        registry = Registry.load_dir(settings.models_dir, Limits(
            settings.max_model_params, settings.max_training_names, settings.max_load_bytes),
            default=settings.default_model, users_dir=users_dir(settings))
    except FileNotFoundError as e:
        raise NoModels(str(e)) from None
    except UnknownModel as e:
        raise NoModels(f"NAMELAB_DEFAULT_MODEL: {e}") from None
    if not registry.models:
        refused = "; ".join(f"{name!r}: {why}" for name, why in registry.refused.items()) \
            or "the folder has no .safetensors files"
        raise NoModels(f"no valid model in {settings.models_dir}: {refused}")
    return registry


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    logs.configure(settings.log_level)
    cost.configure(cost.Limits(settings.request_flops, settings.chunk_flops))
    worker.configure(settings.max_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # On the model thread, like every request that uses the models (app/serving/worker.py).
        app.state.registry = await worker.run(load_registry, settings)
        gc.freeze()  # the loaded models live as long as the app: no GC pass walks them again
        memory.trim()  # what the loads' checks freed, back to the system (app/serving/memory.py)
        log.info("serving models: %s", ", ".join(app.state.registry.names()))
        for name, b in batching.batched(app.state.registry).items():
            log.info("model %s: scoring %s, sampling %s", name,
                     *("batched" if b[op] else "one request at a time"
                       for op in ("scoring", "sampling")))
        reloader = app.state.reloader = Reloader(app.state.registry, settings.reload_seconds)
        reloader.start()  # the registry follows its folders (app/serving/reloading.py)
        users = next((f.path for f in app.state.registry.folders if f.user), None)
        jobs.start(app, settings, users)  # training jobs write there (app/serving/jobs.py)
        yield
        await jobs.stop(app)
        await reloader.stop()

    # FastAPI whose /docs (Swagger UI) and /redoc load their scripts from this app (files shipped
    # by fastapi-offline) instead of a CDN: they work offline, and their CSP names no other host.
    app = FastAPIOffline(
        docs_url=openapi.DOCS_URL,
        redoc_url=openapi.REDOC_URL,
        title="Namelab",
        summary="Sample and score character-level language models of first names.",
        version="0.1.0",
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
    )
    app.state.settings = settings
    api.install(app)
    pages.install(app)
    errors.install(app)  # the error handlers of both (in any order with the two above)
    app.mount(static.MOUNT, HashedStaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(FastLane)  # innermost: the two busiest routes, without FastAPI's work
    app.add_middleware(PageCache)  # then pages that never change, rendered once
    middleware.install(app, settings, docs_paths=(openapi.DOCS_URL, openapi.REDOC_URL),
                       collectors=[worker.QueueMetrics()])
    openapi.document_refusals(app, settings)
    worker.install(app)
    app.add_middleware(middleware.StartupErrors, errors=(NoModels,))
    return app
