"""What one letter of a model costs: the floating-point operations of its matrix products
(linear layers, matmuls, attention), counted once per model and then read. Counted, never
timed: the same on any machine.

A window through the model as written (`layer_logits`) is counted (`window_flops`), at least V
(the distribution itself: a table lookup counts 0). That is a letter of every kind that reads a
window per letter: 27 for a bigram, 748,544 for the shipped MLP. A kind that reads a name from
its start, a position per letter (`LanguageModel.sequence_steps`: the Transformer's KV-cached
decoder and its whole-name scoring), pays a window only for the letters past its block; each of
the first `sequence_steps` costs one position of a full block, the window's cost over its
positions (`letter_flops`): 413,056 for the shipped Transformer, whose window (16 positions
through 4 blocks) is 6.6 million.

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
    """FLOPs of one letter of `model` within its first `sequence_steps` (a window per letter
    for a kind without them): what each step of a name costs there. Counted with the window."""
    steps = model.sequence_steps
    return -(-window_flops(model) // steps) if steps else window_flops(model)


def step_flops(model: LanguageModel, t: int) -> int:
    """FLOPs of the step after t letters of a name: a letter within the model's
    `sequence_steps`, a window past them."""
    return letter_flops(model) if t < model.sequence_steps else window_flops(model)


def window_flops(model: LanguageModel) -> int:
    """FLOPs of one window through `model` as written, counted the first time (for a served
    model, as it is loaded), then read."""
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
