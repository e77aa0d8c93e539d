"""The k most probable names under a model, exactly, by best-first search over prefixes.

Extending a prefix only multiplies in probabilities <= 1, so a finished name popped from the top
of the priority queue is more probable than anything still in it. Partial prefixes are expanded
in batches (one forward pass for many contexts); expanding a few more than needed costs work,
never exactness.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import torch

from app.lm.base import LanguageModel
from app.lm.deadline import Deadline, passed
from app.lm.scoring import prefix_log_prob


@dataclass(frozen=True)
class SearchResult:
    names: list[tuple[str, float]]  # (name, log_prob), most probable first
    exhausted: bool  # True when the effort bound or the deadline stopped it before k names


@torch.no_grad()
def most_probable(
    model: LanguageModel,
    k: int,
    prefix: str = "",
    max_len: int = 32,
    max_expansions: int = 20_000,
    batch: int = 64,
    deadline: Deadline | None = None,
) -> SearchResult:
    """The k most probable names (of 1..max_len letters, starting with `prefix`): exactly,
    or the best found before `max_expansions` prefixes or the deadline (exhausted=True)."""
    vocab, B = model.vocab, model.block_size
    stoi = vocab.stoi
    model.eval()
    start_lp = prefix_log_prob(model, prefix)
    # heap entries: (-log_prob, name, finished)
    heap: list[tuple[float, str, bool]] = [(-start_lp, prefix, False)]
    found: list[tuple[str, float]] = []
    expansions = 0
    while heap and len(found) < k:
        if heap[0][2]:
            neg_lp, name, _ = heapq.heappop(heap)
            found.append((name, -neg_lp))
            continue
        if expansions >= max_expansions or passed(deadline):
            return SearchResult(found, exhausted=True)
        todo = []
        while heap and not heap[0][2] and len(todo) < batch:
            todo.append(heapq.heappop(heap))
        expansions += len(todo)
        ctx = torch.tensor([([0] * B + [stoi[c] for c in name])[-B:] for _, name, _ in todo])
        logits, _ = model(ctx)
        logp = torch.log_softmax(logits.double(), dim=1).tolist()
        for (neg_lp, name, _), row in zip(todo, logp, strict=True):
            lp = -neg_lp
            if name and row[0] > -float("inf"):
                heapq.heappush(heap, (-(lp + row[0]), name, True))
            if len(name) < max_len:
                for ix in range(1, len(row)):
                    if row[ix] > -float("inf"):
                        heapq.heappush(heap, (-(lp + row[ix]), name + vocab.itos[ix], False))
    return SearchResult(found, exhausted=len(found) < k)
