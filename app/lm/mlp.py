"""A character-level MLP after Bengio et al. 2003, "A Neural Probabilistic Language Model".

The last `block_size` characters are looked up in an embedding table C (V, n_embd), concatenated,
passed through `n_layers` hidden layers (Linear -> LayerNorm -> tanh -> dropout) and projected to
next-character logits. LayerNorm rather than BatchNorm: it needs no running statistics, so a batch
of one behaves like a batch of many.

Training (and its validation passes) runs the layers as written. A frozen model, as served from a
checkpoint, runs the same function rearranged for speed (`Folded`), about twice as fast on CPU.
"""

from __future__ import annotations

import dataclasses
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
)
from app.lm.config import OptimConfig, check_fields, param
from app.lm.kind import Kind
from app.lm.vocab import Vocab

MAX_LAYERS = 64
MAX_WIDTH = 8192  # units per layer and embedding dimensions, at most
MAX_BLOCK = 64  # characters of context, at most (the longest name)


@dataclass
class MLPConfig:
    # The upper bounds also bound the work a hostile checkpoint can ask for (checkpoints
    # bound the total too).
    block_size: int = param(8, "characters of context", ge=1, le=MAX_BLOCK)
    n_embd: int = param(24, "embedding dimensions per character", ge=1, le=MAX_WIDTH)
    n_hidden: int = param(512, "units per hidden layer", ge=1, le=MAX_WIDTH)
    n_layers: int = param(2, "hidden tanh layers", ge=1, le=MAX_LAYERS)
    dropout: float = param(0.3, "dropout after each hidden layer, in training only", ge=0, lt=1)

    def __post_init__(self) -> None:
        check_fields(self)


class MLP(LanguageModel):
    kind = "mlp"

    def __init__(self, vocab: Vocab, cfg: MLPConfig) -> None:
        super().__init__(vocab, block_size=cfg.block_size)
        self.cfg = cfg
        V = len(vocab)
        self.C = embedding(V, cfg.n_embd)
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

    def layer_logits(self, idx: torch.Tensor) -> torch.Tensor:
        """The network as written, layer by layer: what training differentiates."""
        emb = self.C(idx)  # (B, T, n_embd)
        h = self.hidden(emb.flatten(1))  # (B, T * n_embd) -> (B, n_hidden)
        return self.head(h)  # (B, V)

    def inference_form(self) -> Folded:
        return Folded.of(self)  # used only while frozen: see LanguageModel

    def embedding_table(self) -> torch.Tensor:
        return self.C.weight.detach()

    def activation_layers(self) -> list[tuple[str, nn.Module, str]]:
        tanhs = [m for m in self.hidden if isinstance(m, nn.Tanh)]
        return [(f"hidden layer {i + 1}", m, "tanh") for i, m in enumerate(tanhs)]


