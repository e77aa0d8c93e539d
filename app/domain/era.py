"""When does a name sound like it is from? P(decade, sex | name) by Bayes over a conditional
model (app/lm/conditional.py), the per-decade report and the era check (issue 27).

    P(d, s | name) = P(name | d, s) P(d, s) / sum over the 28 (d', s') of the same

P(name | d, s) is the model's probability of the whole name (end token included) under that
condition; the prior P(d, s) is the records' (each condition's share of the births of
1880-2017, kept in the checkpoint) or uniform. Pure domain code over app.lm: no web here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch

from app.data.decades import DECADES, SEX_WORDS, SEXES, decade_words
from app.lm.base import LanguageModel
from app.lm.bigram import Bigram, BigramConfig
from app.lm.scoring import log_probs
from app.lm.train import evaluate

Prior = Literal["records", "uniform"]
PRIORS: tuple[Prior, ...] = ("records", "uniform")


def condition_log_probs(model: LanguageModel, names: list[str]) -> torch.Tensor:
    """log P(name | decade, sex) of each name under each condition: (N, 2, 14), float64."""
    out = torch.empty(len(names), len(SEXES), len(DECADES), dtype=torch.float64)
    for s in range(len(SEXES)):
        for d in range(len(DECADES)):
            out[:, s, d] = torch.tensor(log_probs(model.conditioned(d, s), names),
                                        dtype=torch.float64)
    return out


class BadPrior(ValueError):
    """The checkpoint's prior of births is not a distribution (a file's numbers are not
    trusted): the uniform prior still works."""


def log_prior(model: LanguageModel, prior: Prior) -> torch.Tensor:
    """log P(sex, decade): (2, 14). The records' prior must be a distribution (BadPrior)."""
    if prior == "uniform":
        return torch.full((len(SEXES), len(DECADES)), -math.log(len(SEXES) * len(DECADES)),
                          dtype=torch.float64)
    p = model.prior.double()
    if not (torch.isfinite(p).all() and (p >= 0).all() and p.sum() > 0):
        raise BadPrior("this checkpoint's prior of births is not a distribution (negative, "
                       "infinite or all zero); use prior=uniform")
    return (p / p.sum()).log()


def posterior(logp: torch.Tensor, logprior: torch.Tensor) -> torch.Tensor:
    """P(sex, decade | name) for each row of logp (N, 2, 14): Bayes, normalised in log space."""
    joint = logp + logprior  # (N, 2, 14)
    return torch.softmax(joint.reshape(len(joint), -1), dim=1).reshape(joint.shape)


@dataclass(frozen=True)
class Era:
    name: str
    prior: Prior
    posterior: list[list[float]]  # [sex][decade], summing to 1
    decade: int  # the most likely (decade, sex): the decade's start year
    sex: str  # 'F' or 'M'
    probability: float  # its posterior probability
    by_decade: list[float]  # P(decade | name), both sexes summed

    @property
    def sentence(self) -> str:
        """'sounds most like the 1920s (girls), 38%'."""
        return (f"sounds most like {decade_words(DECADES.index(self.decade))} "
                f"({SEX_WORDS[self.sex]}), {100 * self.probability:.0f}%")


def eras(model: LanguageModel, names: list[str], prior: Prior) -> list[Era]:
    """The posterior of each (valid, normalised) name."""
    post = posterior(condition_log_probs(model, names), log_prior(model, prior))
    out = []
    for name, p in zip(names, post, strict=True):
        best = int(p.argmax())
        s, d = divmod(best, len(DECADES))
        out.append(Era(name=name, prior=prior, posterior=p.tolist(), decade=DECADES[d],
                       sex=SEXES[s], probability=float(p[s, d]), by_decade=p.sum(0).tolist()))
    return out


# --- the figures of `namelab eval` on a conditional model ---

@dataclass(frozen=True)
class DecadeRow:
    decade: int
    n_words: int
    model_nll: float  # the conditional model's, each word under its own decade and sex
    bigram_nll: float  # the add-one bigram of that decade's training examples
    # Per baby rather than per example (each example times its births), when the words carry
    # births: the model's, and that of the add-one bigram of the decade's training births.
    births_model_nll: float | None = None
    births_bigram_nll: float | None = None


