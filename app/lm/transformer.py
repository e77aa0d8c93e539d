"""A small decoder-only Transformer, as in makemore (after GPT-2 / nanoGPT).

Token and position embeddings, `n_layer` blocks of causal self-attention and an MLP (each after a
LayerNorm, with a residual connection), a final LayerNorm and a linear head.

A name is read from its start: the sequence '.', c1, c2, ... at positions 0, 1, 2, ..., and the
output at position t predicts the character after the first t letters. Training and scoring run
whole names in one pass, every position at once (`sequence_logits`). The one-interface view, a
'.'-padded window of the last `block_size` characters (`layer_logits`), is the same function: the
window's letters after its last '.' are that sequence. A name longer than the block is seen
through a window of its last `block_size` letters, as the other kinds see it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from app.lm.base import (
    ROW_MULTIPLE,
    Decoder,
    Dropout,
    LanguageModel,
    embedding,
    independent_rows,
    padded,
    transposed,
)
from app.lm.config import OptimConfig, check_fields, param
from app.lm.kind import Kind
from app.lm.vocab import Vocab

MAX_BLOCK = 64
MAX_LAYERS = 16
MAX_EMBD = 1024

WORDS_PER_PASS = 128  # words (of one length) per pass when scoring: bounds the memory of a pass
SHORT_LETTERS = 2  # histories of at most this many letters are looked up (27**2 of them: 4.5 MB
SHORT_FLOATS = 1 << 22  # for the shipped model), fewer if their cache would exceed 16 MB


def starts(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) '.'-padded windows -> the sequences they hold, from their start: (B, L) ids rolled
    left so each sequence starts at position 0 (L the longest), and their lengths (B,). A window
    with k < T letters holds '.' and those letters (its last k + 1 ids; names have no '.'
    inside); a full window holds itself."""
    B, T = idx.shape
    n = torch.clamp((idx != 0).sum(dim=1) + 1, max=T)  # (B,)
    cols = (torch.arange(T) + (T - n)[:, None]) % T  # (B, T)
    return idx.gather(1, cols)[:, : int(n.max())], n


