"""An MLP of names conditioned on decade and sex: P(next letter | context, decade, sex).

The Bengio MLP of app/lm/mlp.py, with two embedding tables of the hidden width: D, a row per
decade (1880s..2010s) plus one for "any decade", and S, a row per sex plus "any sex". The rows
of the example's condition are added to the first hidden layer's pre-activation, before its
LayerNorm:

    h1 = tanh(LN(W1 concat(C[x_1..x_T]) + b1 + D[decade] + S[sex]))

That is the same function as concatenating one-hot codes of decade and sex to the input (W1's
columns for them are D and S), at the cost of two lookups; and the condition is then a
different first-layer bias, so the folded fast form of the MLP (`mlp.Folded`) serves every
condition with the same tables and weights (`Folded.of(model, bias=...)`).

Condition dropout: in training, each example's decade is replaced by "any decade" with
probability `cond_dropout`, and its sex by "any sex" independently, so one model is both the
conditional model (decade and sex given) and the unconditional one (both "any"), which is what
every route that names no condition uses: score, sample, top, next, embeddings run unchanged.

Weighting by births (`births_weight`, w): training draws each (name, sex, decade) example in
proportion to its births**w (`example_weights`, the trainer's weighted minibatches). At w = 1 the
model learns P(name | decade, sex) as the share of that decade's babies of that sex given the
name, which is what Bayes with the records' prior of births needs for P(decade | name) to mean
"when was this name given"; at w = 0 (one example per record, as before) it learns which
distinct names existed, and a name given in every decade (mildred) came out flat (the 1950s at
18%). Default 1, measured (bench/era_weighting.py, 4,000 steps, docs/models.md): at 1, eight
common names land in the decade of most of their births 6 times of 8 with about the records'
share of it (8 of 8 in the shipped run), at 0.5 3 times, at 0 4 times with flat posteriors
(13-31%); the era check on rare held-out names is no better for it
(top-1 30.0% at 1, 30.2% at 0.5, 27.7% at 0; mean error 1.89, 1.66, 1.68 decades), and the
per-example validation NLL is worse (each decade still beats its bigram). The question users
ask of a real name is the first. Evaluation is never weighted: NLLs stay per example (`namelab
eval` adds the per-baby figure).

How the condition travels: contexts of `block_size` ids are unconditional (any, any); a
conditional example is a context with two more columns, its decade index and its sex index
(`examples` reads them off `app.data.decades.Record` words; a plain word is "any", "any"). Serving a
condition goes through `conditioned(decade, sex)`: a view of the model that reads plain
contexts under that condition, so sampling, scoring and the next-letter table need no change.
The model also keeps the records' prior, the share of births in each (sex, decade), set by
`note_dataset` at training (a buffer: it travels in the checkpoint with the weights).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from app.data.decades import DECADES, SEXES
from app.lm.base import LanguageModel, build_examples, embedding
from app.lm.config import OptimConfig, param
from app.lm.kind import Kind
from app.lm.mlp import MLP, Folded, MLPConfig
from app.lm.vocab import Vocab

N_DECADES, N_SEXES = len(DECADES), len(SEXES)
ANY_DECADE, ANY_SEX = N_DECADES, N_SEXES  # the extra rows of D and S


@dataclass
class ConditionalConfig(MLPConfig):
    # ~10x names.txt's letters: less dropout than the MLP's 0.3 (not tuned: one run, see
    # docs/models.md)
    dropout: float = param(0.1, "dropout after each hidden layer, in training only", ge=0, lt=1)
    cond_dropout: float = param(
        0.2, "training's probability of hiding an example's decade (and, independently, its "
             "sex), so that the model also learns names of any decade and sex", ge=0, le=1)
    births_weight: float = param(
        1.0, "training draws each (name, sex, decade) example in proportion to its "
             "births**w: 1 = as babies were named, 0 = one per record", ge=0, le=1)


class ConditionalMLP(MLP):
    kind = "conditional"

    def __init__(self, vocab: Vocab, cfg: ConditionalConfig) -> None:
        super().__init__(vocab, cfg)
        self.D = embedding(N_DECADES + 1, cfg.n_hidden)  # (15, n_hidden): decades, any
        self.S = embedding(N_SEXES + 1, cfg.n_hidden)  # (3, n_hidden): F, M, any
        # P(sex, decade) of the records (births); uniform until note_dataset sets it
        self.register_buffer("prior", torch.full((N_SEXES, N_DECADES), 1 / (N_SEXES * N_DECADES),
                                                 dtype=torch.float64))
        self._views: dict[tuple[int, int], Conditioned] = {}

    @property
    def n_params(self) -> int:
        """The weights and the prior's 28 numbers: every number the checkpoint stores."""
        return sum(t.numel() for t in self.state_dict().values())

    def init_weights(self, generator: torch.Generator) -> None:
        """The MLP's init; the condition rows start at zero (an unconditional MLP at step 0)."""
        super().init_weights(generator)
        with torch.no_grad():
            self.D.weight.zero_()
            self.S.weight.zero_()

    def examples(self, words: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """build_examples' contexts with two more columns, the word's decade and sex."""
        X, Y = build_examples(words, self.vocab, self.block_size)
        steps = torch.tensor([len(w) + 1 for w in words])
        cond = torch.tensor([(getattr(w, "decade", ANY_DECADE), getattr(w, "sex", ANY_SEX))
                             for w in words], dtype=torch.long).reshape(-1, 2)
        return torch.cat([X, cond.repeat_interleave(steps, dim=0)], dim=1), Y  # (N, T + 2)

    def example_weights(self, words: list[str]) -> torch.Tensor | None:
        """Each example's births (the words' `counts`, an `app.data.decades.Records` list's)
        to the power births_weight, on every row of its name; None (every row alike) at 0 or
        for words without counts."""
        counts, w = getattr(words, "counts", None), self.cfg.births_weight
        if counts is None or w == 0:
            return None
        steps = torch.tensor([len(x) + 1 for x in words])
        return torch.tensor(counts, dtype=torch.float64).pow(w).repeat_interleave(steps)

    def note_dataset(self, words: list[str]) -> None:
        """The prior: each (sex, decade)'s share of the births of the records of the data (an
        `app.data.decades.Records` list carries them: `births`); uniform for other data."""
        n = getattr(words, "births", None)
        if n is not None and sum(map(sum, n)) > 0:
            t = torch.tensor(n, dtype=torch.float64)
            self.prior.copy_(t / t.sum())

    def conditions(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) or (B, T + 2) -> the contexts (B, T) and conditions (B, 2)."""
        T = self.block_size
        if idx.shape[1] == T:
            return idx, torch.tensor([ANY_DECADE, ANY_SEX]).expand(len(idx), 2)
        if idx.shape[1] != T + 2:
            raise ValueError(f"contexts of {T} or {T + 2} columns expected, got {idx.shape[1]}")
        return idx[:, :T], idx[:, T:]

    def layer_logits(self, idx: torch.Tensor) -> torch.Tensor:
        ctx, cond = self.conditions(idx)
        decade, sex = cond[:, 0], cond[:, 1]
        p = self.cfg.cond_dropout
        if self.training and p > 0:  # torch's global generator, seeded as dropout's masks
            decade = torch.where(torch.rand(len(idx)) < p, ANY_DECADE, decade)
            sex = torch.where(torch.rand(len(idx)) < p, ANY_SEX, sex)
        first, rest = self.hidden[0], self.hidden[1:]
        h = first(self.C(ctx).flatten(1)) + self.D(decade) + self.S(sex)  # (B, n_hidden)
        return self.head(rest(h))  # (B, V)

    def bias(self, decade: int, sex: int) -> torch.Tensor:
        """The first layer's bias under a condition: b1 + D[decade] + S[sex]."""
        return self.hidden[0].bias + self.D.weight[decade] + self.S.weight[sex]

    def load_state_dict(self, *args, **kwargs):
        self._views = {}
        return super().load_state_dict(*args, **kwargs)

    def _apply(self, *args, **kwargs):  # to(), float(), ...: the views' forms would be stale
        self._views = {}
        return super()._apply(*args, **kwargs)

    def inference_form(self) -> ConditionalForm:
        self._views = {}
        return ConditionalForm(self, Folded.of(self, bias=self.bias(ANY_DECADE, ANY_SEX)))

    def conditioned(self, decade: int | None, sex: int | None) -> LanguageModel:
        """This model under a condition (indices into DECADES and SEXES; None: any), as a model
        of plain contexts: frozen (and kept) when this one is frozen."""
        key = (ANY_DECADE if decade is None else decade, ANY_SEX if sex is None else sex)
        if not (0 <= key[0] <= ANY_DECADE and 0 <= key[1] <= ANY_SEX):
            raise ValueError(f"no condition {key}")
        if not self._frozen:
            return Conditioned(self, *key)
        if key not in self._views:
            self._views[key] = Conditioned(self, *key).freeze()
        return self._views[key]


class Conditioned(LanguageModel):
    """A conditional model under one fixed condition: contexts of block_size ids in, logits out.
    Shares the model's weights (its only module)."""

    kind = "conditional"

    def __init__(self, model: ConditionalMLP, decade: int, sex: int) -> None:
        super().__init__(model.vocab, model.block_size)
        self.model, self.decade, self.sex = model, decade, sex

    def layer_logits(self, idx: torch.Tensor) -> torch.Tensor:
        cond = torch.tensor([self.decade, self.sex]).expand(len(idx), 2)
        return self.model.layer_logits(torch.cat([idx, cond], dim=1))

    def inference_form(self) -> Biased | None:
        form = self.model._fast
        return None if form is None else form.under(self.decade, self.sex)


@dataclass(frozen=True)
class Biased:
    """The folded network with another first-layer bias (no table of short contexts: building
    one per condition would cost more than it saves)."""

    folded: Folded

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        return self.folded.network(idx)

    @property
    def rows_independent(self) -> bool:
        return self.folded.rows_independent


@dataclass(frozen=True)
class ConditionalForm:
    """The frozen model's fast form: plain contexts through the folded "any" network; contexts
    with condition columns (evaluation's) grouped by condition, each through its bias."""

    model: ConditionalMLP
    folded: Folded

    def under(self, decade: int, sex: int) -> Biased:
        return Biased(dataclasses.replace(self.folded, bias=self.model.bias(decade, sex)))

    @property
    def rows_independent(self) -> bool:
        return self.folded.rows_independent

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        T = self.model.block_size
        if idx.shape[1] == T:
            return self.folded(idx)
        ctx, cond = self.model.conditions(idx)
        key = cond[:, 0] * (N_SEXES + 1) + cond[:, 1]
        out = torch.empty(len(idx), len(self.model.vocab))
        for k in key.unique().tolist():
            rows = key == k
            out[rows] = self.under(k // (N_SEXES + 1), k % (N_SEXES + 1))(ctx[rows])
        return out


KIND = Kind(
    name="conditional",
    title="an era-conditioned MLP",
    description="the MLP with decade and sex embeddings added to its first hidden layer, "
                "trained with condition dropout: P(name | decade, sex), and P(name) without "
                "them (data: ssa:1880-2017:decades)",
    model=ConditionalMLP,
    config=ConditionalConfig,
    # The shipped run (docs/models.md): ~10x names.txt's letters, so more steps.
    training=OptimConfig(steps=15_000),
    tiny=ConditionalConfig(block_size=3, n_embd=4, n_hidden=32, n_layers=1, dropout=0.0),
    tiny_training=OptimConfig(steps=200, batch_size=32, warmup=10, eval_interval=50),
    quick=ConditionalConfig(n_hidden=64, n_layers=1, block_size=3),
    quick_training=OptimConfig(steps=600, batch_size=128, warmup=50),
    has_embeddings=True,
    has_conditions=True,
)