def per_decade(model: LanguageModel, train: list, val: list) -> list[DecadeRow]:
    """Validation NLL per decade: the conditional model given each example's decade and sex,
    against a bigram (smoothing 1, as the shipped bigram) counted on that decade's training
    examples; both per example (as every NLL of Namelab), and, for examples with births (an
    app.data.Counted list, as the decades data's), per baby too. Examples are
    app.data.decades.Record words."""
    rows = []
    births = {id(train): getattr(train, "counts", None), id(val): getattr(val, "counts", None)}
    for d, start in enumerate(DECADES):
        mine = [w for w in val if w.decade == d]
        if not mine:
            continue
        ours = [w for w in train if w.decade == d]
        bigram = Bigram(model.vocab, BigramConfig(smoothing=1.0)).fit(ours)
        row = DecadeRow(start, len(mine), evaluate(model, mine), evaluate(bigram, mine))
        if births[id(train)] is not None and births[id(val)] is not None:
            n_val = [n for w, n in zip(val, births[id(val)], strict=True) if w.decade == d]
            n_train = [n for w, n in zip(train, births[id(train)], strict=True)
                       if w.decade == d]
            bigram = Bigram(model.vocab, BigramConfig(smoothing=1.0)).fit(ours, n_train)
            row = dataclasses.replace(
                row, births_model_nll=births_nll(model, mine, n_val),
                births_bigram_nll=births_nll(bigram, mine, n_val))
        rows.append(row)
    return rows


def births_nll(model: LanguageModel, words: list, births: list[int]) -> float:
    """The NLL per character of every baby of `words` (Record words, each under its own
    condition for a conditional model; `births` of each): each word's NLL times its births,
    over the characters of all those babies."""
    conditional = hasattr(model, "conditioned")
    total = 0.0
    for key in sorted({(w.decade, w.sex) for w in words}):
        mine = [(w, n) for w, n in zip(words, births, strict=True) if (w.decade, w.sex) == key]
        m = model.conditioned(*key) if conditional else model
        logp = log_probs(m, [str(w) for w, _ in mine])
        total -= sum(n * lp for (_, n), lp in zip(mine, logp, strict=True))
    return total / sum(n * (len(w) + 1) for w, n in zip(words, births, strict=True))


@dataclass(frozen=True)
class EraCheck:
    n_names: int
    top1: float
    top3: float
    mae: float  # mean absolute error, in decades
    baseline_decade: int  # the most common decade of the held-out names
    baseline_top1: float
    baseline_top3: float  # its three most common decades
    baseline_mae: float


def era_check(model: LanguageModel, held_out: dict[str, int], prior: Prior,
              batch: int = 2048) -> EraCheck:
    """The predicted decade (the argmax of P(decade | name), sexes summed) of each held-out
    name of known decade, against the truth; the baseline always predicts the most common
    decade of these very names (the best a constant can do at top-1: it favours the baseline)."""
    names = sorted(held_out)
    truth = torch.tensor([held_out[x] for x in names])
    by_decade = []
    for i in range(0, len(names), batch):
        chunk = names[i : i + batch]
        post = posterior(condition_log_probs(model, chunk), log_prior(model, prior))
        by_decade.append(post.sum(1))  # (n, 14)
    p = torch.cat(by_decade)
    top3 = p.topk(3, dim=1).indices
    counts = torch.bincount(truth, minlength=len(DECADES))
    common = counts.argsort(descending=True, stable=True)[:3]
    return EraCheck(
        n_names=len(names),
        top1=float((top3[:, 0] == truth).double().mean()),
        top3=float((top3 == truth[:, None]).any(1).double().mean()),
        mae=float((top3[:, 0] - truth).abs().double().mean()),
        baseline_decade=DECADES[int(common[0])],
        baseline_top1=float((truth == common[0]).double().mean()),
        baseline_top3=float(torch.isin(truth, common).double().mean()),
        baseline_mae=float((truth - common[0]).abs().double().mean()),
    )
