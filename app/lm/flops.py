"""What one letter of a model costs: the floating-point operations of one window through the
model as written (`layer_logits`), in its matrix products (linear layers, matmuls, attention),
counted once per model and then read. At least V (the distribution itself: a table lookup
counts 0). On the shipped models: 27 for a bigram, 6.6 million for the Transformer (a window of
16 positions through 4 blocks). Counted, never timed: the same on any machine.

The serving budgets built on it are app/domain/cost.py's."""

from __future__ import annotations

import math
from weakref import WeakKeyDictionary

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from app.lm.base import LanguageModel

# model -> FLOPs, held weakly: a model replaced in a running server (app/serving/reloading.py)
# takes its entry with it, and an entry is only ever its own model's (never one of another
# model that reused a dead one's id)
_letter: WeakKeyDictionary[LanguageModel, int] = WeakKeyDictionary()


class Flops(TorchFunctionMode):
    """Counts the multiply-adds (x2) of the matrix products run under it, at the level of torch's
    functions: linear layers, matmul (and @), mm, bmm, addmm, baddbmm, and scaled dot-product
    attention (both of its products, over every query and key: an upper bound for a causal
    one). A TorchFunctionMode rather than torch's FlopCounterMode: entering a dispatch mode
    imports torch's compiler and sympy (0.8 s), which loading a model must not pay (start-up)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        if func is F.linear:
            x, w = args[0], args[1]
            self.total += 2 * math.prod(x.shape[:-1]) * w.shape[0] * w.shape[1]
        elif name in ("matmul", "__matmul__", "mm", "bmm"):
            self.total += 2 * out.numel() * args[0].shape[-1]
        elif name in ("addmm", "baddbmm"):
            self.total += 2 * out.numel() * args[1].shape[-1]
        elif func is F.scaled_dot_product_attention:
            q, k, v = args[:3]
            self.total += 2 * math.prod(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        return out


def letter_flops(model: LanguageModel) -> int:
    """FLOPs of one letter of `model`: one window through the model as written, counted
    the first time (for a served model, as it is loaded), then read."""
    kept = _letter.get(model)
    if kept is not None:
        return kept
    window = torch.ones(1, model.block_size, dtype=torch.long)  # full: every position a letter
    counter = Flops()
    with torch.no_grad(), counter:
        model.layer_logits(window)
    flops = max(counter.total, len(model.vocab))
    _letter[model] = flops
    return flops
