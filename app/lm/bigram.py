"""The count-based bigram model of the classic lecture: a (V, V) table of pair counts."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from app.lm.base import LanguageModel
from app.lm.config import check_fields, param
from app.lm.kind import Kind
from app.lm.vocab import Vocab


@dataclass
class BigramConfig:
    smoothing: float = param(1.0, "additive smoothing: added to every pair count", ge=0)

    def __post_init__(self) -> None:
        check_fields(self)


class Bigram(LanguageModel):
    """P(next | previous) = (count(previous, next) + smoothing) / row total."""

    kind = "bigram"

    def __init__(self, vocab: Vocab, cfg: BigramConfig | None = None) -> None:
        super().__init__(vocab, block_size=1)
        self.cfg = cfg or BigramConfig()  # its bounds were checked when it was made
        V = len(vocab)
        self.register_buffer("counts", torch.zeros(V, V, dtype=torch.float64))

    def fit(self, words: list[str], counts: list[int] | None = None) -> Bigram:
        """Count every adjacent pair of '.' + word + '.' (each word counts[i] times if given:
        the era report's bigram of births)."""
        stoi = self.vocab.stoi
        V = len(self.vocab)
        pairs = [
            stoi[a] * V + stoi[b]
            for w in words
            for a, b in zip("." + w, w + ".", strict=True)
        ]
        weights = None if counts is None else torch.tensor(
            counts, dtype=torch.float64).repeat_interleave(torch.tensor([len(w) + 1
                                                                         for w in words]))
        flat = torch.bincount(torch.tensor(pairs, dtype=torch.long), weights,
                              minlength=V * V)
        self.counts.copy_(flat.view(V, V).to(self.counts.dtype))
        self._fast = None  # new counts: a frozen table is stale
        return self

    def may_give_zero(self) -> bool:
        return self.cfg.smoothing == 0  # a pair never seen

    def bigram_counts(self) -> torch.Tensor:
        return self.counts

    def bigram_probs(self) -> torch.Tensor:
        P = self.counts + self.cfg.smoothing
        totals = P.sum(dim=1, keepdim=True)
        # A row never seen (possible only without smoothing) predicts uniformly, not 0/0.
        P = torch.where(totals > 0, P / totals.clamp_min(1e-300), 1.0 / P.shape[1])
        return P.float()

    def layer_logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.bigram_probs().log()[idx[:, -1]]  # (B, V); log-probabilities are logits

    def inference_form(self):
        table = self.bigram_probs().log()  # (V, V), computed once: frozen counts never change
        return lambda idx: table[idx[:, -1]]

    @property
    def rows_independent(self) -> bool:
        return True  # a row's logits are a row of a table

    @property
    def n_params(self) -> int:
        return self.counts.numel()


KIND = Kind(
    name="bigram",
    title="a bigram",
    description="a 27x27 table of letter-pair counts with additive smoothing: P(next | "
                "previous) = (count + smoothing) / row total",
    model=Bigram,
    config=BigramConfig,
    training=None,  # counting: Bigram.fit
    tiny=BigramConfig(),
    tiny_training=None,
    has_counts=True,
    has_table=True,
)
