"""Pydantic models of the API's requests and responses: the contract, as /docs shows it.

The parameters themselves are app/domain/params.py's (shared with the pages, the CLI and the
services). Request bodies are those made strict (`"n": "ten"` and `"seed": true` are 422s);
as query parameters they are parsed leniently, as query strings must be.
Log-probabilities of 0-probability events (a bigram trained without smoothing can give them) are
`null`: log(0) = -inf, which JSON cannot carry.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.domain.explorer import health
from app.domain.params import SampleParams, ScoreParams
from app.domain.services import (
    CONSTRAINED_DRAWS_BOUND,
    DRAWS_BOUND,
    IN_DATA,
    IN_TRAINING,
    EmbeddingView,
    SampledName,
    TopName,
)
from app.lm import KINDS
from app.lm.embeddings import Projection
from app.lm.search import MAX_EXPANSIONS
from app.lm.train import History
from app.serving.worker import MODEL_SECONDS
from app.store.registry import LoadedModel
from app.store.schema import DatasetInfo, HeldOut, Metrics, SplitInfo

NULL_IF_ZERO = "null when the probability is 0 (log 0 = -inf, which JSON cannot carry)"


# --- errors ------------------------------------------------------------------------------------


class ErrorMessage(BaseModel):
    detail: str = Field(description="what went wrong, in one sentence",
                        examples=["unknown model 'gpt'; available models: bigram, mlp"])


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage,
          "description": "No loaded model has that name; the message lists the available ones."},
}
NO_TABLE: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorMessage,
          "description": "The model exists but has no such table (e.g. an MLP has no bigram "
                         "table; a bigram has no embeddings)."},
}
NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorMessage, "description": "The models are not loaded (yet)."},
}


# --- health ------------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Batched(BaseModel):
    scoring: bool = Field(description="concurrent score requests share one forward pass: the "
                                      "model's rows are independent of the batch on this CPU "
                                      "(checked at load); else one request at a time")
    sampling: bool = Field(description="concurrent sample requests share their steps' forward "
                                       "passes (rows independent, and the base decoder)")


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    models: list[str] = Field(description="the loaded models, by name",
                              examples=[["bigram", "mlp", "neural-bigram"]])
    batched: dict[str, Batched] = Field(
        default_factory=dict,
        description="per model: whether concurrent requests are served together; the answers "
                    "are the same either way, only the throughput differs")
    refused: dict[str, str] = Field(
        default_factory=dict,
        description="checkpoint files refused, at start-up or since (the folders are followed "
                    "while the server runs): file name (users/FILE in the users' folder) -> "
                    "why, in one line",
        examples=[{"old.pt": "refusing a .pt file: pickle checkpoints can run code and are "
                             "never loaded; Namelab reads only .safetensors files"}])


# --- model cards -------------------------------------------------------------------------------


class ModelCard(BaseModel):
    """Everything a checkpoint says about itself, plus what the server derived from it."""

    model_config = ConfigDict(protected_namespaces=())
    name: str = Field(description="the name used in URLs", examples=["mlp"])
    type: str = Field(description="the model kind: " + "; ".join(
        f"`{k.name}`, {k.description}" for k in KINDS.values()), examples=["mlp"])
    hyperparameters: dict[str, Any] = Field(
        description="what rebuilds the model's shape",
        examples=[{"block_size": 8, "n_embd": 24, "n_hidden": 512, "n_layers": 2,
                   "dropout": 0.2}])
    training: dict[str, Any] = Field(description="how it was trained (optimiser, steps, seed)")
    n_params: int = Field(description="trainable parameters (a bigram's counts count)")
    block_size: int = Field(description="characters of context the model sees")
    vocab: str = Field(description="id -> character; '.' (id 0) marks start and end",
                       examples=[".abcdefghijklmnopqrstuvwxyz"])
    vocab_size: int = Field(examples=[27])
    dataset: DatasetInfo
    split: SplitInfo
    metrics: Metrics = Field(description="mean NLL per character (nats) on train/val/test")
    training_seconds: float
    created: str = Field(description="ISO 8601, UTC", examples=["2025-11-27T21:41:00+00:00"])
    torch_version: str
    namelab_version: str
    has_bigram_table: bool = Field(description="GET .../bigram works for this model")
    has_embeddings: bool = Field(description="GET .../embeddings works for this model")
    history: History = Field(description="loss curves: steps, training and validation NLL")
    held_out: HeldOut | None = Field(
        None, description="the reference of `plausibility`: how many held-out names (distinct "
                          "validation and test names that are not training names; `split` says "
                          "which parts) and their NLL per character at 0%, 1%, ..., 100%, and "
                          "by length; null for a checkpoint without them")
    plausibility_unavailable: str | None = Field(
        None, description="why scores under this model have a null plausibility, if they do")
    user: bool = Field(
        False, description="a user's model (from NAMELAB_USER_MODELS_DIR: trained through the "
                           "app, deletable with DELETE /api/models/{model}), not a shipped one")
    hidden_layers: HealthOut | None = Field(
        None, description="the hidden layers' health over a fixed sample of names: histogram, "
                          "saturated share, dead units, mean and std; null for a kind without "
                          "hidden layers (the bigrams)")

    @classmethod
    def of(cls, m: LoadedModel) -> ModelCard:
        meta, model = m.meta, m.model
        return cls(
            name=m.name, type=meta.model_type, hyperparameters=meta.config,
            training=meta.training, n_params=meta.n_params, block_size=model.block_size,
            vocab=meta.vocab, vocab_size=len(model.vocab), dataset=meta.dataset,
            split=meta.split, metrics=meta.metrics, training_seconds=meta.training_seconds,
            created=meta.created, torch_version=meta.torch_version,
            namelab_version=meta.namelab_version,
            has_bigram_table=m.kind.has_table, has_embeddings=m.kind.has_embeddings,
            history=meta.history,
            held_out=meta.held_out, plausibility_unavailable=m.plausibility.reason,
            hidden_layers=_health_of(m), user=m.user,
        )


def _health_of(m: LoadedModel) -> dict[str, Any] | None:
    h = health(m)
    return None if h is None else dataclasses.asdict(h)


# --- sampling ----------------------------------------------------------------------------------


class SampleRequest(SampleParams):
    """POST .../sample: a JSON object; every field is optional."""

    model_config = ConfigDict(
        extra="forbid", strict=True,
        json_schema_extra={"examples": [
            {"n": 5, "temperature": 0.8, "seed": 42},
            {"n": 3, "prefix": "an", "top_k": 5, "unique": True, "exclude_training": True},
        ]},
    )


class SampleResponse(BaseModel):
    model: str
    seed: int = Field(description="the seed used (drawn when the request had none)")
    exhausted: bool = Field(
        description="true when fewer than n names came back: unique/exclude_training, or "
                    "what the names must fit, made more too hard to find within the bounded "
                    f"effort (at most {DRAWS_BOUND} names drawn; {CONSTRAINED_DRAWS_BOUND} "
                    "with suffix, contains, pattern or min_len; fewer when the request's "
                    "cost budget, NAMELAB_REQUEST_FLOPS, pays for fewer), or the request's "
                    "deadline passed first "
                    "(timed_out); the names are then those of the whole rounds of draws "
                    "done by then (a round it stopped partway is dropped: the names it had "
                    "finished would be the short ones)")
    timed_out: bool = Field(
        description=f"true when the request's deadline (a safety net of {MODEL_SECONDS:g} s "
                    "of model time) stopped the sampling: the names found by then depend on "
                    "the machine and its load. Otherwise only counts bound the work, and the "
                    "same request with the same seed gives the same names on any machine")
    drawn: int = Field(
        description="names drawn from the model at the request's knobs. The bigram and the "
                    "neural bigram are sampled exactly from P(name | fits) (every draw fits); "
                    "the other kinds draw from the unconstrained model and keep the names that "
                    "fit (rejection: exact samples, 1 / constraint_mass draws a name). A name "
                    "that would be longer than max_len does not fit: it is drawn again, never "
                    "cut", examples=[1000])
    fits: int = Field(description="of those, the names that fit prefix, suffix, contains, "
                                  "pattern, min_len and max_len (before unique and "
                                  "exclude_training)", examples=[1000])
    constraint_mass: float | None = Field(
        description="the probability that a name this model samples at these knobs fits the "
                    "constraints (every name having at least one letter): exact when "
                    "mass_exact, else estimated as fits / drawn; null when nothing was drawn",
        examples=[0.0134])
    mass_exact: bool = Field(description="constraint_mass is computed exactly (backward "
                                         "messages of the bigram kinds), not estimated")
    names: list[SampledName]


# --- scoring -----------------------------------------------------------------------------------

class ScoreRequest(ScoreParams):
    """POST .../score: a JSON object."""

    model_config = ConfigDict(
        extra="forbid", strict=True,
        json_schema_extra={"examples": [{"names": ["emma", "José", "xqzvk"]}]},
    )


class StepOut(BaseModel):
    context: str = Field(description="the model's context window, '.'-padded")
    char: str = Field(description="the letter predicted, or '.' for the end of the name")
    prob: float
    log_prob: float | None = Field(description=NULL_IF_ZERO)
    rank: int = Field(description="1 = the model's most likely next character")


class NameScoreOut(BaseModel):
    name: str = Field(description="as given")
    normalized: str = Field(description="what was scored")
    log_prob: float | None = Field(description=f"sum over the letters and the end token; "
                                               f"{NULL_IF_ZERO}")
    nll_per_char: float | None = Field(description="-log_prob / (letters + 1); null with "
                                                   "log_prob")
    perplexity: float | None = Field(description="exp(nll_per_char); null with log_prob")
    plausibility: float | None = Field(
        description="percentile among held-out names of the same length: the distinct names "
                    "of the model's validation and test splits that are not training names. "
                    "The name's NLL per character is standardised by the median and spread of "
                    "held-out names of its length (pooled with the nearest lengths where they "
                    "are few) and read off the quantiles of all held-out names' standardised "
                    "NLL, which the checkpoint stores. 90 = more plausible than 90% of real "
                    "names of its length the model never saw, 50 a typical one; e.g. emma "
                    "under the shipped bigram ~55, bob ~10, xqzvk 0. Null when "
                    "the checkpoint has no held-out quantiles (made before they existed, or "
                    "trained without a validation split): the model card says why")
    in_data: bool = Field(description=IN_DATA)
    in_training_set: bool = Field(description=IN_TRAINING)
    steps: list[StepOut]


class NameErrorOut(BaseModel):
    index: int = Field(description="the name's position in the request's `names`")
    name: str = Field(description="as given")
    type: str = Field(description="what kind of problem, e.g. invalid_name",
                      examples=["invalid_name"])
    msg: str = Field(description="what is wrong with it, in one sentence")


class ScoreResponse(BaseModel):
    model: str
    results: list[NameScoreOut] = Field(
        description="one per name that can be scored, in the order given (a name in `errors` "
                    "has none)")
    errors: list[NameErrorOut] = Field(
        default_factory=list,
        description="one per name that cannot be scored (a letter outside the model's "
                    "alphabet, too long once normalised), in the order given: one bad name "
                    "does not cost the rest, as on the score page and in `namelab score`. When "
                    "no name can be scored the answer is a 422 naming each")


class CompareEntry(NameScoreOut):
    model: str
    type: str


class CompareResponse(BaseModel):
    name: str = Field(description="as given")
    normalized: str = Field(description="what was scored")
    results: list[CompareEntry] = Field(description="one per loaded model, in name order")


# --- search and tables -------------------------------------------------------------------------


class TopNameOut(BaseModel):
    name: str
    log_prob: float
    prob: float

    @classmethod
    def of(cls, t: TopName) -> TopNameOut:
        return cls(name=t.name, log_prob=t.log_prob, prob=t.prob)


class TopResponse(BaseModel):
    model: str
    prefix: str = Field(description="the normalised prefix")
    names: list[TopNameOut] = Field(description="most probable first")
    exhausted: bool = Field(description=f"true when the effort bound ({MAX_EXPANSIONS:,} "
                                        "prefixes expanded) or the request's deadline "
                                        "(timed_out) stopped the search before k names were "
                                        "found; the names found are still the most probable")
    timed_out: bool = Field(description="true when the request's deadline (a safety net of "
                                        f"{MODEL_SECONDS:g} s of model time) stopped the "
                                        "search: how far it got depends on the machine and "
                                        "its load. Otherwise only the effort bound, a count, "
                                        "limits the search, and the same request gives the "
                                        "same names anywhere")


class BigramTable(BaseModel):
    model: str
    labels: list[str] = Field(description="row and column labels: '.' then the letters")
    counts: list[list[int]] | None = Field(
        description="counts[i][j]: how often labels[j] followed labels[i] in the training "
                    "names; null for a neural bigram, which has probabilities but no counts")
    probs: list[list[float]] = Field(description="probs[i][j] = P(labels[j] | labels[i]); "
                                                 "each row sums to 1")


class Neighbour(BaseModel):
    label: str
    similarity: float = Field(description="cosine similarity of the centred vectors (the "
                                          "mean embedding subtracted first)")


class EmbeddingsResponse(BaseModel):
    model: str
    labels: list[str]
    dim: int = Field(description="embedding dimensions (n_embd)")
    vectors: list[list[float]] = Field(description="one vector per label")
    projection: Projection = Field(
        description="method 'raw': the two coordinates of a 2-D embedding (dims: which two); "
                    "'pca': the first two principal components of the centred vectors scaled to "
                    "unit length; points: one (x, y) per label; "
                    "explained_variance: the fraction of the variance along each axis")
    neighbours: dict[str, list[Neighbour]] = Field(
        description="each label's nearest other labels by cosine similarity, most similar first")

    @classmethod
    def of(cls, model: str, v: EmbeddingView) -> EmbeddingsResponse:
        return cls(
            model=model, labels=v.labels, dim=v.dim, vectors=v.vectors, projection=v.projection,
            neighbours={k: [Neighbour(label=lab, similarity=s) for lab, s in near]
                        for k, near in v.neighbours.items()},
        )


# --- looking inside (app/api/explore.py) -------------------------------------------------------


class SymbolOut(BaseModel):
    char: str = Field(description="the next letter, or '.' for the end of the name")
    label: str = Field(description="the letter, or 'end'")
    prob: float = Field(description="P(symbol | prefix) under the model (temperature 1): the "
                                    "score page's number for this step")
    log_prob: float | None = Field(description=NULL_IF_ZERO)
    sampling_prob: float = Field(description="the probability of drawing it at this step with "
                                             "these knobs and constraints (see `exact`); 0 when "
                                             "cut")
    kept: bool = Field(description="false when the knobs cut it (temperature, top-k, top-p, "
                                   "min-p; and the end of the name after an empty prefix: a "
                                   "name has a letter)")
    fits: bool = Field(description="false when no name going on with it can fit the "
                                   "constraints (suffix, contains, pattern, min_len, max_len)")


class NextResponse(BaseModel):
    model: str
    prefix: str = Field(description="the normalised prefix")
    temperature: float
    top_k: int | None
    top_p: float | None
    min_p: float
    suffix: str
    contains: str
    pattern: str
    min_len: int
    max_len: int
    exact: bool = Field(description="true (the bigram kinds): sampling_prob is exactly what the "
                                    "sampler draws this step from, P(next | prefix, the name "
                                    "fits) (max_len included); false (the other kinds): the "
                                    "knobs' distribution renormalised over the symbols that "
                                    "fit, not the exact conditional the rejection sampler "
                                    "draws from")
    constraint_mass: float | None = Field(description="exact kinds: P(the name fits | prefix) "
                                                      "at the knobs; null otherwise")
    log_prob: float | None = Field(description="log P(the prefix's letters), no end token; "
                                               + NULL_IF_ZERO)
    nll_per_letter: float | None = Field(description="-log_prob / letters; null for an empty "
                                                     "prefix")
    steps: list[StepOut] = Field(description="the prefix's letters, as /score gives them")
    greedy: str = Field(description="the prefix continued by the most likely symbol that can "
                                    "still fit, each step")
    symbols: list[SymbolOut] = Field(description="every symbol of the vocabulary, most "
                                                 "probable first")
    decade: int | None = Field(None, description="a conditional model's decade (null: any)")
    sex: str | None = Field(None, description="a conditional model's sex (null: any)")
    vs_decade: int | None = Field(None, description="the decade of `versus`")
    versus: list[SymbolOut] | None = Field(None, description="the symbols under vs_decade (same "
                                                             "prefix, sex and knobs), most "
                                                             "probable first; null without one")


class AttentionResponse(BaseModel):
    model: str
    name: str = Field(description="the normalised name")
    positions: list[str] = Field(description="the start mark '.', then each letter")
    weights: list[list[list[list[float]]]] = Field(
        description="weights[layer][head][t][s]: how much position t attends to position s; "
                    "each row sums to 1, and s > t is 0 (causal)")
    mean: list[list[list[float]]] = Field(description="mean[layer][t][s]: averaged over heads")


class LayerHealthOut(BaseModel):
    label: str
    activation: Literal["tanh", "gelu", "relu"]
    units: int
    rows: int = Field(description="activations per unit in the sample: one per prediction "
                                  "(and per fused position, in a WaveNet)")
    mean: float
    std: float
    saturated: float | None = Field(description="share of activations with |h| > 0.97 (tanh "
                                                "only; null for GELU and ReLU)")
    dead: list[int] = Field(description="units saturated (tanh) or at most 0 (GELU, ReLU) on "
                                        "every row of the sample")
    histogram: list[int] = Field(description="counts in equal bins from lo to hi")
    lo: float
    hi: float


class HealthOut(BaseModel):
    source: Literal["validation", "training"] = Field(
        description="which names the fixed sample comes from (training when the validation "
                    "names cannot be rebuilt: why says so)")
    why: str
    n_names: int
    layers: list[LayerHealthOut]


class TrainRequest(BaseModel):
    """A training job (POST /api/train as JSON): the names one way (names, text or dataset),
    the kind, the new model's name and the kind's options (`namelab train --model KIND --help`
    lists them, with their bounds and defaults)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description=f"the model kind: {', '.join(KINDS)}", examples=["bigram"])
    name: str = Field(description="the new model's name: 1-64 of a-z, 0-9, '_', '.', '-'",
                      examples=["pets"])
    names: list[Any] | None = Field(None, description="the names, at most 200,000; each is "
                                    "normalised, and lines without a usable name are dropped "
                                    "and counted", examples=[["Rex", "Fido", "Bella"]])
    text: str | None = Field(None, description="the names, one per line")
    dataset: str | None = Field(None, description="a slice of the SSA records",
                                examples=["ssa:1990-1999:F"])
    options: dict[str, Any] | None = Field(None, description="the kind's options; the rest "
                                           "take the kind's defaults", examples=[{"steps": 2000}])
