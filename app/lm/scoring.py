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


MIN_LENGTH_NAMES = 30  # held-out names a length needs to be its own reference


def _median_iqr(x: torch.Tensor) -> tuple[float, float]:
    q = torch.quantile(x, torch.tensor([0.25, 0.5, 0.75], dtype=x.dtype))
    return q[1].item(), (q[2] - q[0]).item()


def length_quantiles(model: LanguageModel, names: list[str], max_len: int) -> tuple[
        list[float], list[float], list[float]]:
    """(centre, scale, quantiles): plausibility's reference, fair to every length.

    Short names have a higher NLL per character than long ones (the first letter and the end
    token weigh more), so a name is compared with names of its own length: its NLL per
    character is standardised by the median (`centre`) and interquartile range (`scale`) of
    the held-out names of its length L, and `quantiles` are the 101 quantiles of the
    standardised NLL, (nll - centre[L-1]) / scale[L-1], of every held-out name. A length with
    fewer than MIN_LENGTH_NAMES names is pooled with its nearest lengths: their NLLs are first
    moved to length L along the curve a + b / (L + 1) fitted to the lengths' medians (weighted
    by their names), their spread scaled by sqrt((L_i + 1) / (L + 1)) (an average over L + 1
    predictions), and the median and interquartile range are taken of those.
    """
    names = sorted(set(names))
    if not names:
        raise ValueError("no names to take quantiles of")
    lps = log_probs(model, names)
    lengths = torch.tensor([len(n) for n in names])
    nll = torch.tensor([-lp / (len(n) + 1) for n, lp in zip(names, lps, strict=True)],
                       dtype=torch.float64).clamp(max=NLL_CAP)
    present = sorted(set(lengths.tolist()))
    stats = {L: (*_median_iqr(nll[lengths == L]), int((lengths == L).sum())) for L in present}
    w = torch.tensor([stats[L][2] for L in present], dtype=torch.float64)
    u = torch.tensor([1 / (L + 1) for L in present], dtype=torch.float64)
    m = torch.tensor([stats[L][0] for L in present], dtype=torch.float64)
    ub, mb = (w * u).sum() / w.sum(), (w * m).sum() / w.sum()
    spread = (w * (u - ub) ** 2).sum()
    b = ((w * (u - ub) * (m - mb)).sum() / spread).item() if spread > 0 else 0.0
    a = mb.item() - b * ub.item()
    # residuals from the curve, on the scale of one prediction
    resid = (nll - (a + b / (lengths + 1))) * (lengths + 1).double().sqrt()
    floor = max(_median_iqr(nll)[1], 1e-3) * 1e-3  # never divide by 0
    centre, scale = [], []
    for L in range(1, max_len + 1):
        if stats.get(L, (0, 0, 0))[2] >= MIN_LENGTH_NAMES:
            med, iqr, _ = stats[L]
        else:  # the MIN_LENGTH_NAMES names nearest in length (all of them, if fewer)
            near = torch.argsort((lengths - L).abs(), stable=True)  # as sorted() orders them
            r = resid[near[:MIN_LENGTH_NAMES]]
            rm, ri = _median_iqr(r)
            med, iqr = a + b / (L + 1) + rm / math.sqrt(L + 1), ri / math.sqrt(L + 1)
        centre.append(med)
        scale.append(max(iqr, floor))
    ct = torch.tensor(centre, dtype=torch.float64)
    st = torch.tensor(scale, dtype=torch.float64)
    at = lengths.clamp(max=max_len) - 1
    z = (nll - ct[at]) / st[at]
    q = torch.quantile(z, torch.linspace(0, 1, QUANTILES, dtype=torch.float64))
    return ([round(v, 6) for v in centre], [round(v, 6) for v in scale],
            [round(v, 6) for v in q.tolist()])


class Plausibility:
    """Where a name's NLL per character falls among held-out names: names the model never
    trained on (its validation split), summarised by their quantiles.

    percentile(x) = % of those names with a higher (worse) NLL per character than x, read off
    the quantiles by linear interpolation: 90 means the model finds x more plausible than 90%
    of real names it did not see. Held-out names, not training names: a model that fits its
    training set gives those a lower NLL than any new name, which made real names look
    implausible under the better model.

    By length (`by_length`, the reference of `length_quantiles`): a name of L letters is
    compared with held-out names of its own length, through its NLL standardised by theirs;
    short names have a higher NLL per character, and without this they all looked implausible.

    Without quantiles (a checkpoint made before they were stored, or trained without a
    validation split) percentile() is None and `reason` says why.
    """

    def __init__(self, quantiles: list[float] | None, n_names: int = 0,
                 reason: str | None = None,
                 by_length: tuple[list[float], list[float], list[float]] | None = None) -> None:
        if quantiles is not None:
            _check_quantiles(quantiles)
        elif not reason:
            raise ValueError("a Plausibility without quantiles needs the reason")
        if by_length is not None:
            centre, scale, zq = by_length
            _check_quantiles(zq)
            if len(centre) != len(scale) or not centre or min(scale) <= 0:
                raise ValueError("expected a centre and a positive scale for every length")
        self.quantiles, self.n_names, self.reason = quantiles, n_names, reason
        self.by_length = by_length if quantiles is not None else None

    @property
    def available(self) -> bool:
        return self.quantiles is not None

    def percentile(self, nll_per_char: float, length: int | None = None) -> float | None:
        """The percentile of a name of `length` letters with this NLL per character (by its
        length's reference when the checkpoint has one and the length is given)."""
        if self.quantiles is None:
            return None
        if self.by_length is not None and length is not None:
            centre, scale, zq = self.by_length
            L = min(max(length, 1), len(centre)) - 1
            return _read_off(zq, (nll_per_char - centre[L]) / scale[L])
        return _read_off(self.quantiles, nll_per_char)


def _check_quantiles(q: list[float]) -> None:
    if len(q) != QUANTILES or any(b < a for a, b in zip(q, q[1:], strict=False)):
        raise ValueError(f"expected {QUANTILES} non-decreasing quantiles")


def _read_off(q: list[float], x: float) -> float:
    """% of the reference names with a higher value than x, by linear interpolation."""
    if math.isnan(x):
        return float("nan")
    if x < q[0]:
        return 100.0
    if x >= q[-1]:
        return 0.0
    k = bisect.bisect_right(q, x) - 1  # q[k] <= x < q[k + 1]
    below = k + (x - q[k]) / (q[k + 1] - q[k])  # % of names at or below x
    return 100.0 * (1 - below / (QUANTILES - 1))


@torch.no_grad()
def prefix_log_prob(model: LanguageModel, prefix: str) -> float:
    """log P(the prefix's letters), without an end token (0 for the empty prefix)."""
    if not prefix:
        return 0.0
    X, Y = build_examples([prefix], model.vocab, model.block_size)
    logp = torch.log_softmax(model(X[:-1])[0].double(), dim=1)
    return logp.gather(1, Y[:-1, None]).sum().item()