@dataclass(frozen=True)
class Folded:
    """An MLP's weights rearranged for inference: the same function, about half the work.

    1. The first layer of concatenated embeddings is a sum of per-position lookups:
       concat(C[x_1], ..., C[x_T]) @ W1.T = sum_p C[x_p] @ W1[:, p].T = sum_p table_p[x_p], with
       table_p = C @ W1[:, p].T (V, n_hidden). One embedding_bag replaces a (B, T*n_embd) matmul.
    2. tanh(z) = 2 sigmoid(2z) - 1, and sigmoid is ~3x cheaper than tanh on CPU. The 2z folds
       into LayerNorm's scale and shift (z = gain * xhat + shift); the "2s - 1" folds into the
       next linear layer: W (2s - 1) + b = (2W) s + (b - W 1).
    3. Every name starts from the same few contexts: the logits of all contexts of at most K
       letters after the start padding (K = 3 for 27 symbols: V**K <= SHORT_ROWS) are computed
       once, here, and looked up. That is about a quarter of the distinct contexts that sampling
       or scoring 1000 names meets, and more than half of the predictions.
    4. A row's logits do not depend on the other rows of the batch, to the last bit, so that
       requests served together (app/serving/batching.py) get exactly what they would get alone: the
       weights are kept transposed and the batch is padded with '.' rows to a multiple of
       ROW_MULTIPLE (app/lm/base.py says why), and `of` checks it on this model's shapes
       (with 1024 hidden units the kernel changes with the batch) and says so in
       `rows_independent`; batching relies on the layers only when it holds
       (tests/lm/test_mlp.py checks it on odd shapes).
    Dropout is the identity at inference. Results match `layer_logits` to float32 rounding.
    Built from the weights of the moment: a model uses it only while frozen (LanguageModel).
    """

    table: torch.Tensor  # (T * V, n_hidden): row p * V + v = table_p[v]
    offsets: torch.Tensor  # (T,): p * V, so that idx + offsets indexes `table`
    bias: torch.Tensor  # (n_hidden,): the first layer's bias
    norms: tuple[tuple[torch.Tensor, torch.Tensor, float], ...]  # LayerNorm (2 gain, 2 shift, eps)
    linears: tuple[tuple[torch.Tensor, torch.Tensor], ...]  # ((2W).T, b - W 1) after each norm
    skip: int  # T - K: a short context is '.' at these first positions
    place: torch.Tensor  # (K,): V**(K-1), ..., 1: the last K ids as one number, short's row
    short: torch.Tensor  # (V**K, V): the logits of every short context
    rows_independent: bool = False  # 4. holds for these weights' shapes (checked by `of`)

    @classmethod
    @torch.no_grad()
    def of(cls, m: MLP, bias: torch.Tensor | None = None) -> Folded:
        """`bias`: another first-layer bias (a condition's: app/lm/conditional.py)."""
        T, E, V = m.cfg.block_size, m.cfg.n_embd, len(m.vocab)
        layers = [x for x in m.hidden if isinstance(x, nn.Linear)]
        norms = [x for x in m.hidden if isinstance(x, nn.LayerNorm)]
        W1 = layers[0].weight.view(-1, T, E)  # (n_hidden, T, n_embd)
        table = torch.einsum("ve,hte->tvh", m.C.weight, W1).reshape(T * V, -1)
        skip, place, short = short_contexts(V, T)
        folded = cls(
            table=table.contiguous(),
            offsets=torch.arange(T) * V,
            bias=(layers[0].bias if bias is None else bias).clone(),
            norms=tuple((2 * n.weight, 2 * n.bias, n.eps) for n in norms),
            linears=tuple(((2 * x.weight).T.contiguous(), x.bias - x.weight.sum(dim=1))
                          for x in [*layers[1:], m.head]),
            skip=skip,
            place=place,
            short=torch.empty(0, V),  # filled in below, by the network above
        )
        folded = dataclasses.replace(folded, short=folded.network(short))
        return dataclasses.replace(folded, rows_independent=independent_rows(folded.network, V, T))

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        return lookup_short(idx, self.skip, self.place, self.short, self.network)  # (B, V)

    def network(self, idx: torch.Tensor) -> torch.Tensor:
        """The folded network (1., 2. and 4. above) on every row of idx."""
        n = len(idx)
        idx = padded(idx)  # with '.' rows
        h = F.embedding_bag(idx + self.offsets, self.table, mode="sum")  # (B, n_hidden)
        h += self.bias
        for (gain, shift, eps), (Wt, b) in zip(self.norms, self.linears, strict=True):
            h = F.layer_norm(h, h.shape[-1:], gain, shift, eps).sigmoid_()
            h = torch.mm(h, Wt) + b
        return h[:n]  # (B, V)


KIND = Kind(
    name="mlp",
    title="an MLP",
    description="Bengio et al. 2003: embeddings of the last block_size letters, concatenated, "
                "through tanh hidden layers (LayerNorm, dropout) to next-letter logits",
    model=MLP,
    config=MLPConfig,
    # Chosen on validation with names.txt (README): 1.9789 val NLL in ~6 minutes on 2 cores.
    training=OptimConfig(),
    tiny=MLPConfig(block_size=3, n_embd=4, n_hidden=32, n_layers=1, dropout=0.0),
    tiny_training=OptimConfig(steps=200, batch_size=32, warmup=10, eval_interval=50),
    quick=MLPConfig(n_hidden=64, n_layers=1, block_size=3),
    quick_training=OptimConfig(steps=600, batch_size=128, warmup=50),
    has_embeddings=True,
)
