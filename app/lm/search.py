"""The k most probable names under a model, exactly, by best-first search over prefixes.

Extending a prefix only multiplies in probabilities <= 1, so a finished name popped from the top
of the priority queue is more probable than anything still in it. Partial prefixes are expanded
in batches (one forward pass for many contexts); expanding a few more than needed costs work,
never exactness.

The work is bounded by a count, `max_expansions` prefixes expanded, so the same request finds
the same names on every machine and at any load. A deadline may also be given, as a safety net
only: if it passes first, the result says so (`timed_out`), since what was found by then
depends on the machine's speed.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import torch

from app.lm.base import LanguageModel
from app.lm.deadline import Deadline, passed
from app.lm.scoring import prefix_log_prob

MAX_EXPANSIONS = 20_000  # prefixes expanded per search, at most: the search's effort bound
# Contexts per forward pass: larger batches cost less per prefix (docs/determinism.md); a batch
# may expand a few prefixes more than needed.
BATCH = 256


@dataclass(frozen=True)
class SearchResult:
    names: list[tuple[str, float]]  # (name, log_prob), most probable first
    exhausted: bool  # fewer than k names: the effort bound or the deadline stopped it first
    timed_out: bool = False  # the deadline (a safety net) stopped it, not the effort bound
    expansions: int = 0  # prefixes expanded


@torch.no_grad()
def most_probable(
    model: LanguageModel,
    k: int,
    prefix: str = "",
    max_len: int = 32,
    max_expansions: int | None = None,
    batch: int = BATCH,
    deadline: Deadline | None = None,
) -> SearchResult:
    """The k most probable names (of 1..max_len letters, starting with `prefix`): exactly,
    or the best found before `max_expansions` prefixes (exhausted=True), or before the deadline
    (exhausted=True, timed_out=True). Ties in probability come in alphabetical order.
    `max_expansions` is MAX_EXPANSIONS unless given."""
    if max_expansions is None:
        max_expansions = MAX_EXPANSIONS
    vocab, B = model.vocab, model.block_size
    stoi, itos = vocab.stoi, vocab.itos
    model.eval()
    start_lp = prefix_log_prob(model, prefix)
    # heap entries: (-log_prob, name, finished)
    heap: list[tuple[float, str, bool]] = [(-start_lp, prefix, False)]
    found: list[tuple[str, float]] = []
    # The log-probs of the k best finished names known (in `found` or queued), as a min-heap:
    # a prefix less probable than the k-th of them can never be popped before k names are
    # found, so it is not queued at all. That saves work, never changes a result.
    best: list[float] = []
    expansions = 0

    def known(lp: float) -> None:
        if len(best) < k:
            heapq.heappush(best, lp)
        elif lp > best[0]:
            heapq.heapreplace(best, lp)

    while heap and len(found) < k:
        if heap[0][2]:
            neg_lp, name, _ = heapq.heappop(heap)
            found.append((name, -neg_lp))
            continue
        if expansions >= max_expansions:
            return SearchResult(found, exhausted=True, expansions=expansions)
        if passed(deadline):
            return SearchResult(found, exhausted=True, timed_out=True, expansions=expansions)
        # The `batch` most probable prefixes, even those behind a finished name: one forward
        # pass for all (few passes, each a few deadline looks and Python steps), and a prefix
        # expanded early only costs work. Whatever is less probable than the k best finished
        # names known can never be popped in time: dropped.
        floor = best[0] if len(best) == k else -float("inf")
        todo, held = [], []
        while heap and len(todo) < batch:
            entry = heapq.heappop(heap)
            if -entry[0] >= floor:
                (held if entry[2] else todo).append(entry)
        for entry in held:
            heapq.heappush(heap, entry)
        if not todo:
            continue
        expansions += len(todo)
        ctx = torch.tensor([([0] * B + [stoi[c] for c in name])[-B:] for _, name, _ in todo])
        logits, _ = model(ctx)
        # (L, V): each child's log-prob, the end token's in column 0
        children = torch.log_softmax(logits.double(), dim=1)
        children += torch.tensor([-neg_lp for neg_lp, _, _ in todo], dtype=torch.float64)[:, None]
        rows = children.tolist()
        for (_, name, _), row in zip(todo, rows, strict=True):
            end = row[0]
            if name and end > -float("inf"):
                heapq.heappush(heap, (-end, name, True))
                known(end)
        floor = best[0] if len(best) == k else -float("inf")
        grow = children[:, 1:] >= floor  # children that may still be popped in time
        grow &= children[:, 1:] > -torch.inf  # and are possible at all
        grow &= torch.tensor([len(name) < max_len for _, name, _ in todo])[:, None]
        for i, j in grow.nonzero().tolist():
            heapq.heappush(heap, (-rows[i][j + 1], todo[i][1] + itos[j + 1], False))
    return SearchResult(found, exhausted=len(found) < k, expansions=expansions)
