"""The bigram as a one-layer neural network: logits = one_hot(previous) @ W.

Trained by gradient descent on the NLL it arrives at the count table; an L2 penalty on W plays
the role of additive smoothing (the classic lecture, part 1). It trains with the shared trainer,
full batch: every (previous, next) pair of the training words at every step, its loss computed
from the pair counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from app.lm.base import LanguageModel
from app.lm.config import OptimConfig, check_fields, param
from app.lm.kind import Kind
from app.lm.vocab import Vocab


@dataclass
class NeuralBigramConfig:
    reg: float = param(0.001, "L2 penalty on W: loss = NLL + reg * mean(W**2)", ge=0)

    def __post_init__(self) -> None:
        check_fields(self)


class NeuralBigram(LanguageModel):
    kind = "neural-bigram"

    def __init__(self, vocab: Vocab, cfg: NeuralBigramConfig | None = None) -> None:
        super().__init__(vocab, block_size=1)
        self.cfg = cfg or NeuralBigramConfig()
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

    def full_batch_loss(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """F.cross_entropy(W[X[:, -1]], Y) from the pair counts: the loss only depends on how
        often each (previous, next) pair occurs, so a (V, V) table gives the same number and
        the same gradient as the ~200k rows of a training set, much faster."""
        V = len(self.vocab)
        counts = torch.bincount(X[:, -1] * V + Y, minlength=V * V).view(V, V)
        return -(counts.to(self.W.dtype) * F.log_softmax(self.W, dim=1)).sum() / len(Y)

    def penalty(self) -> torch.Tensor | None:
        return self.cfg.reg * (self.W**2).mean() if self.cfg.reg else None


KIND = Kind(
    name="neural-bigram",
    title="a neural bigram",
    description="the bigram as a one-layer network: logits = one_hot(previous letter) @ W, "
                "W 27x27, trained by gradient descent on the NLL plus an L2 penalty",
    model=NeuralBigram,
    config=NeuralBigramConfig,
    # The lecture's training: full-batch Adam at a constant 0.5 for 300 steps from W drawn
    # with its generator seed.
    training=OptimConfig(steps=300, batch_size=0, lr=0.5, lr_min=0.5, warmup=0,
                         weight_decay=0.0, beta2=0.999, eval_interval=3, seed=2147483647),
    tiny=NeuralBigramConfig(),
    tiny_training=OptimConfig(steps=100, batch_size=0, lr=0.5, lr_min=0.5, warmup=0,
                              weight_decay=0.0, beta2=0.999, eval_interval=10, seed=2147483647),
    quick=NeuralBigramConfig(),
    quick_training=OptimConfig(steps=300, batch_size=0, lr=0.5, lr_min=0.5, warmup=0,
                               weight_decay=0.0, beta2=0.999, seed=2147483647),
    has_table=True,
)
