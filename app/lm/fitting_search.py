"""The k most probable names that fit a Constraint, exactly, by A* over (prefix, automaton state).

The priority of a prefix is its log-probability plus an upper bound on what its best fitting
completion adds (a heuristic h that never underestimates). A finished name popped from the top
is then more probable than every fitting name not yet found, so the names come out in order.
- For a kind whose next letter depends only on the previous one (the bigram kinds), h is exact:
  the max-product (Viterbi) form of the sampler's backward messages over (previous letter,
  automaton state, length). The search then walks straight down the best completions.
- For the others, h is 0 while the prefix can still fit (a live automaton state with enough
  letters left to reach an accepting one) and -inf once it cannot, so dead prefixes are never
  expanded; the bound on expansions makes a rare constraint `exhausted` rather than slow.
"""

from __future__ import annotations

import heapq

import torch

from app.lm.base import LanguageModel
from app.lm.constraints import Constraint
from app.lm.deadline import Deadline, passed
from app.lm.sampling import exact_kind
from app.lm.scoring import prefix_log_prob
from app.lm.search import MAX_EXPANSIONS, SearchResult

NEG = -float("inf")


def viterbi(logp: torch.Tensor, c: Constraint) -> dict[int, torch.Tensor]:
    """H[t] (V, S): for a prefix of t letters ending in letter c (0: none) in automaton state
    s, the largest log-probability that a fitting completion adds, end token included (-inf:
    none fits). `logp` (V, V): log P(next | previous letter)."""
    delta, accepting = c.automaton.delta, c.automaton.accepting
    S, V = delta.shape
    H: dict[int, torch.Tensor] = {}
    nxt = torch.full((V, S), NEG, dtype=torch.float64)
    for t in range(c.max_len, len(c.prefix) - 1, -1):
        m = torch.full((S, V), NEG, dtype=torch.float64)  # m[s, j]: what choosing j adds after
        if t >= max(c.min_len, 1):
            m[:, 0] = torch.where(accepting, 0.0, NEG)
        if t < c.max_len:
            cols = torch.arange(V).expand(S, V)[:, 1:]
            m[:, 1:] = torch.where(delta[:, 1:] >= 0, nxt[cols, delta[:, 1:].clamp_min(0)], NEG)
        H[t] = nxt = (logp[:, None, :] + m[None, :, :]).amax(dim=2)  # (V, S)
    return H


@torch.no_grad()
def most_probable_fitting(model: LanguageModel, k: int, c: Constraint,
                          max_expansions: int = MAX_EXPANSIONS, batch: int = 64,
                          deadline: Deadline | None = None) -> SearchResult:
    """The k most probable names that fit `c` (exactly), or the best found before
    `max_expansions` prefixes or the deadline (exhausted=True)."""
    vocab, B, V = model.vocab, model.block_size, len(model.vocab)
    stoi, itos = vocab.stoi, vocab.itos
    model.eval()
    delta, accepting, to_accept = c.automaton.delta, c.automaton.accepting, c.to_accept
    H = None
    if exact_kind(model):
        H = viterbi(torch.log_softmax(model(torch.arange(V)[:, None])[0].double(), dim=1), c)

    def bound(t: int, last: int, s: int) -> float:
        if s < 0 or t + int(to_accept[s]) > c.max_len:
            return NEG
        return 0.0 if H is None else float(H[t][last, s])

    start = c.start_state
    g0 = prefix_log_prob(model, c.prefix)
    last0 = stoi[c.prefix[-1]] if c.prefix else 0
    h0 = bound(len(c.prefix), last0, start)
    if h0 == NEG:
        return SearchResult([], exhausted=False)
    # entries: (-(g + h), name, finished, g, state)
    heap: list[tuple[float, str, bool, float, int]] = [(-(g0 + h0), c.prefix, False, g0, start)]
    found: list[tuple[str, float]] = []
    expansions = 0
    while heap and len(found) < k:
        while heap and heap[0][2] and len(found) < k:  # finished names on top: found, in order
            found.append((heap[0][1], heap[0][3]))
            heapq.heappop(heap)
        if len(found) == k or not heap:
            break
        if expansions >= max_expansions:
            return SearchResult(found, exhausted=True, expansions=expansions)
        if passed(deadline):  # a safety net: the answer then depends on the machine's load
            return SearchResult(found, exhausted=True, timed_out=True, expansions=expansions)
        # The best partial prefixes, up to `batch` (one forward pass), until a finished name.
        todo = [heapq.heappop(heap)]
        while len(todo) < batch and heap and not heap[0][2]:
            todo.append(heapq.heappop(heap))
        expansions += len(todo)
        pad = [0] * B
        rows = torch.log_softmax(model(torch.tensor(
            [(pad + [stoi[ch] for ch in entry[1]])[-B:] for entry in todo]))[0].double(),
            dim=1).tolist()
        for (_, name, _, g, s), row in zip(todo, rows, strict=True):
            t = len(name)
            if t >= max(c.min_len, 1) and bool(accepting[s]) and row[0] > NEG:
                heapq.heappush(heap, (-(g + row[0]), name, True, g + row[0], s))
            if t < c.max_len:
                for j in range(1, V):
                    s2 = int(delta[s, j])
                    h = bound(t + 1, j, s2)
                    if row[j] > NEG and h > NEG:
                        heapq.heappush(heap, (-(g + row[j] + h), name + itos[j], False,
                                              g + row[j], s2))
    return SearchResult(found, exhausted=len(found) < k, expansions=expansions)
