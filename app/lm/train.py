"""Training: counting for count-based kinds, one gradient trainer for every neural kind.

`fit(kind, ...)` returns the trained model (best-on-validation weights for gradient kinds, never
selected on test) and a loss history for the model card's chart. The gradient trainer asks the
model for its examples, its optimiser and its penalty (app/lm/base.py), so it never names a kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from app.data import Split
from app.lm.base import LanguageModel
from app.lm.config import OptimConfig
from app.lm.kind import Kind
from app.lm.vocab import Vocab

# progress(step, total, postfix) -- the CLI passes a tqdm bar; tests pass nothing.
Progress = Callable[[int, int, dict[str, float]], None]
# on_eval(step, model, val) -- called at every evaluation point with the weights of that step.
OnEval = Callable[[int, LanguageModel, float | None], None]


@dataclass
class History:
    """Loss curves: `train` is the mean training loss since the previous point. Stored in
    checkpoints as it is (CheckpointMeta validates it: no other keys, typed lists)."""

    __pydantic_config__ = {"extra": "forbid"}  # a pydantic ConfigDict, which is a plain dict

    step: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    val: list[float | None] = field(default_factory=list)

    def add(self, step: int, train: float, val: float | None) -> None:
        self.step.append(step)
        self.train.append(round(train, 5))
        self.val.append(None if val is None else round(val, 5))


@torch.no_grad()
def evaluate(model: LanguageModel, words: list[str], batch_size: int = 65536) -> float:
    """Average NLL per character in nats over `words`, the end token included: the summed NLL
    of every real target of the model's examples over their number."""
    if not words:
        return float("nan")
    X, Y = model.examples(words)
    was_training = model.training
    model.eval()
    total, n = 0.0, int((Y != -1).sum())
    for i in range(0, len(X), batch_size):
        total += model.nll(X[i : i + batch_size], Y[i : i + batch_size]).item()
    model.train(was_training)
    return total / n


def fit(kind: Kind, vocab: Vocab, split: Split, config: Any = None,
        training: OptimConfig | None = None, progress: Progress | None = None,
        on_eval: OnEval | None = None) -> tuple[LanguageModel, History]:
    """A model of `kind` trained on split.train: counted, or by the gradient trainer (with the
    kind's default config and training where none is given)."""
    config = kind.config() if config is None else config
    if kind.trains_by_counting:
        if training is not None:
            raise ValueError(f"{kind.name} is trained by counting: it takes no training options")
        model = kind.build(vocab, config)
        model.fit(split.train)
        return model.eval(), History()
    training = training or kind.training
    # torch's global generator: the layers' default init, then dropout's masks. Seeded before
    # the model is built, so a run repeats exactly (and repeats the figures in the README).
    torch.manual_seed(training.seed)
    model = kind.build(vocab, config)
    history = train(model, split, training, progress, on_eval)
    return model, history


def minibatches(n: int, batch_size: int, gen: torch.Generator,
                weights: torch.Tensor | None = None) -> Callable[[], torch.Tensor]:
    """The trainer's draws of `batch_size` row indices of n examples, from `gen`: uniform
    (torch.randint, as ever) without weights; with them, row i with probability weights[i] /
    weights.sum(), with replacement (inverse CDF: one binary search per draw against the
    cumulative weights summed once, rather than torch.multinomial's pass over all n per step)."""
    if weights is None:
        return lambda: torch.randint(0, n, (batch_size,), generator=gen)
    w = weights.double()
    if w.shape != (n,):
        raise ValueError(f"{n} example weights expected, got {tuple(w.shape)}")
    if not (torch.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
        raise ValueError("example weights must be finite, >= 0 and not all zero")
    if batch_size == 0:
        raise ValueError("weighted examples are drawn in minibatches: batch_size must be > 0")
    cdf = w.cumsum(0)
    cdf /= cdf[-1].clone()

    def draw() -> torch.Tensor:
        u = torch.rand(batch_size, generator=gen, dtype=torch.float64)
        # right=True: u lands on a row whose weight is > 0 (u < 1, so never past the end)
        return torch.searchsorted(cdf, u, right=True).clamp_(max=n - 1)

    return draw


def train(
    model: LanguageModel,
    split: Split,
    cfg: OptimConfig,
    progress: Progress | None = None,
    on_eval: OnEval | None = None,
) -> History:
    """Train a fresh model in place: seeded init, then AdamW (the model's
    `configure_optimizers`) with warm-up and cosine decay on minibatches of its examples, plus
    its penalty if any; keeps the best weights on validation (on training loss without a
    validation set; never selected on test). With `cfg.ema`, the weights validated, reported to
    `on_eval` and kept are an exponential moving average of the steps' weights (Polyak
    averaging: on a small data set it smooths the noise of the last steps of SGD, at the cost of
    one copy of the weights and a lerp per step); the history's train loss stays the raw one's.

    The model is never frozen here, so every validation pass runs the layers as written on the
    weights of that step (LanguageModel explains why the fast form cannot leak in).
    """
    gen = torch.Generator().manual_seed(cfg.seed)  # init and minibatches (dropout: see fit)
    device = torch.device(cfg.device)
    model.init_weights(gen)
    model.to(device)
    Xtr, Ytr = (t.to(device) for t in model.examples(split.train))
    draw = minibatches(len(Xtr), cfg.batch_size, gen, model.example_weights(split.train))
    opt = model.configure_optimizers(cfg.weight_decay, cfg.lr, (0.9, cfg.beta2))
    averaged = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema))
                if cfg.ema else None)
    kept = model if averaged is None else averaged.module  # what is validated and kept
    history = History()
    best_val, best_state = math.inf, None
    running, n_running = 0.0, 0
    model.train()
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at(step)
        if cfg.batch_size:
            ix = draw().to(device)
            _, loss = model(Xtr[ix], Ytr[ix])
        else:
            loss = model.full_batch_loss(Xtr, Ytr)
        penalty = model.penalty()
        opt.zero_grad(set_to_none=True)
        (loss if penalty is None else loss + penalty).backward()
        opt.step()
        if averaged is not None:
            averaged.update_parameters(model)
        running += loss.item()
        n_running += 1
        last = step == cfg.steps - 1
        if (step + 1) % cfg.eval_interval == 0 or last:
            val = evaluate(kept, split.val) if split.val else None
            if on_eval:
                on_eval(step + 1, kept, val)
            history.add(step + 1, running / n_running, val)
            running, n_running = 0.0, 0
            score = val if val is not None else history.train[-1]
            if score < best_val:
                best_val = score
                best_state = {k: v.detach().clone() for k, v in kept.state_dict().items()}
            if progress:
                progress(step + 1, cfg.steps,
                         {"loss": history.train[-1], **({"val": val} if val else {})})
        elif progress and step % 50 == 0:
            progress(step + 1, cfg.steps, {"loss": loss.item()})
    if best_state is not None:
        model.load_state_dict(best_state)
    model.to("cpu").eval()
    return history
