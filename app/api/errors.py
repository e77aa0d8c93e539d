"""Turning bad input and domain errors into clear 4xx responses (never a 500).

Every 422 has FastAPI's standard shape, `{"detail": [{"loc", "msg", "type", ...}]}`, whether
pydantic found the problem (a bound, a type, an unknown field) or the checks below did (a
character outside the model's alphabet, a top_k above its vocabulary size): `loc` names the field.
Other errors are `{"detail": "one sentence"}`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.api.schemas import SampleParams
from app.lm.vocab import InvalidName
from app.registry import LoadedModel, UnknownModel
from app.services import NoTable

Loc = tuple[str | int, ...]


def field_error(loc: Loc, msg: str, value: Any, kind: str = "value_error",
                ctx: dict[str, Any] | None = None) -> RequestValidationError:
    error: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg, "input": value}
    if ctx:
        error["ctx"] = ctx
    return RequestValidationError([error])


def normalized(m: LoadedModel, text: str, loc: Loc, what: str = "name",
               allow_empty: bool = False) -> str:
    """`text` normalised for model `m`, or a 422 naming the field, the bad characters and
    the allowed alphabet."""
    try:
        return m.model.vocab.normalize(text, what=what, allow_empty=allow_empty)
    except InvalidName as e:
        raise field_error(loc, str(e), text, "invalid_name") from None


def check_names(m: LoadedModel, names: Sequence[str], loc: Loc) -> list[str]:
    return [normalized(m, x, (*loc, i)) for i, x in enumerate(names)]


def check_top_k(m: LoadedModel, top_k: int | None, loc: Loc) -> None:
    V = len(m.model.vocab)
    if top_k is not None and top_k > V:
        raise field_error(
            loc, f"Input should be less than or equal to {V}, the vocabulary size of model "
                 f"{m.name!r}", top_k, "less_than_equal", {"le": V})


def check_prefix(m: LoadedModel, prefix: str, max_len: int, where: str) -> str:
    """The normalised prefix: in the model's alphabet and no longer than max_len."""
    norm = normalized(m, prefix, (where, "prefix"), what="prefix", allow_empty=True)
    if len(norm) > max_len:
        raise field_error(
            (where, "max_len"), f"max_len ({max_len}) must be at least the length of the "
                                f"prefix {norm!r} ({len(norm)} letters)", max_len)
    return norm


def check_sample(m: LoadedModel, p: SampleParams, where: str) -> None:
    """The bounds that depend on the model: top_k <= vocab size, the prefix."""
    check_top_k(m, p.top_k, (where, "top_k"))
    check_prefix(m, p.prefix, p.max_len, where)


class SafeJSONResponse(JSONResponse):
    """JSON that survives any input echoed back: a lone surrogate ("\\ud800" in a request) cannot
    be encoded as UTF-8, so such a body is written with ASCII escapes instead of failing."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False,
                              separators=(",", ":")).encode()


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler, but with a response that cannot fail on echoed input.
        return SafeJSONResponse(status_code=422,
                                content={"detail": jsonable_encoder(exc.errors())})

    @app.exception_handler(UnknownModel)
    async def unknown_model(request: Request, exc: UnknownModel) -> JSONResponse:
        return SafeJSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(NoTable)
    async def no_table(request: Request, exc: NoTable) -> JSONResponse:
        return SafeJSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(InvalidName)
    async def invalid_name(request: Request, exc: InvalidName) -> JSONResponse:
        # The routes check names first (with the field's location); this is the safety net.
        error = {"type": "invalid_name", "loc": [], "msg": str(exc)}
        return SafeJSONResponse(status_code=422, content={"detail": [error]})
