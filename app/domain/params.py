"""The parameters of each operation, declared once: bounds, defaults and descriptions.

Each class is what the service receives (app/domain/services.py), the API's query parameters and,
made strict, its JSON body (app/api/schemas.py), what a page's form is parsed into and where its
`min`/`max`/`maxlength` come from (app/pages), and the source of the CLI's flags (app/cli.py).
So the limits agree because there is only one of each. What depends on the model (top_k at
most its vocabulary size, a prefix in its alphabet and no longer than max_len) is checked by the
service, which raises `InvalidParam` naming the field (and the index, in a list).

Pydantic and the model package's constants: no FastAPI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from app.data.decades import DECADES, SEXES
from app.lm.config import bounds_text
from app.lm.constraints import MAX_PATTERN  # characters of a pattern
from app.lm.vocab import MAX_NAME_LEN as MAX_LEN  # letters in a name, a prefix, max_len

MAX_SEED = 2**32 - 1
MAX_SAMPLE = 1000  # names per sample request
MAX_CLI_SAMPLE = 100_000  # names per `namelab sample`
MAX_SCORE = 1000  # names per score request
MAX_TEMPERATURE = 5.0
MAX_TOP = 100  # names per top request
MAX_NEIGHBOURS = 10
FORM_STEP = 0.001  # a form's step for a number with an exclusive bound (`Params.form_bounds`)


@dataclass(frozen=True)
class Shown:
    """How a page's form shows a field (pydantic keeps it with the field, out of the schema):
    its label; the text of its bounds (`{min}`, `{max}`: the input's); a placeholder (the input
    is then empty until a value is given, else it starts at the default); `more`: folded under
    "more options"; `query`: the page's name for it, when not the field's; `attrs`: HTML
    attributes of its own."""

    label: str
    bound: str = ""
    placeholder: str = ""
    more: bool = False
    query: str = ""
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FormField:
    """One input of a page's form (`Params.form`): `name` in the query, `field` in Params."""

    name: str
    field: str
    shown: Shown
    type: str  # the input's: number, text, checkbox
    attrs: dict[str, Any]  # its HTML attributes: bounds, then its own
    default: str  # the value it starts at when none is given ('' for none)

    @property
    def bound(self) -> str:
        return self.shown.bound.format(**self.attrs)


