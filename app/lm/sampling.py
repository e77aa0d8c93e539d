"""Batched sampling for any model: all n names advance one character per forward pass."""

from __future__ import annotations

import torch

from app.lm.base import LanguageModel

MAX_LEN = 64


@torch.no_grad()
def sample(
    model: LanguageModel,
    n: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: str = "",
    max_len: int = 32,
) -> list[str]:
    """Draw n names. Every name starts with `prefix` (already normalised and in the vocab),
    has at least one letter and at most `max_len` letters (a name that reaches max_len is cut
    there). Deterministic for a given generator state; never touches the global RNG."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    V = len(model.vocab)
    if top_k is not None and not 1 <= top_k <= V:
        raise ValueError(f"top_k must be between 1 and {V}, got {top_k}")
    if not 1 <= max_len <= MAX_LEN:
        raise ValueError(f"max_len must be between 1 and {MAX_LEN}, got {max_len}")
    if len(prefix) > max_len:
        raise ValueError(f"prefix {prefix!r} is longer than max_len={max_len}")

    B = model.block_size
    prefix_ids = model.vocab.encode(prefix)
    start = ([0] * B + prefix_ids)[-B:]
    ctx = torch.tensor([start], dtype=torch.long).repeat(n, 1)  # (n, B)
    out = torch.zeros(n, max_len, dtype=torch.long)  # sampled letter ids, 0 after the end
    if prefix_ids:
        out[:, : len(prefix_ids)] = torch.tensor(prefix_ids)
    done = torch.zeros(n, dtype=torch.bool)
    model.eval()
    for t in range(len(prefix_ids), max_len):
        logits, _ = model(ctx)
        logits = logits.float()  # (n, V)
        if t == 0:
            logits[:, 0] = -torch.inf  # a name has at least one letter
        # Shift the best logit to 0 before dividing, and divide by at least 1e-30 (a float32,
        # unlike 1e-300): a tiny temperature then gives 0 and -inf (greedy), never nan.
        logits = (logits - logits.max(dim=1, keepdim=True).values) / max(temperature, 1e-30)
        if top_k is not None and top_k < V:
            kth = torch.topk(logits, top_k, dim=1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, -torch.inf)
        probs = torch.softmax(logits, dim=1)
        ix = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (n,)
        ix = ix.masked_fill(done, 0)
        out[:, t] = ix
        done |= ix == 0
        if bool(done.all()):
            break
        ctx = torch.cat([ctx[:, 1:], ix[:, None]], dim=1)
    return [model.vocab.decode(row) for row in out.tolist()]
