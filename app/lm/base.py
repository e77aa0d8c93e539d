"""The one interface every Namelab model speaks.

A model maps a batch of contexts, the ids of the previous `block_size` characters with '.' (id 0)
as left padding, to logits over the next character:

    logits, loss = model(idx, targets)   # idx (B, block_size) -> logits (B, V); loss = mean NLL

Sampling, scoring, search and evaluation are written once against this (see the sibling modules).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any, ClassVar, Self

import torch
import torch.nn.functional as F
from torch import nn

from app.lm.vocab import BOUNDARY, Vocab

UTF32 = "utf-32-le" if sys.byteorder == "little" else "utf-32-be"


class LanguageModel(nn.Module):
    """A model, and optionally a faster form of the same function for serving.

    Models compute their logits "as written" (`layer_logits`), which is what training
    differentiates and evaluates. A kind may also offer an `inference_form`: the same function
    rearranged for speed and built from the weights of the moment (the MLP folds its layers and
    precomputes short contexts). That form is used only between `freeze()` and the next change
    of the model, and this is why it can never go stale:
    - `freeze()` turns gradients off for every parameter. No loss can reach a frozen weight, so
      no optimiser can update it (an optimiser skips parameters without a gradient; a
      `backward()` through a frozen model raises), whatever the optimiser does with version
      counters.
    - Every other way Namelab changes weights drops the form first: `train()`,
      `load_state_dict()` and moving or casting the model (`to`, `float`, ...).
    - Training never freezes: it evaluates through `layer_logits`, so a validation figure is
      always that of the current weights.
    Writing into a frozen model's tensors by hand under `torch.no_grad()` is the one thing left,
    and nothing does it: serving loads a checkpoint, freezes it, and only reads it.
    """

    kind: ClassVar[str]  # the kind's name ('mlp', 'transformer', ...): in checkpoints, the CLI

    def __init__(self, vocab: Vocab, block_size: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.block_size = block_size
        # Set by freeze(), until train(): plain attributes, never in the state dict.
        self._frozen = False
        self._fast: Callable[[torch.Tensor], torch.Tensor] | None = None

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, block_size) context ids -> (B, V) next-character logits."""
        fast = self._fast
        if fast is not None and not torch.is_grad_enabled():
            return fast(idx)
        return self.layer_logits(idx)

    def layer_logits(self, idx: torch.Tensor) -> torch.Tensor:
        """The model as written: what training differentiates and evaluates."""
        raise NotImplementedError

    def inference_form(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """A faster function equal to `layer_logits` on the current weights, or None."""
        return None

    def decoder(self, ctx: torch.Tensor) -> Decoder:
        """How sampling steps this model from the (n, block_size) start contexts `ctx`."""
        return Decoder(self, ctx)

    def word_logits(self, words: list[str], X: torch.Tensor) -> torch.Tensor:
        """(N, V) logits of every step of `words`, X being their `build_examples` contexts (the
        same order). Each distinct context once; a kind may read whole words at once."""
        return distinct_logits(self, X)

    @property
    def rows_independent(self) -> bool:
        """True when a row's logits are the same to the last bit whatever other rows share its
        batch. Requests are served together (app/serving/batching.py) only then, so that each gets
        exactly what it would get alone. By default, what the frozen model's fast form found
        when it checked its shapes (its `rows_independent`); false without one. The table
        lookups of the bigrams say true."""
        return bool(getattr(self._fast, "rows_independent", False))

    @property
    def groups_sampling(self) -> bool:
        """True when several sampling requests may be the rows of one decoder and so share
        its steps (app/serving/batching.py, app/lm/sampling.py `group_sampler`): each row's logits
        must then be independent of the batch. The base window Decoder's are the model's rows
        (`rows_independent`); a kind with its own decoder says whether its rows are."""
        return self.rows_independent and type(self).decoder is LanguageModel.decoder

    @property
    def sequence_steps(self) -> int:
        """How many first steps of a name the model, as served, computes a position at a time
        (each reading what the earlier positions left, as the Transformer's KV-cached decoder
        and whole-name scoring do) rather than a window at a time: 0 for the window kinds.
        What a step costs depends on it (app/lm/flops.py)."""
        return 0

    @torch.no_grad()
    def freeze(self) -> Self:
        """Fix the weights for serving: eval mode, no gradients, the fast form built from the
        weights as they are now and checked against the layers on a few contexts."""
        self.eval()
        self.requires_grad_(False)
        fast = self.inference_form()
        if fast is not None:
            probe = torch.randint(0, len(self.vocab), (64, self.block_size),
                                  generator=torch.Generator().manual_seed(0))
            # Not torch.testing.assert_close: it imports torch.distributed (~1 s at start-up).
            got, want = fast(probe), self.layer_logits(probe)
            if not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
                worst = (got - want).abs().max().item()
                raise AssertionError(f"{self.kind}: the inference form differs from the layers "
                                     f"by up to {worst:.3g}")
        self._fast = fast
        self._frozen = True
        return self

    def unfreeze(self) -> None:
        self._fast = None
        self._frozen = False
        self.requires_grad_(True)

    def train(self, mode: bool = True) -> Self:
        if mode and self._frozen:
            self.unfreeze()
        return super().train(mode)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self._fast = None
        return super().load_state_dict(*args, **kwargs)

    def _apply(self, *args: Any, **kwargs: Any) -> Self:  # to(), float(), cpu(), ...
        self._fast = None
        return super()._apply(*args, **kwargs)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.logits(idx)
        loss = None if targets is None else F.cross_entropy(logits, targets)
        return logits, loss

    def config(self) -> dict[str, Any]:
        """The hyperparameters that rebuild this model's shape (stored in checkpoints): by
        default its config dataclass, kept as `self.cfg`."""
        return dataclasses.asdict(self.cfg)

    @classmethod
    def from_config(cls, vocab: Vocab, config: Any) -> LanguageModel:
        """A model from its kind's config dataclass (see `Kind.build`)."""
        return cls(vocab, config)

    def may_give_zero(self) -> bool:
        """Whether a probability of exactly 0 is a legitimate output (log-prob -inf), as from
        a count model without smoothing; anywhere else it means broken weights."""
        return False

    # --- training: what the shared gradient trainer (app/lm/train.py) asks of a model ---

    def init_weights(self, generator: torch.Generator) -> None:
        """Seeded initial weights (the trainer's generator, so a run is reproducible)."""

    def examples(self, words: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """What the model trains and is evaluated on: X and Y whose rows are examples.

        Default: every (context, next character) pair, X (N, block_size) and Y (N,). A kind
        that trains on whole sequences returns X (N, T) and Y (N, T) with -1 at padding, and
        computes its loss over the real targets only (cross_entropy(ignore_index=-1)).
        """
        return build_examples(words, self.vocab, self.block_size)

    def example_weights(self, words: list[str]) -> torch.Tensor | None:
        """How often the trainer draws each row of `examples(words)` into a minibatch, relative
        to the others ((N,) float64, >= 0), or None: every row alike (the default). The era
        model weighs by births; evaluation never weighs (every NLL is per example)."""
        return None

    def nll(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """The summed NLL (float64) of the real targets of a batch of examples (Y == -1 is
        padding): what evaluation adds up. A kind whose examples are whole sequences computes
        the logits of every position here."""
        logits, _ = self(X)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), Y.reshape(-1),
                               ignore_index=-1, reduction="sum")

    def note_dataset(self, words: list[str]) -> None:
        """What a model keeps of its whole dataset besides its weights, once, after training
        (the conditional model's prior of births); nothing by default."""

    def full_batch_loss(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """The loss over every example at once (the trainer's batch_size 0). A kind may compute
        the same number faster than its forward pass over every row."""
        return self(X, Y)[1]

    def penalty(self) -> torch.Tensor | None:
        """A regularisation term the trainer adds to the loss (the neural bigram's L2), or
        None. Not part of the reported NLL."""
        return None

    def configure_optimizers(
        self, weight_decay: float, lr: float, betas: tuple[float, float]
    ) -> torch.optim.Optimizer:
        """AdamW with weight decay on the weight matrices of linear and convolutional layers
        only: not on biases, norms or embeddings (decided by module type, as minGPT does)."""
        decayed = {id(m.weight) for m in self.modules()
                   if isinstance(m, (nn.Linear, nn.Conv1d)) and m.weight.requires_grad}
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if id(p) in decayed]
        no_decay = [p for p in params if id(p) not in decayed]
        return torch.optim.AdamW(
            [{"params": decay, "weight_decay": weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=lr,
            betas=betas,
            fused=True,  # one deterministic kernel per step instead of ~10 ops per tensor on CPU
        )

    def bigram_probs(self) -> torch.Tensor | None:
        """(V, V) table P(next | previous) for models that are bigrams; None for others."""
        return None

    def bigram_counts(self) -> torch.Tensor | None:
        """(V, V) counts for count-based models; None for others."""
        return None

    def embedding_table(self) -> torch.Tensor | None:
        """(V, n_embd) character embeddings for models that have them; None for others."""
        return None

    # --- looking inside (app/lm/inspect.py) ---

    def activation_layers(self) -> list[tuple[str, nn.Module, str]]:
        """The hidden layers worth a health check: (label, the module whose output is the
        layer's activations, its function: 'tanh', 'gelu' or 'relu'). None for a table."""
        return []

    @torch.no_grad()
    def hidden_activations(self, words: list[str]) -> list[torch.Tensor]:
        """Each of `activation_layers`' outputs over every prediction of `words` (in the
        layers, as written): one (rows, units) tensor per layer. By default each
        `build_examples` context is one row (a layer that works on several positions, as the
        WaveNet's, gives a row per position); a kind that reads whole names says otherwise."""
        X, _ = build_examples(words, self.vocab, self.block_size)
        return self._hooked(lambda: self.layer_logits(X))

    def _hooked(self, run: Callable[[], Any]) -> list[torch.Tensor]:
        """The outputs of `activation_layers`' modules while `run()` runs, each (rows, units)."""
        layers = self.activation_layers()
        seen: list[list[torch.Tensor]] = [[] for _ in layers]
        hooks = [module.register_forward_hook(
                     lambda _m, _i, out, k=k: seen[k].append(out.detach()))
                 for k, (_, module, _) in enumerate(layers)]
        try:
            run()
        finally:
            for h in hooks:
                h.remove()
        return [torch.cat([t.reshape(-1, t.shape[-1]) for t in ts]) for ts in seen]

    @property
    def n_params(self) -> int:
        """Trainable parameters (the bigram's counts are its parameters, V*V of them)."""
        return sum(p.numel() for p in self.parameters())


def build_examples(words: list[str], vocab: Vocab, block_size: int) -> tuple[torch.Tensor, ...]:
    """Every (context, next character) pair of every word, the end token included.

    'emma' with block_size 3 -> ... -> e, ..e -> m, .em -> m, emm -> a, mma -> .

    All words are laid end to end, each after block_size '.'s, in one id sequence; the contexts
    are its windows of block_size ids that start at a word's padding (one per letter and one for
    the end), and each target is the id right after its window.
    """
    pad = BOUNDARY * block_size
    ids = encode_ids(pad + pad.join(words) + BOUNDARY, vocab)
    steps = torch.tensor([len(w) + 1 for w in words], dtype=torch.long)  # (words,)
    word_at = torch.cumsum(steps + block_size - 1, dim=0) - (steps + block_size - 1)
    first_step = torch.cumsum(steps, dim=0) - steps
    step_in_word = torch.arange(int(steps.sum())) - first_step.repeat_interleave(steps)
    starts = word_at.repeat_interleave(steps) + step_in_word  # (N,): where each window starts
    X = ids.unfold(0, block_size, 1)[starts]  # (N, block_size)
    Y = ids[starts + block_size]  # (N,)
    return X, Y


def encode_ids(text: str, vocab: Vocab) -> torch.Tensor:
    """The ids of text's characters, '.' included, as one long tensor (ValueError for a
    character outside the vocabulary). str.translate maps each character to the character
    whose code is its id, so one C loop does what a Python loop per character would."""
    unknown = set(text) - set(vocab.itos)
    if unknown:
        raise ValueError(f"characters outside the vocabulary {str(vocab)!r}: {sorted(unknown)}")
    table = str.maketrans({ch: chr(i) for i, ch in enumerate(vocab.itos)})
    codes = bytearray(text.translate(table).encode(UTF32))  # 4 bytes per id, native order
    return torch.frombuffer(codes, dtype=torch.int32).long()


def decode_rows(idx: torch.Tensor, vocab: Vocab) -> list[str]:
    """(N, T) ids -> N strings of T characters, '.' included: encode_ids' inverse, row by row."""
    N, T = idx.shape
    codes = idx.to(torch.int32).contiguous().numpy().tobytes().decode(UTF32)
    text = codes.translate(dict(enumerate(vocab.itos)))
    return [text[i : i + T] for i in range(0, N * T, T)]


def distinct_logits(model: LanguageModel, idx: torch.Tensor) -> torch.Tensor:
    """model(idx)'s logits, computing each distinct context once.

    A batch of names shares its first contexts (every name starts from '...', many from
    '..a'), so scoring or sampling 1000 names needs the model on about half as many rows.
    """
    N, B = idx.shape
    V = len(model.vocab)
    if N < 2 or V**B >= 2**62:  # nothing to share, or the key would overflow int64
        return model(idx)[0]
    place = V ** torch.arange(B - 1, -1, -1)  # (B,): a context as one base-V number
    keys, inverse = torch.unique((idx * place).sum(dim=1), return_inverse=True)
    if len(keys) == N:
        return model(idx)[0]
    logits, _ = model((keys[:, None] // place) % V)  # (distinct, V)
    return logits[inverse]  # (N, V)


class Decoder:
    """Sampling's view of a model: the next-character logits of the names still growing, one
    character at a time. This one runs each step's '.'-padded windows through the model, for
    every kind; a kind may return a faster equivalent from `LanguageModel.decoder`."""

    def __init__(self, model: LanguageModel, ctx: torch.Tensor) -> None:
        self.model = model
        self.ctx = ctx  # (L, block_size): the windows of the names still growing

    def logits(self) -> torch.Tensor:
        """(L, V) for the current windows."""
        return distinct_logits(self.model, self.ctx)

    def advance(self, keep: torch.Tensor, ix: torch.Tensor) -> None:
        """The names drew ix (L,); those where `keep` is true go on with it."""
        self.ctx = torch.cat([self.ctx[keep, 1:], ix[keep, None]], dim=1)


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


def embedding(num: int, dim: int) -> nn.Embedding:
    """nn.Embedding(num, dim), initialised as nn.Embedding does (N(0, 1), drawn from torch's
    global generator, so a seeded training run repeats) except on the meta device, where the
    checkpoint loader builds a model only for its shapes: there the first normal_ would cost
    over a second (torch imports its compiler to trace the decomposition)."""
    emb = nn.Embedding(num, dim, _weight=torch.empty(num, dim))
    if not emb.weight.is_meta:
        nn.init.normal_(emb.weight)
    return emb


# Row-independent arithmetic (the MLP's point 4; also the WaveNet's and the Transformer's fast
# forms). Measured on torch 2.13's CPU build: a matrix product of one row (or, with the weight
# not transposed, of fewer than 16) takes another kernel, and an elementwise function computes
# the tail of a tensor that does not fill its vector registers with scalar code, which rounds
# differently. So fast forms multiply by weights kept transposed (`transposed`) and pad their
# rows to a multiple of ROW_MULTIPLE (`padded`): every row then sees the same kernels wherever
# it sits. Which kernel a product takes also depends on its size, so each fast form checks its
# own shapes (`independent_rows`) and says so in `rows_independent`.
ROW_MULTIPLE = 16


def padded(x: torch.Tensor, multiple: int = ROW_MULTIPLE) -> torch.Tensor:
    """x with zero rows added (along dim 0) up to a multiple of `multiple` rows."""
    n = len(x)
    extra = -(-n // multiple) * multiple - n
    return torch.cat([x, x.new_zeros((extra, *x.shape[1:]))]) if extra else x


def transposed(linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear layer's (weight.T, bias), the weight transposed in memory: x @ W.T + b is then
    torch.mm(x, Wt) + b, whose kernel does not depend on the number of rows (see above)."""
    return linear.weight.T.contiguous(), linear.bias.clone()


def independent_rows(network: Callable[[torch.Tensor], torch.Tensor], V: int, T: int,
                     sizes: tuple[int, ...] = (1, 3, 16, 48, 160, 1040),
                     rows: int = 2048) -> bool:
    """Do batches of `sizes` random contexts (T ids < V) get from `network` the bits that each
    row gets in a batch of `rows`?"""
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, V, (rows, T), generator=g)
    full = network(idx)
    for n in sizes:
        some = torch.randperm(len(idx), generator=g)[:n]
        if not torch.equal(network(idx[some]), full[some]):
            return False
    return True


SHORT_ROWS = 27**3  # at most this many precomputed short contexts (~2 MB of logits for V = 27)


def short_contexts(V: int, T: int) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Every context of at most K letters after the start padding, K the most with V**K <=
    SHORT_ROWS: every name starts there, so a fast form computes their logits once and looks
    them up (`lookup_short`). Returns skip = T - K (a short context is '.' at these first
    positions), place (K,) = V**(K-1), ..., 1 (the last K ids as one number: the row), and the
    contexts (V**K, T), row r being the one whose last K ids spell r."""
    K = 0
    while K < T and V ** (K + 1) <= SHORT_ROWS:
        K += 1
    place = V ** torch.arange(K - 1, -1, -1)
    tails = (torch.arange(V**K)[:, None] // place) % V  # (V**K, K)
    return T - K, place, torch.cat([torch.zeros(V**K, T - K, dtype=torch.long), tails], dim=1)


def lookup_short(idx: torch.Tensor, skip: int, place: torch.Tensor, short: torch.Tensor,
                 network: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """(B, T) contexts -> (B, V): the short ones read from `short` (their logits, in
    `short_contexts` order), the others through `network`."""
    is_short = (idx[:, :skip] == 0).all(dim=1)  # (B,)
    if not bool(is_short.any()):
        return network(idx)
    row = (idx[:, skip:] * place).sum(dim=1)  # (B,): the row in `short`
    if bool(is_short.all()):
        return short[row]
    out = short.new_empty((len(idx), short.shape[1]))
    out[is_short] = short[row[is_short]]
    out[~is_short] = network(idx[~is_short])
    return out