class InvalidParam(ValueError):
    """A parameter the model cannot take: `field` names it, `index` its position in a list
    (None for a single value). One handler maps it to a 422 whose `loc` is (where, field[,
    index]); pages show `str(self)` next to the form."""

    def __init__(self, field: str, msg: str, value: Any, index: int | None = None,
                 type: str = "value_error", ctx: dict[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.field, self.index, self.value, self.type, self.ctx = field, index, value, type, ctx

    @property
    def loc(self) -> tuple[str | int, ...]:
        return (self.field,) if self.index is None else (self.field, self.index)


class Params(BaseModel):
    """Lenient parsing (query strings, forms, CLI values are text); unknown fields refused."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def bounds(cls, name: str) -> dict[str, Any]:
        """A field's bounds as HTML input attributes: min, max, maxlength, minlength."""
        out: dict[str, Any] = {}
        for m in cls.model_fields[name].metadata:
            if isinstance(m, Ge):
                out["min"] = m.ge
            elif isinstance(m, Gt):
                out["min"] = m.gt  # HTML has no exclusive bound; the server refuses it
            elif isinstance(m, Le):
                out["max"] = m.le
            elif isinstance(m, Lt):
                out["max"] = m.lt
            elif isinstance(m, MaxLen):
                out["maxlength"] = m.max_length
            elif isinstance(m, MinLen):
                out["minlength"] = m.min_length
        return out

    @classmethod
    def form_bounds(cls, name: str) -> dict[str, Any]:
        """`bounds` for a form's number input, which has no exclusive bound: one (top_p > 0,
        min_p < 1) becomes the value next inside it on a grid of FORM_STEP, with that step
        (min="0.001" step="0.001"), so the form offers only values the server takes."""
        out = cls.bounds(name)
        for m in cls.model_fields[name].metadata:
            if isinstance(m, Gt):
                out["min"], out["step"] = round(m.gt + FORM_STEP, 9), FORM_STEP
            elif isinstance(m, Lt):
                out["max"], out["step"] = round(m.lt - FORM_STEP, 9), FORM_STEP
        return out

    @classmethod
    def form(cls, attrs: Mapping[str, Mapping[str, Any]] | None = None) -> list[FormField]:
        """The inputs of a page's form: the fields that say how they are shown (`Shown`), in
        their order. `attrs`: by field, attributes known only to the page (a bound that
        depends on the loaded models)."""
        out = []
        for name, info in cls.model_fields.items():
            shown = next((m for m in info.metadata if isinstance(m, Shown)), None)
            if shown is None:
                continue
            ann = info.annotation
            kind = ("checkbox" if ann is bool else
                    "text" if ann in (str, str | None) else "number")
            own: dict[str, Any] = (
                {} if kind == "checkbox" else
                {"autocomplete": "off"} if kind == "text" else
                {"inputmode": "numeric" if ann in (int, int | None) else "decimal"})
            default = "" if shown.placeholder or info.default in (None, False) else (
                f"{info.default:g}" if isinstance(info.default, float) else str(info.default))
            out.append(FormField(shown.query or name, name, shown, kind,
                                 {**cls.form_bounds(name), **shown.attrs, **own,
                                  **(attrs or {}).get(name, {})}, default))
        return out

    @classmethod
    def limits(cls, name: str) -> str:
        """A field's bounds as text: '> 0, <= 5', 'at most 64 characters'."""
        bounds: dict[str, Any] = {}
        max_length = None
        for m in cls.model_fields[name].metadata:
            if isinstance(m, Ge | Gt | Le | Lt):
                key = type(m).__name__.lower()  # ge, gt, le, lt: the attribute's name too
                bounds[key] = getattr(m, key)
            elif isinstance(m, MaxLen):
                max_length = m.max_length
        return bounds_text(bounds, max_length)

    @classmethod
    def label(cls, name: str) -> str:
        return cls.model_fields[name].title or name

    @classmethod
    def parse(cls, values: dict[str, Any]) -> Params:
        """The parameters from text values (a form, the CLI); blank means the default.
        InvalidParam for the first bad field, in a sentence naming it and its bounds."""
        given = {k: v for k, v in values.items() if v is not None and v != ""}
        try:
            return cls.model_validate(given)
        except ValidationError as e:
            err = e.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else ""
            raise InvalidParam(field, cls.explain(err), err.get("input"),
                               type=err["type"]) from None

    @classmethod
    def explain(cls, err: dict[str, Any]) -> str:
        """One pydantic error as a sentence: 'n must be between 1 and 1000, got 0.'"""
        name = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "extra_forbidden":
            return f"{name} is not a parameter; use {', '.join(cls.model_fields)}."
        if name not in cls.model_fields:
            return f"{name}: {err['msg']}."
        b, label, got = cls.bounds(name), cls.label(name), err.get("input")
        ann = cls.model_fields[name].annotation
        whole = ann in (int, int | None)
        if "min" in b and "max" in b:
            meta = cls.model_fields[name].metadata
            gt, lt = (any(isinstance(m, t) for m in meta) for t in (Gt, Lt))
            span = (f"greater than {b['min']:g} and at most {b['max']:g}" if gt
                    else f"at least {b['min']:g} and less than {b['max']:g}" if lt
                    else f"between {b['min']} and {b['max']}")
            kind = "a whole number " if whole and err["type"].startswith("int_") else ""
            return f"{label} must be {kind}{span}, got {got!r}."
        if err["type"] == "string_too_long":
            return (f"{label} must be at most {err['ctx']['max_length']} characters, "
                    f"got {len(str(got))}.")
        if err["type"] == "string_too_short":
            return f"{label} must not be empty."
        if err["type"] == "value_error":  # an AfterValidator's ValueError (decade, sex)
            return f"{label} {err['ctx']['error']}, got {got!r}."
        if whole:
            return f"{label} must be a whole number, got {got!r}."
        return f"{label}: {err['msg']}, got {got!r}."


Temperature = Annotated[float, Field(gt=0, le=MAX_TEMPERATURE, allow_inf_nan=False)]


def _decade(value: int | None) -> int | None:
    if value is not None and value not in DECADES:
        raise ValueError(f"must be a decade's first year, one of {', '.join(map(str, DECADES))}")
    return value


def _sex(value: str | None) -> str | None:
    if value is not None and value.strip().upper() not in SEXES:
        raise ValueError("must be F or M (girls' or boys' names)")
    return None if value is None else value.strip().upper()


# A conditional model's condition (app/lm/conditional.py); any other kind refuses them (422
# naming the kinds that take them: app/domain/era.py `under_condition`).
Decade = Annotated[int | None, AfterValidator(_decade)]
Sex = Annotated[str | None, AfterValidator(_sex)]
DECADE_TEXT = (f"for a conditional model: names of this decade, its first year ({DECADES[0]}, "
               f"{DECADES[1]}, ..., {DECADES[-1]}); null = any decade")


class SampleParams(Params):
    """How to sample: the same fields for the API (body and query), the page, the CLI."""

    n: Annotated[int, Shown("How many", "{min} to {max}")] = Field(
        10, ge=1, le=MAX_SAMPLE, description="how many names")
    temperature: Annotated[Temperature, Shown("Temperature", "above {min:g}, at most {max:g}",
                                              attrs={"min": 0, "step": "any"})] = Field(
        1.0, description="divides the logits: < 1 sharper (safer names), > 1 flatter (wilder)")
    top_k: Annotated[int | None, Shown("Top-k", "{min} to {max}", "all letters")] = Field(
        None, ge=1, title="top-k",
        description="keep only the k most likely next characters at each step; at most the "
                    "model's vocabulary size (27 for the default data); null = off")
    seed: Annotated[int | None, Shown("Seed", "0 to 2³²−1", "random")] = Field(
        None, ge=0, le=MAX_SEED,
        description="same seed and knobs, same names; absent: one is drawn and returned")
    top_p: Annotated[float | None, Shown("Top-p", "above 0 (0 excluded), at most 1", "off",
                                         more=True)] = Field(
        None, gt=0, le=1, allow_inf_nan=False, title="top-p",
        description="nucleus: keep the most likely next characters whose probability (after "
                    "temperature and top-k) adds up to p; null = off")
    min_p: Annotated[float, Shown("Min-p", "0 to below 1 (1 excluded)", "off",
                                  more=True)] = Field(
        0.0, ge=0, lt=1, allow_inf_nan=False, title="min-p",
        description="keep only next characters at least min_p times as likely as the most "
                    "likely one (after temperature); 0 = off")
    prefix: Annotated[str, Shown("Prefix", "letters only", "e.g. ma")] = Field(
        "", max_length=MAX_LEN,
        description="letters every name starts with (normalised like names)")
    suffix: Annotated[str, Shown("Ends with", "letters", "e.g. lyn", more=True)] = Field(
        "", max_length=MAX_LEN, title="ends with",
        description="letters every name ends with (normalised like names)")
    contains: Annotated[str, Shown("Contains", "letters", "e.g. r", more=True)] = Field(
        "", max_length=MAX_LEN, description="letters that must appear together in every name")
    pattern: Annotated[str, Shown("Pattern", "regular expression, whole name",
                                  "e.g. ma.*(lyn|lee)", more=True,
                                  attrs={"spellcheck": "false"})] = Field(
        "", max_length=MAX_PATTERN,
        description="a regular expression the whole name must match, over the model's letters "
                    "(`ma.*(lyn|lee)`; lowercased; no anchors or back-references)")
    min_len: Annotated[int, Shown("Min length", "{min} to {max} letters", more=True)] = Field(
        1, ge=1, le=MAX_LEN, title="min length", description="shortest name, in letters")
    max_len: Annotated[int, Shown("Max length", "{min} to {max} letters")] = Field(
        32, ge=1, le=MAX_LEN, title="max length",
        description="longest name, in letters: a longer name is drawn again, never cut")
    unique: Annotated[bool, Shown("no repeats")] = Field(
        False, description="no name twice in one response")
    exclude_training: Annotated[bool, Shown("only new names", query="exclude")] = Field(
        False, description="only new names: none of the model's data (its training split or "
                           "its held-out names)")
    decade: Annotated[Decade, Shown("Decade", "1880 to 2010, conditional models", "any",
                                    more=True, attrs={"min": DECADES[0], "max": DECADES[-1],
                                                      "step": 10})] = Field(
        None, description=DECADE_TEXT)
    sex: Annotated[Sex, Shown("Sex", "F or M, conditional models", "any", more=True)] = Field(
        None, description="for a conditional model: girls' (F) or boys' (M) names; null = any")


class CLISampleParams(SampleParams):
    """The command line's sampling: a larger n, since no request is waiting on it."""

    n: int = Field(10, ge=1, le=MAX_CLI_SAMPLE, description="how many names")


RawName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LEN)]


