"""A character-level MLP after Bengio et al. 2003, "A Neural Probabilistic Language Model".

The last `block_size` characters are looked up in an embedding table C (V, n_embd), concatenated,
passed through `n_layers` hidden layers (Linear -> LayerNorm -> tanh -> dropout) and projected to
next-character logits. LayerNorm rather than BatchNorm: it needs no running statistics, so a batch
of one behaves like a batch of many.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from app.lm.base import LanguageModel
from app.lm.vocab import Vocab

MAX_LAYERS = 64


@dataclass
class MLPConfig:
    block_size: int = 8  # characters of context
    n_embd: int = 24  # embedding dimensions per character
    n_hidden: int = 512  # units per hidden layer
    n_layers: int = 2  # hidden layers
    dropout: float = 0.3  # after each hidden layer, in training only

    def __post_init__(self) -> None:
        for field in ("block_size", "n_embd", "n_hidden", "n_layers"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be >= 1, got {getattr(self, field)}")
        if self.n_layers > MAX_LAYERS:  # also bounds the work a hostile checkpoint can ask for
            raise ValueError(f"n_layers must be <= {MAX_LAYERS}, got {self.n_layers}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class Dropout(nn.Module):
    """Inverted dropout, like nn.Dropout, with the mask drawn by torch.rand: on CPU that is
    cheaper than the bernoulli_ sampling nn.Dropout uses. No parameters, so checkpoints made with
    nn.Dropout load unchanged."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        mask = (torch.rand(x.shape, dtype=x.dtype, device=x.device) >= self.p).to(x.dtype)
        return x * mask.mul_(1 / (1 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MLP(LanguageModel):
    kind = "mlp"

    def __init__(self, vocab: Vocab, cfg: MLPConfig) -> None:
        super().__init__(vocab, block_size=cfg.block_size)
        self.cfg = cfg
        V = len(vocab)
        self.C = nn.Embedding(V, cfg.n_embd)
        layers: list[nn.Module] = []
        n_in = cfg.block_size * cfg.n_embd
        for _ in range(cfg.n_layers):
            layers += [
                nn.Linear(n_in, cfg.n_hidden),
                nn.LayerNorm(cfg.n_hidden),
                nn.Tanh(),
                Dropout(cfg.dropout),
            ]
            n_in = cfg.n_hidden
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(n_in, V)

    def init_weights(self, generator: torch.Generator) -> None:
        """Seeded init: unit-normal embeddings, Kaiming-style linear layers (gain 5/3 for tanh),
        a small output layer so the first predictions are near uniform."""
        with torch.no_grad():
            self.C.weight.copy_(torch.randn(self.C.weight.shape, generator=generator))
            for m in self.hidden:
                if isinstance(m, nn.Linear):
                    fan_in = m.weight.shape[1]
                    w = torch.randn(m.weight.shape, generator=generator)
                    m.weight.copy_(w * (5 / 3) / fan_in**0.5)
                    m.bias.zero_()
            w = torch.randn(self.head.weight.shape, generator=generator)
            self.head.weight.copy_(w * 0.01)
            self.head.bias.zero_()

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        emb = self.C(idx)  # (B, T, n_embd)
        h = self.hidden(emb.view(emb.shape[0], -1))  # (B, n_hidden)
        return self.head(h)  # (B, V)

    def embedding_table(self) -> torch.Tensor:
        return self.C.weight.detach()

    def config(self) -> dict[str, Any]:
        return asdict(self.cfg)

    @classmethod
    def from_config(cls, vocab: Vocab, config: dict[str, Any]) -> MLP:
        return cls(vocab, MLPConfig(**config))
