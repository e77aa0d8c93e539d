"""The bigram as a one-layer neural network: logits = one_hot(previous) @ W.

Trained by gradient descent on the NLL it arrives at the count table; an L2 penalty on W plays
the role of additive smoothing (the classic lecture, part 1).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from app.lm.base import LanguageModel
from app.lm.vocab import Vocab


class NeuralBigram(LanguageModel):
    kind = "neural-bigram"

    def __init__(self, vocab: Vocab) -> None:
        super().__init__(vocab, block_size=1)
        V = len(vocab)
        self.W = nn.Parameter(torch.zeros(V, V))

    def init_weights(self, generator: torch.Generator) -> None:
        with torch.no_grad():
            self.W.copy_(torch.randn(self.W.shape, generator=generator))

    def layer_logits(self, idx: torch.Tensor) -> torch.Tensor:
        # one_hot(idx) @ W picks rows of W; indexing is the same product without the zeros.
        return self.W[idx[:, -1]]  # (B, V)

    @property
    def rows_independent(self) -> bool:
        return True  # a row's logits are a row of a table

    def bigram_probs(self) -> torch.Tensor:
        return self.W.detach().softmax(dim=1)

    def config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, vocab: Vocab, config: dict[str, Any]) -> NeuralBigram:
        return cls(vocab)