class ScoreParams(Params):
    names: list[RawName] = Field(
        min_length=1, max_length=MAX_SCORE,
        description=f"1..{MAX_SCORE} names of 1..{MAX_LEN} characters; each is trimmed, "
                    "NFKC-normalised, lowercased and stripped of accents before scoring, and "
                    f"must then be at most {MAX_LEN} letters ('ﬃ' is three)")


class NameParam(Params):
    """One name: `?name=emma`."""

    name: RawName = Field(description=f"1..{MAX_LEN} characters; normalised before scoring",
                          examples=["emma"])


class EraParams(Params):
    """When a name sounds like it is from: `?name=mildred&prior=records`."""

    name: RawName = NameParam.model_fields["name"]
    prior: Annotated[Literal["records", "uniform"], Shown("Prior")] = Field(
        "records", description="P(decade, sex) before the name is read: 'records', each "
                               "decade's and sex's share of the births of 1880-2017; "
                               "'uniform', 1/28 each")


class TopParams(Params):
    k: int = Field(20, ge=1, le=MAX_TOP, description="how many names")
    prefix: str = Field("", max_length=MAX_LEN, description="only names starting with this")
    suffix: str = SampleParams.model_fields["suffix"]  # the same fields as sampling's
    contains: str = SampleParams.model_fields["contains"]
    pattern: str = SampleParams.model_fields["pattern"]
    min_len: int = SampleParams.model_fields["min_len"]
    max_len: int = Field(32, ge=1, le=MAX_LEN, title="max length",
                         description="longest name, in letters")


