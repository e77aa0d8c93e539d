"""A hierarchical model after WaveNet (van den Oord et al. 2016), as in the lecture series' fifth
part ("Building makemore Part 5: Building a WaveNet").

The last `block_size` characters (a power of two) are embedded, then fused two at a time in a
tree: each level joins neighbouring pairs (FlattenConsecutive(2)), and mixes them with a linear
layer, a LayerNorm and tanh. With block 8: 8 embeddings -> 4 -> 2 -> 1 hidden vector -> logits.
LayerNorm rather than the lecture's BatchNorm: no running statistics, so a batch of one behaves
like a batch of many.

Training and its validation passes run the layers as written. A frozen model (as served) runs the
same function through precomputed tables (`Tabled`): the first level depends on only a pair of
characters, so its output for every pair is computed once; and the logits of every context of at
most 3 letters are looked up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from app.lm.base import (
    Dropout,
    LanguageModel,
    embedding,
    independent_rows,
    lookup_short,
    padded,
    short_contexts,
    transposed,
)
from app.lm.config import OptimConfig, check_fields, param
from app.lm.kind import Kind
from app.lm.vocab import Vocab

MAX_BLOCK = 64  # bounds the work a hostile checkpoint can ask for, with MAX_WIDTH
MAX_WIDTH = 4096


@dataclass
class WaveNetConfig:
    block_size: int = param(8, "characters of context: a power of two, one tree level per "
                               "halving", ge=2, le=MAX_BLOCK)
    n_embd: int = param(24, "embedding dimensions per character", ge=1, le=MAX_WIDTH)
    n_hidden: int = param(128, "units in every level", ge=1, le=MAX_WIDTH)
    dropout: float = param(0.0, "dropout after each level, in training only", ge=0, lt=1)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of two, got {self.block_size}")

    @property
    def n_levels(self) -> int:
        return self.block_size.bit_length() - 1


class Level(nn.Module):
    """FlattenConsecutive(2) -> Linear -> LayerNorm -> tanh (-> dropout): (B, T, C) ->
    (B, T/2, n_hidden). The linear layer has no bias: the LayerNorm's shift plays its part."""

    def __init__(self, n_in: int, n_hidden: int, dropout: float) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * n_in, n_hidden, bias=False)
        self.norm = nn.LayerNorm(n_hidden)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        x = x.reshape(B, T // 2, 2 * C)  # FlattenConsecutive(2): neighbours side by side
        return self.dropout(torch.tanh(self.norm(self.linear(x))))


class WaveNet(LanguageModel):
    kind = "wavenet"

    def __init__(self, vocab: Vocab, cfg: WaveNetConfig) -> None:
        super().__init__(vocab, block_size=cfg.block_size)
        self.cfg = cfg
        V = len(vocab)
        self.C = embedding(V, cfg.n_embd)
        self.levels = nn.ModuleList(
            Level(cfg.n_embd if i == 0 else cfg.n_hidden, cfg.n_hidden, cfg.dropout)
            for i in range(cfg.n_levels)
        )
        self.head = nn.Linear(cfg.n_hidden, V)

    def init_weights(self, generator: torch.Generator) -> None:
        """Seeded init: unit-normal embeddings, Kaiming-style levels (gain 5/3 for tanh), a small
        output layer so the first predictions are near uniform."""
        with torch.no_grad():
            self.C.weight.copy_(torch.randn(self.C.weight.shape, generator=generator))
            for level in self.levels:
                w = level.linear.weight
                w.copy_(torch.randn(w.shape, generator=generator) * (5 / 3) / w.shape[1] ** 0.5)
                level.norm.reset_parameters()
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=generator) * 0.01)
            self.head.bias.zero_()

    def layer_logits(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.C(idx)  # (B, T, n_embd)
        for level in self.levels:
            x = level(x)  # (B, T/2, n_hidden), ..., (B, 1, n_hidden)
        return self.head(x.squeeze(1))  # (B, V)

    def inference_form(self) -> Tabled:
        return Tabled.of(self)

    def embedding_table(self) -> torch.Tensor:
        return self.C.weight.detach()

    def activation_layers(self) -> list[tuple[str, nn.Module, str]]:
        """Each level's output is its tanh's (dropout is the identity at inference): a row per
        context and fused position (8 -> 4, 2, 1 rows with block 8)."""
        return [(f"level {i + 1}", level, "tanh") for i, level in enumerate(self.levels)]


class Tabled:
    """A frozen WaveNet through two precomputed tables: the same function, less work.

    1. The first level sees two characters at a time: its output for each of the V*V pairs is
       computed once (`pairs`, (V*V, n_hidden)) and looked up.
    2. The logits of every context of at most K letters after the start padding (V**K <=
       SHORT_ROWS) are computed once (`short`) and looked up: every name starts there.
    3. The later levels and the head multiply by weights kept transposed, on a batch padded to a
       multiple of ROW_MULTIPLE rows, so a row's logits do not depend on the rows beside it
       (app/lm/base.py says why); checked on this model's shapes (`rows_independent`), which
       lets concurrent requests be served together (app/serving/batching.py).
    Dropout is the identity at inference; results match `layer_logits` to float32 rounding.
    """

    def __init__(self, m: WaveNet) -> None:
        V, T = len(m.vocab), m.block_size
        self.V = V
        first = m.levels[0]
        ids = torch.arange(V * V)
        pair_emb = m.C(torch.stack([ids // V, ids % V], dim=1))  # (V*V, 2, n_embd)
        self.pairs = first(pair_emb).squeeze(1).contiguous()  # (V*V, n_hidden)
        # each later level: (W.T, LayerNorm gain, shift, eps); the linear layers have no bias
        self.levels = tuple((level.linear.weight.T.contiguous(), level.norm.weight.clone(),
                             level.norm.bias.clone(), level.norm.eps)
                            for level in m.levels[1:])
        self.head = transposed(m.head)
        self.skip, self.place, short = short_contexts(V, T)
        self.short = self.network(short)  # (V**K, V)
        self.rows_independent = independent_rows(self.network, V, T)

    @classmethod
    @torch.no_grad()
    def of(cls, m: WaveNet) -> Tabled:
        return cls(m)

    def network(self, idx: torch.Tensor) -> torch.Tensor:
        n = len(idx)
        idx = padded(idx)  # with '.' rows
        B, T = idx.shape
        pair = idx[:, 0::2] * self.V + idx[:, 1::2]  # (B, T/2): each neighbouring pair's row
        x = F.embedding(pair.reshape(-1), self.pairs)  # (B * T/2, n_hidden): level 1, looked up
        for Wt, gain, shift, eps in self.levels:
            x = x.reshape(-1, Wt.shape[0])  # FlattenConsecutive(2): neighbours side by side
            x = torch.tanh(F.layer_norm(torch.mm(x, Wt), gain.shape, gain, shift, eps))
        Wt, b = self.head
        return (torch.mm(x, Wt) + b)[:n]  # (B, V)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        return lookup_short(idx, self.skip, self.place, self.short, self.network)


KIND = Kind(
    name="wavenet",
    title="a WaveNet",
    description="the lecture series' hierarchical model: embeddings of the last block_size "
                "letters fused pairwise in a tree (Linear, LayerNorm, tanh per level) to "
                "next-letter logits",
    model=WaveNet,
    config=WaveNetConfig,
    # The lecture's shape (block 8, 24-d embeddings, 128 hidden); AdamW with the shared
    # schedule, chosen on validation with names.txt (README).
    training=OptimConfig(steps=30_000, batch_size=256, lr=3e-3, lr_min=3e-5, warmup=500,
                         weight_decay=0.1, eval_interval=2000),
    tiny=WaveNetConfig(block_size=4, n_embd=4, n_hidden=16),
    tiny_training=OptimConfig(steps=200, batch_size=32, lr=1e-2, warmup=10, eval_interval=50),
    quick=WaveNetConfig(block_size=4, n_embd=8, n_hidden=64),
    quick_training=OptimConfig(steps=600, batch_size=128, lr=5e-3, warmup=50),
    has_embeddings=True,
)
