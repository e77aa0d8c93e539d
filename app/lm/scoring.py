"""Scoring names: log-likelihood, per-letter breakdown, plausibility among held-out names."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import TypedDict

import torch

from app.lm.base import LanguageModel, build_examples, decode_rows
from app.lm.vocab import BOUNDARY


class Step(TypedDict):
    """One prediction: the model saw `context` and gave `char` this probability.

    A dict, not a class: scoring 1000 names makes ~7000 of these. A dict of strings and numbers
    is cheap to build, is never walked by the garbage collector (CPython does not track it),
    and is what the JSON encoder writes fastest.
    """

    context: str  # the model's context window, '.'-padded (block_size characters)
    char: str  # the letter, or '.' for the end of the name
    prob: float
    log_prob: float
    rank: int  # 1 = the model's most likely next character


@dataclass
class Score:
    name: str
    log_prob: float  # log P(name): sum over the letters and the end token
    n_chars: int  # predictions made: letters + 1 for the end token
    steps: list[Step]

    @property
    def nll_per_char(self) -> float:
        return -self.log_prob / self.n_chars

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.nll_per_char, 700.0))


@torch.no_grad()
def _step_log_probs(model: LanguageModel, names: list[str]):
    X, Y = build_examples(names, model.vocab, model.block_size)
    if model.training:  # eval() walks every submodule: ~0.2 ms a call on the MLP
        model.eval()
    logits = model.word_logits(names, X)
    logp = torch.log_softmax(logits.double(), dim=1)  # (N, V)
    target = logp.gather(1, Y[:, None]).squeeze(1)  # (N,)
    return X, Y, logp, target


def _totals(names: list[str], target: torch.Tensor) -> torch.Tensor:
    """Per-step log-probabilities (in build_examples' order) summed per name: (names,)."""
    lengths = torch.tensor([len(n) + 1 for n in names])
    owner = torch.repeat_interleave(torch.arange(len(names)), lengths)
    return torch.zeros(len(names), dtype=torch.float64).index_add_(0, owner, target)


def log_probs(model: LanguageModel, names: list[str]) -> list[float]:
    """log P(name) for each name (valid, normalised names), in one batched forward pass."""
    if not names:
        return []
    _, _, _, target = _step_log_probs(model, names)
    return _totals(names, target).tolist()


def score_names(model: LanguageModel, names: list[str]) -> list[Score]:
    """The full breakdown for each name (valid, normalised names)."""
    if not names:
        return []
    X, _, logp, target = _step_log_probs(model, names)
    ranks = (logp > target[:, None]).sum(dim=1) + 1
    # All steps of all names at once, in build_examples' order: name by name, letter by letter.
    contexts, chars = decode_rows(X, model.vocab), "".join(n + BOUNDARY for n in names)
    columns = zip(contexts, chars, target.exp().tolist(), target.tolist(), ranks.tolist(),
                  strict=True)
    steps: list[Step] = [{"context": c, "char": ch, "prob": p, "log_prob": lp, "rank": r}
                         for c, ch, p, lp, r in columns]
    scores, i = [], 0
    for name, total in zip(names, _totals(names, target).tolist(), strict=True):
        k = len(name) + 1
        scores.append(Score(name=name, log_prob=total, n_chars=k, steps=steps[i : i + k]))
        i += k
    return scores


QUANTILES = 101  # the reference's NLL per character at 0%, 1%, ..., 100%
NLL_CAP = 1000.0  # nats per character: P < e^-1000 per letter, i.e. impossible


def nll_quantiles(model: LanguageModel, names: list[str]) -> list[float]:
    """The NLL per character of each distinct name, at 0%, 1%, ..., 100% (linear interpolation).

    The reference distribution of Plausibility: computed once at training time from names the
    model did not train on, and stored with the checkpoint.
    """
    names = sorted(set(names))
    if not names:
        raise ValueError("no names to take quantiles of")
    lps = log_probs(model, names)
    nll = torch.tensor([-lp / (len(n) + 1) for n, lp in zip(names, lps, strict=True)],
                       dtype=torch.float64)
    # A name impossible under the model (a bigram without smoothing) has an infinite NLL, which
    # JSON cannot store: it is kept as NLL_CAP nats per character, worse than any possible name.
    nll = nll.clamp(max=NLL_CAP)
    q = torch.quantile(nll, torch.linspace(0, 1, QUANTILES, dtype=torch.float64))
    return [round(v, 6) for v in q.tolist()]


class Plausibility:
    """Where a name's NLL per character falls among held-out names: names the model never
    trained on (its validation split), summarised by their quantiles.

    percentile(x) = % of those names with a higher (worse) NLL per character than x, read off
    the quantiles by linear interpolation: 90 means the model finds x more plausible than 90%
    of real names it did not see. Held-out names, not training names: a model that fits its
    training set gives those a lower NLL than any new name, which made real names look
    implausible under the better model.

    Without quantiles (a checkpoint made before they were stored, or trained without a
    validation split) percentile() is None and `reason` says why.
    """

    def __init__(self, quantiles: list[float] | None, n_names: int = 0,
                 reason: str | None = None) -> None:
        if quantiles is not None:
            if len(quantiles) != QUANTILES or any(
                    b < a for a, b in zip(quantiles, quantiles[1:], strict=False)):
                raise ValueError(f"expected {QUANTILES} non-decreasing quantiles")
        elif not reason:
            raise ValueError("a Plausibility without quantiles needs the reason")
        self.quantiles, self.n_names, self.reason = quantiles, n_names, reason

    @property
    def available(self) -> bool:
        return self.quantiles is not None

    def percentile(self, nll_per_char: float) -> float | None:
        q = self.quantiles
        if q is None:
            return None
        if math.isnan(nll_per_char):
            return float("nan")
        if nll_per_char < q[0]:
            return 100.0
        if nll_per_char >= q[-1]:
            return 0.0
        k = bisect.bisect_right(q, nll_per_char) - 1  # q[k] <= x < q[k + 1]
        below = k + (nll_per_char - q[k]) / (q[k + 1] - q[k])  # % of names at or below x
        return 100.0 * (1 - below / (QUANTILES - 1))


@torch.no_grad()
def prefix_log_prob(model: LanguageModel, prefix: str) -> float:
    """log P(the prefix's letters), without an end token (0 for the empty prefix)."""
    if not prefix:
        return 0.0
    X, Y = build_examples([prefix], model.vocab, model.block_size)
    logp = torch.log_softmax(model(X[:-1])[0].double(), dim=1)
    return logp.gather(1, Y[:-1, None]).sum().item()
