"""A real name's history: its births per year and sex in the US records (app/store/history.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.api.render import json_response
from app.api.schemas import ErrorMessage
from app.domain.params import InvalidParam, NameParam
from app.lm.vocab import InvalidName
from app.store import history
from app.store.history import HistoryUnavailable, NameHistory
from app.web.errors import SafeJSONResponse

router = APIRouter(prefix="/api", tags=["history"])

NOT_INSTALLED: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage,
          "description": "The history table is not installed (`namelab history` builds it), or "
                         "its file cannot be used: the message says which."},
}


class Peak(BaseModel):
    year: int
    births: int


class SexHistoryOut(BaseModel):
    sex: Literal["F", "M"] = Field(description="F: girls, M: boys")
    total: int = Field(description="births of all the years")
    first_record: int = Field(description="the first year with a record")
    last_record: int = Field(description="the last year with a record")
    peak: Peak = Field(description="the year with the most births (the earliest of equals)")
    sentence: str = Field(examples=["in 1921 with 73,982 girls"])
    counts: list[int] = Field(
        description="births per year, from first_year to last_year; 0 for a year without a "
                    "record (the SSA leaves out a name given fewer than 5 times in a year)")


class HistoryResponse(BaseModel):
    name: str = Field(description="as given")
    normalized: str = Field(description="what was looked up (normalised as for scoring)")
    in_records: bool = Field(description="false: never given in the records' years")
    first_year: int = Field(description="the records' first year", examples=[1880])
    last_year: int = Field(description="the records' last year", examples=[2017])
    total: int = Field(description="births of both sexes, all years")
    peak: Peak | None = Field(description="the year with the most births of both sexes "
                                          "together; null when not in the records")
    sentence: str = Field(examples=["peaked in 1921 with 73,982 girls and in 1930 with 340 "
                                    "boys", "never given in the US records 1880-2017"])
    sexes: list[SexHistoryOut] = Field(description="the sexes the name was given to, girls "
                                                   "first; empty when not in the records")


def history_payload(h: NameHistory) -> dict[str, Any]:
    """`HistoryResponse`'s shape."""
    sexes = [{"sex": s.sex, "total": s.total, "first_record": s.years[0],
              "last_record": s.years[1], "peak": {"year": s.peak_year, "births": s.peak_births},
              "sentence": s.peak, "counts": s.counts} for s in h.sexes]
    peak = {"year": h.peak_year, "births": h.peak_births} if h.in_records else None
    return {"name": h.name, "normalized": h.normalized, "in_records": h.in_records,
            "first_year": h.first_year, "last_year": h.last_year, "total": h.total,
            "peak": peak, "sentence": h.sentence, "sexes": sexes}


@router.get("/history", summary="A real name's births per year", response_model=HistoryResponse,
            responses=NOT_INSTALLED)
async def name_history(request: Request, q: Annotated[NameParam, Query()]) -> Response:
    """How many babies were given `?name=` each year in the US (SSA records 1880-2017), per
    sex, with each sex's peak. A name that is not in the records is no error: `in_records` is
    false and the sentence says "never given in the US records 1880-2017"."""
    try:
        h = await history.lookup(request.app.state.settings.history_file, q.name)
    except HistoryUnavailable as e:
        return SafeJSONResponse(status_code=404, content={"detail": str(e)})
    except InvalidName as e:
        raise InvalidParam("name", str(e), q.name, type="invalid_name") from None
    return json_response(history_payload(h))
