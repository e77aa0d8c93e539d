"""FastAPI dependencies of the JSON API and the pages: the registry, a `{model}` path
parameter resolved to a loaded model (404 listing the available), and who may train and
delete models (`require_trainer`).

Dependencies are `async def`, though they never await: FastAPI runs a plain `def` dependency in
its thread pool, and a hop there and back costs more than these lookups.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.config import Settings
from app.domain.training import Training, TrainingOff
from app.store.registry import LoadedModel, NoModelLoaded, Registry

TRAINING_OFF = ("training and deleting models are off on this server: set NAMELAB_TRAIN_TOKEN "
                "on the server and send it as 'Authorization: Bearer <token>' (they are on "
                "without a token only on a loopback address, NAMELAB_HOST {host!r} is not one)")
BAD_TOKEN = ("this request trains, cancels or deletes a model: send the server's "
             "NAMELAB_TRAIN_TOKEN as 'Authorization: Bearer <token>' ({why})")


async def get_registry(request: Request) -> Registry:
    """The app's registry; NoModelLoaded (503) when its files were all removed while serving
    (start-up refuses to serve none), so that no route meets an empty registry."""
    registry = request.app.state.registry
    if not registry.models:
        raise NoModelLoaded()
    return registry


async def get_model(model: str,
                    registry: Annotated[Registry, Depends(get_registry)]) -> LoadedModel:
    """The `{model}` path parameter resolved to a loaded model (404 listing the available)."""
    return registry.get(model)


RegistryDep = Annotated[Registry, Depends(get_registry)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]


def is_loopback(host: str) -> bool:
    """Whether the server's address (NAMELAB_HOST, `namelab serve --host`) reaches this machine
    only: 127.0.0.0/8, ::1 or localhost. 0.0.0.0, :: and any other name or address do not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def require_trainer(request: Request) -> None:
    """Issue 24, item 6: may this request train, cancel or delete a model? With
    NAMELAB_TRAIN_TOKEN set, only with `Authorization: Bearer <token>` (compared in constant
    time; 401 with WWW-Authenticate: Bearer otherwise); without it, only on a server whose
    address is a loopback one (NAMELAB_HOST: `namelab serve` sets it from --host); elsewhere
    (the Docker image and the replicas serve on 0.0.0.0) 403 saying what to configure."""
    check_trainer(request.app.state.settings, request.headers.get("authorization", ""))


def check_trainer(settings: Settings, authorization: str) -> None:
    """require_trainer's check of an Authorization value (the /train page's form sends the
    token as a field when no script can set the header: app/pages/train.py)."""
    token = settings.train_token
    if token is None:
        if is_loopback(settings.host):
            return
        raise HTTPException(403, TRAINING_OFF.format(host=settings.host))
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        why = ("no Authorization header" if not scheme else "an empty token"
               if scheme.lower() == "bearer" else f"not a Bearer token: {scheme[:20]!r}")
        raise HTTPException(401, BAD_TOKEN.format(why=why),
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        raise HTTPException(401, BAD_TOKEN.format(why="the token is wrong"),
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


TrainerDep = Depends(require_trainer)  # dependencies=[TrainerDep] on a route that trains/deletes


async def get_training(request: Request) -> Training:
    """The server's training jobs (503 when users' models, where jobs write, are off)."""
    training = getattr(request.app.state, "training", None)
    if training is None:
        raise TrainingOff("training is off on this server: the users' models folder "
                          "(NAMELAB_USER_MODELS_DIR) could not be created or written")
    return training


TrainingDep = Annotated[Training, Depends(get_training)]
