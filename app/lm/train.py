"""Training: counting for the bigram, gradient descent for the neural bigram and the MLP.

Every trainer returns the trained model (best-on-validation weights for the MLP, never selected
on test) and a loss history for the model card's chart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from app.data import Split
from app.lm.base import LanguageModel, build_examples
from app.lm.bigram import Bigram
from app.lm.mlp import MLP, MLPConfig
from app.lm.neural_bigram import NeuralBigram
from app.lm.vocab import Vocab

# progress(step, total, postfix) -- the CLI passes a tqdm bar; tests pass nothing.
Progress = Callable[[int, int, dict[str, float]], None]
# on_eval(step, model, val) -- called at every evaluation point with the weights of that step.
OnEval = Callable[[int, LanguageModel, float | None], None]


@dataclass
class History:
    """Loss curves: `train` is the mean training loss since the previous point."""

    step: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    val: list[float | None] = field(default_factory=list)

    def add(self, step: int, train: float, val: float | None) -> None:
        self.step.append(step)
        self.train.append(round(train, 5))
        self.val.append(None if val is None else round(val, 5))

    def to_dict(self) -> dict[str, list]:
        return {"step": self.step, "train": self.train, "val": self.val}


@dataclass
class OptimConfig:
    steps: int = 9_000  # optimisation steps (minibatches)
    batch_size: int = 1024
    lr: float = 5e-3  # peak learning rate (AdamW)
    lr_min: float = 3e-5  # cosine decay ends here
    warmup: int = 500  # linear warm-up steps
    weight_decay: float = 0.05  # AdamW, on weight matrices only
    eval_interval: int = 1000  # steps between validation passes (and history points)
    seed: int = 1337
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.lr_min < 0 or self.lr_min > self.lr:
            raise ValueError(f"need 0 <= lr_min <= lr and lr > 0, got lr={self.lr}, "
                             f"lr_min={self.lr_min}")
        if self.warmup < 0 or self.weight_decay < 0:
            raise ValueError("warmup and weight_decay must be >= 0")

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay from lr to lr_min."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        t = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * t))


@torch.no_grad()
def evaluate(model: LanguageModel, words: list[str], batch_size: int = 65536) -> float:
    """Average NLL per character in nats over `words`, the end token included."""
    if not words:
        return float("nan")
    X, Y = build_examples(words, model.vocab, model.block_size)
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, len(X), batch_size):
        logits, _ = model(X[i : i + batch_size])
        total += F.cross_entropy(logits.double(), Y[i : i + batch_size], reduction="sum").item()
    model.train(was_training)
    return total / len(X)


def train_bigram(vocab: Vocab, split: Split, smoothing: float = 1.0) -> tuple[Bigram, History]:
    model = Bigram(vocab, smoothing=smoothing).fit(split.train)
    return model.eval(), History()


@dataclass
class NeuralBigramConfig:
    steps: int = 300  # full-batch gradient steps
    lr: float = 0.5  # Adam learning rate
    reg: float = 0.001  # L2 penalty on W: loss = NLL + reg * mean(W**2)
    seed: int = 2147483647  # the lecture's generator seed for the initial W

    def __post_init__(self) -> None:
        if self.steps < 1 or self.lr <= 0 or self.reg < 0:
            raise ValueError("need steps >= 1, lr > 0 and reg >= 0")


def train_neural_bigram(
    vocab: Vocab, split: Split, cfg: NeuralBigramConfig, progress: Progress | None = None
) -> tuple[NeuralBigram, History]:
    """Full-batch Adam on NLL + reg * mean(W^2).

    The full-batch loss F.cross_entropy(W[xs], ys) only depends on how often each (previous,
    next) pair occurs, so it is computed from the pair counts: the same number and the same
    gradient, at the cost of a 27x27 table instead of ~200k rows per step.
    """
    model = NeuralBigram(vocab)
    model.init_weights(torch.Generator().manual_seed(cfg.seed))
    counts = Bigram(vocab, smoothing=0).fit(split.train).counts.float()
    n_examples = counts.sum()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history = History()
    every = max(1, cfg.steps // 100)
    for step in range(cfg.steps):
        nll = -(counts * F.log_softmax(model.W, dim=1)).sum() / n_examples
        loss = nll + cfg.reg * (model.W**2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every == 0 or step == cfg.steps - 1:
            val = evaluate(model, split.val) if split.val and step == cfg.steps - 1 else None
            history.add(step + 1, nll.item(), val)
            if progress:
                progress(step + 1, cfg.steps, {"loss": nll.item()})
    return model.eval(), history


def train_mlp(
    vocab: Vocab,
    split: Split,
    cfg: MLPConfig,
    opt_cfg: OptimConfig,
    progress: Progress | None = None,
    on_eval: OnEval | None = None,
) -> tuple[MLP, History]:
    """Minibatch AdamW with warm-up and cosine decay; keeps the best weights on validation.

    The model is never frozen here, so every validation pass runs the layers as written on the
    weights of that step (LanguageModel explains why the fast form cannot leak in).
    """
    torch.manual_seed(opt_cfg.seed)  # dropout masks
    gen = torch.Generator().manual_seed(opt_cfg.seed)  # init and minibatches
    device = torch.device(opt_cfg.device)
    model = MLP(vocab, cfg)
    model.init_weights(gen)
    model.to(device)
    Xtr, Ytr = (t.to(device) for t in build_examples(split.train, vocab, cfg.block_size))

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith("C.")]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or n.startswith("C.")]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": opt_cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=opt_cfg.lr,
        betas=(0.9, 0.99),
        fused=True,  # one deterministic kernel per step instead of ~10 ops per tensor on CPU
    )
    history = History()
    best_val, best_state = math.inf, None
    running, n_running = 0.0, 0
    model.train()
    for step in range(opt_cfg.steps):
        for group in opt.param_groups:
            group["lr"] = opt_cfg.lr_at(step)
        ix = torch.randint(0, len(Xtr), (opt_cfg.batch_size,), generator=gen).to(device)
        _, loss = model(Xtr[ix], Ytr[ix])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += loss.item()
        n_running += 1
        last = step == opt_cfg.steps - 1
        if (step + 1) % opt_cfg.eval_interval == 0 or last:
            val = evaluate(model, split.val) if split.val else None
            if on_eval:
                on_eval(step + 1, model, val)
            history.add(step + 1, running / n_running, val)
            running, n_running = 0.0, 0
            score = val if val is not None else history.train[-1]
            if score < best_val:
                best_val = score
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if progress:
                progress(step + 1, opt_cfg.steps,
                         {"loss": history.train[-1], **({"val": val} if val else {})})
        elif progress and step % 50 == 0:
            progress(step + 1, opt_cfg.steps, {"loss": loss.item()})
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.to("cpu").eval(), history