@dataclass
class TransformerConfig:
    block_size: int = param(16, "positions: the start and 15 letters (every SSA name fits)",
                            ge=2, le=MAX_BLOCK)
    n_layer: int = param(4, "transformer blocks", ge=1, le=MAX_LAYERS)
    n_head: int = param(4, "attention heads per block (they divide n_embd)", ge=1)
    n_embd: int = param(64, "width of the residual stream", ge=1, le=MAX_EMBD)
    dropout: float = param(0.15, "dropout on the embeddings and after each sublayer, in "
                                 "training only", ge=0, lt=1)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_head must divide n_embd={self.n_embd}, got {self.n_head}")


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.proj_drop = Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # each (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return self.proj_drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd),
            nn.GELU(),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd),
            Dropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(LanguageModel):
    kind = "transformer"

    def __init__(self, vocab: Vocab, cfg: TransformerConfig) -> None:
        super().__init__(vocab, block_size=cfg.block_size)
        self.cfg = cfg
        V = len(vocab)
        self.wte = embedding(V, cfg.n_embd)
        self.wpe = embedding(cfg.block_size, cfg.n_embd)
        self.drop = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, V)

    def init_weights(self, generator: torch.Generator) -> None:
        """GPT-2's init, seeded: normal(0, 0.02) weights, zero biases, the projections into the
        residual stream scaled by 1/sqrt(2 n_layer)."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() < 2:
                    if name.endswith("weight"):  # LayerNorm gains
                        p.fill_(1.0)
                    else:
                        p.zero_()
                    continue
                std = 0.02
                if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                    std /= (2 * self.cfg.n_layer) ** 0.5
                p.copy_(torch.randn(p.shape, generator=generator) * std)

    def sequence_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) sequences from their start, T <= block_size -> (B, T, V): the logits after
        each prefix."""
        T = x.shape[1]
        h = self.drop(self.wte(x) + self.wpe.weight[:T])  # (B, T, n_embd)
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h))

    def layer_logits(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, block_size) '.'-padded windows -> (B, V). A window holding k < block_size letters
        is the sequence '.' + those letters (its last k + 1 ids); a full window is itself. Each
        row is rolled left so its sequence starts at position 0, and read at its last position;
        causal attention never looks at what follows."""
        x, n = starts(idx)
        return self.sequence_logits(x)[torch.arange(len(idx)), n - 1]

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Windows (B, block_size) -> (B, V), as every kind; or, with targets of the same shape
        (the rows of `examples`), whole names: (B, T) -> (B, T, V) and the loss over the real
        targets. Padding columns no row needs are not computed (their logits are 0)."""
        if targets is None or targets.dim() == 1:
            return super().forward(idx, targets)
        real = targets != -1
        L = int(real.any(dim=0).nonzero().max()) + 1 if bool(real.any()) else 1
        logits = self.sequence_logits(idx[:, :L])  # (B, L, V)
        loss = F.cross_entropy(logits.flatten(0, 1), targets[:, :L].flatten(), ignore_index=-1)
        return F.pad(logits, (0, 0, 0, idx.shape[1] - L)), loss

    def nll(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        logits, _ = self(X, Y)  # (B, T, V): whole names
        return F.cross_entropy(logits.flatten(0, 1).double(), Y.flatten(), ignore_index=-1,
                               reduction="sum")

    def examples(self, words: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole names as training rows: x = '.' + name, y = name + '.', padded to the longest
        (x with '.', y with -1: no loss). A name longer than block_size - 1 letters adds a row
        per later letter: the window of the block_size letters before it, its target last."""
        T = self.block_size
        stoi = self.vocab.stoi
        rows: list[tuple[list[int], list[int]]] = []
        for w in words:
            ids = [0] + [stoi[c] for c in w] + [0]
            rows.append((ids[:T], ids[1 : T + 1]))
            for t in range(T, len(ids) - 1):  # the target ids[t + 1] after a full window
                rows.append((ids[t - T + 1 : t + 1], [-1] * (T - 1) + [ids[t + 1]]))
        L = max(len(x) for x, _ in rows)
        x = torch.tensor([r + [0] * (L - len(r)) for r, _ in rows], dtype=torch.long)
        y = torch.tensor([r + [-1] * (L - len(r)) for _, r in rows], dtype=torch.long)
        return x, y

    def word_logits(self, words: list[str], X: torch.Tensor) -> torch.Tensor:
        """Every step of every word from one pass over each whole word (its X row of the last
        step within the block is the word from its start), words of the same length together:
        no padding, and (frozen, through `Rowwise`) a word's logits do not depend on the other
        words. Steps past a full block (words of block_size letters or more) are read from
        their windows."""
        T = self.block_size
        fast = self._fast
        run = fast.sequence_logits if fast is not None and not torch.is_grad_enabled() \
            else self.sequence_logits
        n = torch.tensor([len(w) + 1 for w in words])  # (W,): steps per word
        offset = torch.cumsum(n, 0) - n  # (W,): each word's first row in X
        seq_len = n.clamp(max=T)  # (W,): its steps within the block
        out = X.new_empty((len(X), len(self.vocab)), dtype=torch.float32)
        for L in sorted(set(seq_len.tolist())):
            for chunk in (seq_len == L).nonzero().squeeze(1).split(WORDS_PER_PASS):
                x = X[offset[chunk] + L - 1][:, T - L :]  # (b, L): the word from its start
                rows = offset[chunk][:, None] + torch.arange(L)[None]  # (b, L)
                out[rows] = run(x)  # (b, L, V)
        step = torch.arange(len(X)) - offset.repeat_interleave(n)  # (N,): step within its word
        late = step >= T
        if bool(late.any()):
            out[late] = self.logits(X[late])  # (through Rowwise when frozen)
        return out

    def decoder(self, ctx: torch.Tensor) -> Decoder:
        """Frozen (as served), the KV-cached `KVDecoder`; else the base windows."""
        if isinstance(self._fast, Rowwise) and not torch.is_grad_enabled():
            return KVDecoder(self, ctx)
        return Decoder(self, ctx)

    @property
    def groups_sampling(self) -> bool:
        """The KVDecoder's rows are checked too (`Rowwise.rows_independent`)."""
        return self.rows_independent

    @property
    def sequence_steps(self) -> int:
        """A name's first block_size steps are positions of one sequence (`word_logits`,
        `KVDecoder`); the later ones windows."""
        return self.block_size

    def inference_form(self) -> Rowwise:
        return Rowwise(self)

    def embedding_table(self) -> torch.Tensor:
        return self.wte.weight.detach()

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) sequences from their start -> (B, n_layer, n_head, T, T): row t of a head is
        how position t's query spreads over positions 0..t (each row sums to 1, zeros above
        the diagonal), softmax(q k^T / sqrt(head size)) with the causal mask, written out (the
        blocks use the fused kernel, which does not return the weights)."""
        B, T = x.shape
        C, nh = self.cfg.n_embd, self.cfg.n_head
        h = self.wte(x) + self.wpe.weight[:T]  # (B, T, C)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        maps = []
        for block in self.blocks:
            q, k, _ = block.attn.qkv(block.ln_1(h)).split(C, dim=2)
            q, k = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k))  # (B, nh, T, hs)
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(C // nh)  # (B, nh, T, T)
            maps.append(scores.masked_fill(~causal, -torch.inf).softmax(dim=-1))
            h = block(h)
        return torch.stack(maps, dim=1)

    def activation_layers(self) -> list[tuple[str, nn.Module, str]]:
        return [(f"block {i + 1} MLP", b.mlp[1], "gelu") for i, b in enumerate(self.blocks)]

    @torch.no_grad()
    def hidden_activations(self, words: list[str]) -> list[torch.Tensor]:
        """A row per prediction, as the other kinds, read from whole names (`examples`): the
        positions that are padding are dropped."""
        x, y = self.examples(words)
        real = (y != -1).reshape(-1)  # (B * L,)
        return [a[real] for a in self._hooked(lambda: self.sequence_logits(x))]


class Rowwise:
    """A frozen Transformer computed so that a sequence's logits do not depend, to the last bit,
    on the other sequences of its batch: what lets concurrent scoring requests be served together
    (app/serving/batching.py). The same function as the layers, to float32 rounding.

    Every linear layer multiplies by its weight kept transposed, and a batch of B sequences of
    length L is padded with '.' sequences until B * L, the rows of each product, is a multiple of
    ROW_MULTIPLE (app/lm/base.py says why). Attention and LayerNorm work a row or a sequence at a
    time. Sequences are batched only with others of their own length: scoring groups words by
    length (`Transformer.word_logits`), and windows are grouped here by the length of the
    sequence they hold. Checked on this model's shapes (`rows_independent`).
    """

    def __init__(self, m: Transformer) -> None:
        self.m = m  # its embeddings and LayerNorms, read as they are
        self.linears = tuple((transposed(b.attn.qkv), transposed(b.attn.proj),
                              transposed(b.mlp[0]), transposed(b.mlp[2])) for b in m.blocks)
        self.head = transposed(m.head)
        # The decoder's (`step`): each block's query weights scaled by 1 / sqrt(head size)
        # (for the shipped model's 16, a power of two: the bits of scaling the scores; one
        # division fewer a block and step, 2-5% of sampling's time)
        C = m.cfg.n_embd
        scale = 1 / math.sqrt(C // m.cfg.n_head)
        self.scaled_qkv = tuple(
            (torch.cat([Wt[:, :C] * scale, Wt[:, C:]], dim=1),
             torch.cat([b[:C] * scale, b[C:]])) for (Wt, b), *_ in self.linears)
        # The first block's input and its queries, keys and values depend only on the id and
        # its position: computed once for each (block_size, V, ...), looked up by `step`.
        with torch.no_grad():
            b, qkv = m.blocks[0], self.scaled_qkv[0]
            self.inputs = m.wte.weight[None] + m.wpe.weight[:, None]  # (block_size, V, C)
            a = F.layer_norm(self.inputs.reshape(-1, C), (C,), b.ln_1.weight, b.ln_1.bias,
                             b.ln_1.eps)
            self.first_qkv = torch.addmm(qkv[1], padded(a), qkv[0])[: len(a)].view(
                *self.inputs.shape[:2], 3 * C)  # (block_size, V, 3C)
        self.short_logits, self.short_cache = self.short_histories()
        # Checked on whole sequences of three lengths (a pass's rows are sequences x length),
        # and on the decoder over the whole block: its every step (each position's cache).
        V, T = len(m.vocab), m.block_size
        self.rows_independent = all(
            independent_rows(network, V, L, sizes=(1, 3, 16, 100), rows=256)
            for network, L in [*((self.sequence_logits, L) for L in sorted({1, min(5, T), T})),
                               (self.decoded, T)])

    @torch.no_grad()
    def sequence_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L) sequences from their start -> (B, L, V), as `Transformer.sequence_logits`."""
        m, (B, L) = self.m, x.shape
        C, nh = m.cfg.n_embd, m.cfg.n_head
        x = padded(x, ROW_MULTIPLE // math.gcd(L, ROW_MULTIPLE))  # B * L rows: a multiple
        b = len(x)
        h = (m.wte.weight[x] + m.wpe.weight[:L]).view(-1, C)  # (b * L, C)
        for block, (qkv, proj, fc, out) in zip(m.blocks, self.linears, strict=True):
            a = F.layer_norm(h, (C,), block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)
            q, k, v = (torch.mm(a, qkv[0]) + qkv[1]).split(C, dim=1)
            q, k, v = (t.reshape(b, L, nh, C // nh).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (b, nh, L, hs)
            h = h + (torch.mm(y.transpose(1, 2).reshape(-1, C), proj[0]) + proj[1])
            a = F.layer_norm(h, (C,), block.ln_2.weight, block.ln_2.bias, block.ln_2.eps)
            h = h + (torch.mm(F.gelu(torch.mm(a, fc[0]) + fc[1]), out[0]) + out[1])
        h = F.layer_norm(h, (C,), m.ln_f.weight, m.ln_f.bias, m.ln_f.eps)
        return (torch.mm(h, self.head[0]) + self.head[1]).view(b, L, -1)[:B]

    def new_cache(self, rows: int) -> torch.Tensor:
        """Room for the keys and values of every position of `rows` histories:
        (block_size, n_layer, rows, 2 * n_embd), each layer's rows of a position together."""
        m = self.m
        return torch.empty(m.block_size, len(m.blocks), rows, 2 * m.cfg.n_embd)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, cache: torch.Tensor, pos: int) -> torch.Tensor:
        """One position of R histories (R a multiple of ROW_MULTIPLE): `tokens` (R,) their ids
        at position `pos`, the first R rows of `cache` (`new_cache`) the keys and values of
        their positions before it -> (R, V) the logits after them; this position's keys and
        values are written into `cache`. What a KV-cached decoder needs and no more: the new
        position of each row through the linear layers (the weights transposed, as
        `sequence_logits`), attending to its cached keys and values with elementwise products
        and sums along each row (where `sequence_logits` attends over whole sequences); the same
        function, to float32 rounding."""
        m = self.m
        C, nh = m.cfg.n_embd, m.cfg.n_head
        R, hs, t = len(tokens), C // nh, pos + 1
        h = self.inputs[pos][tokens]  # (R, C)
        for i, (block, qkv, (_, proj, fc, out)) in enumerate(
                zip(m.blocks, self.scaled_qkv, self.linears, strict=True)):
            if i == 0:
                qkv_ = self.first_qkv[pos][tokens]  # (R, 3C)
            else:
                a = F.layer_norm(h, (C,), block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)
                qkv_ = torch.addmm(qkv[1], a, qkv[0])
            cache[pos, i, :R] = qkv_[:, C:]
            kv = cache[:t, i, :R].view(t, R, 2, nh, hs)  # this position's and the earlier ones
            att = (kv[:, :, 0] * qkv_[:, :C].view(R, nh, hs)).sum(dim=3).softmax(dim=0)  # (t,R,nh)
            y = (att[..., None] * kv[:, :, 1]).sum(dim=0)  # (R, nh, hs): over the positions
            h = h + torch.addmm(proj[1], y.view(R, C), proj[0])
            a = F.layer_norm(h, (C,), block.ln_2.weight, block.ln_2.bias, block.ln_2.eps)
            h = h + torch.addmm(out[1], F.gelu(torch.addmm(fc[1], a, fc[0])), out[0])
        h = F.layer_norm(h, (C,), m.ln_f.weight, m.ln_f.bias, m.ln_f.eps)
        return torch.addmm(self.head[1], h, self.head[0])

    def prefill(self, x: torch.Tensor, cache: torch.Tensor) -> torch.Tensor:
        """(R, L) sequences from their start, R a multiple of ROW_MULTIPLE, 1 <= L <= block_size
        -> the logits after them (R, V), their keys and values in the first R rows of `cache`:
        `step` at each position."""
        for pos in range(x.shape[1]):
            logits = self.step(x[:, pos], cache, pos)
        return logits

    def short_histories(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every name starts with the same few positions: the logits after each history of at
        most SHORT_LETTERS ids after the start ('.', '.a', ..., '.zz': `short_row` orders
        them), and the cache of the longest ones, computed once (a decoder looks them up)."""
        m = self.m
        V, K = len(m.vocab), min(SHORT_LETTERS, m.block_size - 1)
        while K and (K + 1) * len(m.blocks) * V**K * 2 * m.cfg.n_embd > SHORT_FLOATS:
            K -= 1
        logits = []
        for k in range(K + 1):
            letters = (torch.arange(V**k)[:, None] // V ** torch.arange(k - 1, -1, -1)) % V
            x = padded(torch.cat([torch.zeros(V**k, 1, dtype=torch.long), letters], dim=1))
            cache = self.new_cache(len(x))
            logits.append(self.prefill(x, cache)[: V**k])
        return torch.cat(logits), cache[: K + 1, :, : V**K].clone()

    def decoded(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L) sequences -> the logits after them (B, V), step by step: what the decoder
        computes (`rows_independent` checks it too)."""
        rows = padded(x)
        return self.prefill(rows, self.new_cache(len(rows)))[: len(x)]

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, block_size) '.'-padded windows -> (B, V), as `Transformer.layer_logits`: the
        windows holding sequences of each length together."""
        x, n = starts(idx)
        out = idx.new_empty((len(idx), len(self.m.vocab)), dtype=torch.float32)
        for L in n.unique().tolist():
            rows = (n == L).nonzero().squeeze(1)
            out[rows] = self.sequence_logits(x[rows, :L])[:, -1]
        return out


class KVDecoder(Decoder):
    """Sampling through a frozen model's `Rowwise.step`: each step runs only the newest
    character of each distinct name-so-far (a history: all names of a call share their start,
    many their first letters) through the blocks, attending to the keys and values its earlier
    characters left in the cache. Row by row the same bits whatever else is in the batch
    (`Rowwise.rows_independent`), so several requests can be one decoder (app/lm/sampling.py,
    `group_sampler`). Histories of at most SHORT_LETTERS letters are looked up
    (`Rowwise.short_histories`); once the names fill the block, the windows take over (the
    base Decoder).

    The cache holds the live histories in order, gathered after each step (one copy). Keeping
    each history in a slot of its own instead (a first child taking its parent's, dead slots
    skipped until half were dead) copied less but computed the dead slots: no faster on the
    shipped model (docs/engineering.md), and more to read."""

    def __init__(self, model: Transformer, ctx: torch.Tensor) -> None:
        super().__init__(model, ctx)
        self.fast: Rowwise = model._fast
        x, n = starts(ctx)
        self.pos = int(n[0])  # positions run (or looked up) so far
        # (block_size, n_layer, R, 2 C): the keys and values of the distinct histories, R
        # rounded up to a multiple of ROW_MULTIPLE; None while they are looked up, and once
        # the windows have taken over.
        self.cache: torch.Tensor | None = None
        self.short: torch.Tensor | None = None  # (U,): while looked up, each history's row
        self.which = torch.zeros(0, dtype=torch.long)  # (L,): each name's history
        self.tokens = torch.zeros(0, dtype=torch.long)  # (R,): each history's newest id
        self._logits: torch.Tensor | None = None  # (R, V)
        if not bool((n == self.pos).all()) or self.pos >= model.block_size:
            return  # the windows
        if bool((x == x[:1]).all()):  # one start for every name (as the sampler's)
            seqs, self.which = x[:1], torch.zeros(len(x), dtype=torch.long)
        else:
            seqs, self.which = torch.unique(x, dim=0, return_inverse=True)  # (U, pos)
        if self.pos <= len(self.fast.short_cache):
            self.short = short_row(seqs[:, 1:], len(model.vocab))
            self._logits = self.fast.short_logits[self.short]
        else:
            seqs = padded(seqs)
            self.cache = self.fast.new_cache(len(seqs))
            self._logits = self.fast.prefill(seqs, self.cache)

    def logits(self) -> torch.Tensor:
        if self.cache is None and self.short is None:
            return super().logits()
        if self._logits is None:
            self._logits = self.fast.step(self.tokens, self.cache, self.pos)
            self.pos += 1
        return self._logits[self.which]  # (L, V)

    def advance(self, keep: torch.Tensor, ix: torch.Tensor) -> None:
        super().advance(keep, ix)
        if self.cache is None and self.short is None:
            return
        if self.pos >= self.model.block_size:  # the block is full: windows from here on
            self.cache = self.short = None
            return
        V = len(self.model.vocab)
        keys, self.which = torch.unique(self.which[keep] * V + ix[keep], return_inverse=True)
        parent, token = keys // V, keys % V  # (U,) each
        if self.short is not None:
            # The parents' rows among the histories of their length (pos - 1 letters).
            local = self.short[parent] - (V ** (self.pos - 1) - 1) // (V - 1)
            if self.pos < len(self.fast.short_cache):  # the children are in the table too
                self.short = local * V + token + (V**self.pos - 1) // (V - 1)
                self._logits = self.fast.short_logits[self.short]
                self.pos += 1
                return
            parent = padded(local)
            self.cache = self.fast.new_cache(len(parent))
            self.cache[: self.pos] = self.fast.short_cache[:, :, parent]
            self.short, self.tokens, self._logits = None, padded(token), None
            return
        parent, self.tokens = padded(parent), padded(token)  # (R,) each
        cache = self.fast.new_cache(len(parent))
        torch.index_select(self.cache[: self.pos], 2, parent, out=cache[: self.pos])
        self.cache, self._logits = cache, None


def short_row(letters: torch.Tensor, V: int) -> torch.Tensor:
    """(U, k) ids after the start -> their rows in `Rowwise.short_histories`' table: the
    histories of fewer letters first, then in the order of their ids."""
    k = letters.shape[1]
    return (letters * V ** torch.arange(k - 1, -1, -1)).sum(dim=1) + (V**k - 1) // (V - 1)


KIND = Kind(
    name="transformer",
    title="a Transformer",
    description="a small decoder-only Transformer as in makemore: token and position "
                "embeddings, causal self-attention blocks with LayerNorm and an MLP, a name "
                "read from its start",
    model=Transformer,
    config=TransformerConfig,
    # Chosen on validation with names.txt (README: six runs); a batch is 128 whole names.
    training=OptimConfig(steps=20_000, batch_size=128, lr=1.5e-3, lr_min=1e-5, warmup=300,
                         weight_decay=0.1, eval_interval=1000),
    tiny=TransformerConfig(block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.0),
    tiny_training=OptimConfig(steps=200, batch_size=16, lr=1e-2, warmup=10, eval_interval=50),
    quick=TransformerConfig(n_layer=1, n_head=2, n_embd=32, dropout=0.0),
    quick_training=OptimConfig(steps=600, batch_size=32, lr=5e-3, warmup=50),
    has_embeddings=True,
    has_attention=True,
)
