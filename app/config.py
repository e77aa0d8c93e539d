"""Server settings, from environment variables NAMELAB_* (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped(folder: str) -> Path:
    """templates/, static/ and models/ sit next to app/ in a checkout (and an editable install);
    an installed wheel carries them inside the package, as app/<folder> (pyproject.toml)."""
    inside = PACKAGE_DIR / folder
    return inside if inside.is_dir() else PACKAGE_DIR.parent / folder


TEMPLATES_DIR = _shipped("templates")
STATIC_DIR = _shipped("static")
DEFAULT_MODELS_DIR = _shipped("models")
# Each real name's births per year (app/store/history.py), built by `namelab history`; in a folder
# of its own, so the registry (which reads the models folder's *.safetensors) never sees it.
DEFAULT_HISTORY_FILE = DEFAULT_MODELS_DIR / "history" / "ssa.safetensors"
# The body limit admits the largest request the API documents: 1,000 names of 64 characters,
# even with every character written as JSON's 12-byte escape of a surrogate pair
# ("\ud83d\ude00"): 771,011 bytes as compact JSON (67,011 in plain ASCII).
MAX_BODY_BYTES = 2**20
# A training job's names as an uploaded file, at most (app/store/jobinput.py); the routes that
# take one are allowed that much more body than MAX_BODY_BYTES, here and nowhere else
# (app/middleware/body_limit.py): the file, and a form's other fields and boundaries.
MAX_UPLOAD_BYTES = 4 * 2**20
LARGE_BODIES = {"/api/train": MAX_UPLOAD_BYTES + 2**16, "/train": MAX_UPLOAD_BYTES + 2**16}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NAMELAB_")

    models_dir: Path = Field(DEFAULT_MODELS_DIR, description="folder of .safetensors checkpoints")
    default_model: str | None = Field(
        None, description="the model pages open on and list first, sampling included (a page "
        "that needs a bigram table or embeddings it lacks takes the next in the order: "
        "app/store/registry.py); unset or empty: the order's first, the best model of the default "
        "data (for sampling, the best neural one). A name that is not loaded stops start-up")
    history_file: Path = Field(
        DEFAULT_HISTORY_FILE, description="the table of each real name's births per year "
        "(`namelab history` builds it), read on first use; missing: the score page and "
        "/api/history say the history is not installed")
    user_models_dir: Path | None = Field(
        None, description="the users' models (trained through the app), served with the "
        "shipped ones and deletable; unset: <models_dir>/users (`users_dir()`), created if "
        "absent and writable, else users' models are off (logged)")
    max_user_models: int = Field(
        50, ge=1, description="users' models kept at most; one more to train: 409 naming "
        "those to delete (Registry.check_room)")
    reload_seconds: float = Field(
        0.5, ge=0, le=60, description="how often the model folders are scanned for new, "
        "replaced and removed checkpoints (app/serving/reloading.py); 0: never, the models "
        "of start-up are served until a restart")
    host: str = Field("127.0.0.1", description="the address served on: `namelab serve "
                      "--host` sets it; also what decides whether training and deleting "
                      "need NAMELAB_TRAIN_TOKEN (on a loopback address they do not)")
    train_token: SecretStr | None = Field(
        None, description="when set, every request that trains, cancels or deletes a model "
        "carries `Authorization: Bearer <token>` (app/web/deps.py, require_trainer); unset, "
        "those requests are refused unless the server is on a loopback address")
    port: int = Field(8000, ge=1, le=65535)
    log_level: str = "info"
    # Hardening (app/middleware/) and deployment.
    max_body_bytes: int = Field(MAX_BODY_BYTES, ge=1,
                                description="larger request bodies get 413")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        [], description="origins allowed to call the API from a browser (comma-separated); "
        "empty: no CORS headers at all")
    rate_limit_per_minute: int = Field(
        0, ge=0, description="requests per minute per client IP and worker; 0: no limit")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes")
    keep_alive_seconds: int = Field(
        75, ge=1, le=3600, description="idle keep-alive connections are closed after this; "
        "keep it above the load balancer's idle timeout (often 60 s)")

    # The connection layer (app/serving/connections.py): limits uvicorn lacks, checked per
    # connection.
    max_connections: int = Field(
        2048, ge=1, description="open connections at once; a new one beyond gets 503 at once "
        "(start-up raises the descriptor limit to fit it, or exits saying so)")
    max_header_bytes: int = Field(
        64 * 2**10, ge=1024, description="a request's head (request line and headers), at "
        "most; larger gets 431 (the longest page URL, 2,000 letters escaped, is ~24 KB)")
    max_headers: int = Field(100, ge=1, description="header fields of a request; more: 431")
    head_timeout_seconds: float = Field(
        10.0, gt=0, le=3600, description="from a connection's start, or a request's first "
        "byte, to the end of its head; slower: 408 and closed")
    shutdown_grace_seconds: float = Field(
        8.0, ge=1, le=3600, description="after SIGTERM the process ends within this, whatever "
        "runs (below docker stop's 10 s); requests in flight get 1 s less")
    # The model thread (app/serving/worker.py, app/domain/cost.py): work counted in FLOPs, never
    # timed.
    request_flops: int = Field(
        300 * 10**9, ge=1, description="model work of one request, at most, in FLOPs (letters "
        "x the model's FLOPs per letter: app/domain/cost.py); more: 422 naming it. The "
        "default admits 1,000 names of up to 32 letters from the shipped Transformer (1.2e11: "
        "0.4 MFLOPs a letter in its block of 16, 6.6 past it), not 1,000 of 64 (3.3e11)")
    chunk_flops: int = Field(
        2 * 10**9, ge=1, description="the model thread's unit of work in FLOPs (~4,800 "
        "letters of the shipped Transformer in its block, ~300 past it): a request costing "
        "more is served a chunk at a time, other clients' between chunks")
    max_queue: int = Field(
        256, ge=1, description="requests waiting for or using the model thread at once, per "
        "process; more: 503 with Retry-After")
    # Training jobs (app/store/runner.py): each in its own process, beside the model thread.
    train_jobs: int = Field(
        1, ge=1, le=16, description="training jobs running at once on this host (each one "
        "process, one torch thread, nice 10)")
    train_queue: int = Field(
        8, ge=1, le=1000, description="training jobs waiting, at most; more: 429 with "
        "Retry-After")
    train_max_steps: int = Field(
        30_000, ge=1, description="optimisation steps a job may ask for, at most (the largest "
        "kind's default: wavenet's 30,000); more: 422 naming it")
    train_max_seconds: float = Field(
        900.0, gt=0, le=86_400, description="wall time of one job, at most: past it the job "
        "stops and fails, saying so (its model is not written)")
    # What a checkpoint may be (app/store/checks.py, Limits): larger ones are refused, unread,
    # with the setting named. Defaults: a few times the largest shipped model.
    max_model_params: int = Field(
        2_000_000, ge=1, description="parameters of a model, at most (the shipped MLP: 378,019)")
    max_training_names: int = Field(
        250_000, ge=1, description="training names a checkpoint carries, at most (the shipped "
        "2010s bigram: 42,272)")
    max_load_bytes: int = Field(
        768 * 2**20, ge=1, description="memory loading one checkpoint may need, at most, as "
        "estimated from its header (app/store/checks.load_bytes; the shipped MLP: ~126 MB)")

    def users_dir(self) -> Path:
        """The users' models' folder: NAMELAB_USER_MODELS_DIR, else <models_dir>/users."""
        return self.user_models_dir or self.models_dir / "users"

    @field_validator("default_model", "train_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value