class EmbeddingsParams(Params):
    k: int = Field(3, ge=1, le=MAX_NEIGHBOURS, description="neighbours per letter")



class NextParams(Params):
    """The next-letter view: a prefix, the sampling knobs and the constraints a name must fit,
    bounded as the sample page's (the fields of sampling that shape one step's draw; n, seed,
    unique and exclude_training do not)."""

    prefix: str = Field("", max_length=MAX_LEN,
                        description="the letters so far (normalised like names); empty: the "
                                    "first letter")
    temperature: Temperature = SampleParams.model_fields["temperature"]
    top_k: int | None = SampleParams.model_fields["top_k"]
    top_p: float | None = SampleParams.model_fields["top_p"]
    min_p: float = SampleParams.model_fields["min_p"]
    suffix: str = SampleParams.model_fields["suffix"]
    contains: str = SampleParams.model_fields["contains"]
    pattern: str = SampleParams.model_fields["pattern"]
    min_len: int = SampleParams.model_fields["min_len"]
    max_len: int = SampleParams.model_fields["max_len"]
    decade: Decade = SampleParams.model_fields["decade"]
    sex: Sex = SampleParams.model_fields["sex"]
    vs_decade: Annotated[Decade, Shown("Versus decade", "1880 to 2010, conditional models",
                                       "none", more=True,
                                       attrs={"min": DECADES[0], "max": DECADES[-1],
                                              "step": 10})] = Field(
        None, title="versus decade",
        description="for a conditional model: the same step under this decade too (its first "
                    "year), to see how the distribution shifts between the two decades; "
                    "null = none")
