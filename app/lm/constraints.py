"""What a name must be: a deterministic automaton over the model's letters, and length bounds.

Every constraint of a sampling request is one automaton underneath: the prefix is `p.*`, the
suffix `.*s`, `contains` is `.*c.*`, and `pattern` is the user's regular expression, which the
whole name must match. Each is compiled by interegular (a regex -> DFA compiler; the choice over
greenery is in docs/constraints.md: both install, both give a complete DFA, and interegular
compiled `.*a.{8}` in 0.09 s where greenery took 14 s) over the model's alphabet, so `.` means
"any letter of the model". The automata are then intersected here (a product over the reachable
pairs), and the length bounds are kept beside the automaton: the samplers count letters anyway.

Compiling a regular expression to a DFA can take exponential work: `.*a.{20}` has 2^21 states,
and nested repeats build large automata on the way to a small one (`(a{0,50}){0,50}` took 10 s,
`([a-z]{0,30}){0,30}` 33 s, before these bounds). So the work is bounded by counts, never by
time: at most MAX_PATTERN characters; every automaton interegular builds on the way (each with
its `crawl`, replaced here by the same walk with budgets) at most MAX_STATES states; and at most
MAX_WORK steps for the whole pattern, a step being a sub-state of the subset construction
followed or looked up (what the walk's time is made of). Past a bound: `TooLarge`, naming it.
Same pattern, same answer on every machine; the slowest refusal takes a fraction of a second
(bench/bench_patterns.py).
"""

from __future__ import annotations

import contextvars
import functools
from dataclasses import dataclass, field
from functools import cached_property

import interegular
import interegular.fsm as ifsm
import torch

from app.lm.vocab import MAX_NAME_LEN, Vocab

MAX_PATTERN = 100  # characters of a pattern
MAX_STATES = 1000  # states of an automaton: each one built while compiling, the intersection
MAX_WORK = 400_000  # steps of compiling one pattern (`.*a.{8}`, 513 states, takes 243,398)


class ConstraintError(ValueError):
    """A constraint that cannot be used: `field` names the parameter at fault."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(msg)
        self.field = field


class TooLarge(ConstraintError):
    """An automaton would have more than MAX_STATES states, or compiling the pattern would take
    more than MAX_WORK steps."""


# --- budgets for interegular's crawl -------------------------------------------------------------


@dataclass
class _Budget:
    """What a compilation may still spend (`compile_pattern` sets one per pattern)."""

    field: str
    work: int = MAX_WORK

    def spend(self, steps: int) -> None:
        self.work -= steps
        if self.work < 0:
            raise TooLarge(self.field, f"{self.field} is too large to compile: building its "
                                       f"automaton takes more than {MAX_WORK:,} steps (the "
                                       f"limit; nested repeats multiply)")


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "namelab_crawl_budget", default=None)
_original_crawl = ifsm.crawl


def _bounded_crawl(alphabet, initial, final, follow):
    """interegular.fsm.crawl (the walk every FSM operation builds its result with): the same
    walk, with a dict for its index, that stops with TooLarge once the automaton it builds
    passes MAX_STATES states or the compilation's budget of steps is spent (`_Budget`: each
    `follow` looks at every sub-state of the state it leaves, its result is hashed). Outside
    a compilation: the original."""
    budget = _budget.get()
    if budget is None:
        return _original_crawl(alphabet, initial, final, follow)
    states, index, finals, mapping = [initial], {_key(initial): 0}, set(), {}
    i = 0
    while i < len(states):
        state = states[i]
        if final(state):
            finals.add(i)
        mapping[i] = {}
        size = 1 + _size(state)
        for transition in alphabet.by_transition:
            budget.spend(size)
            try:
                nxt = follow(state, transition)
            except ifsm.OblivionError:
                continue
            budget.spend(_size(nxt))
            key = _key(nxt)
            j = index.get(key)
            if j is None:
                if len(states) >= MAX_STATES:
                    raise TooLarge(budget.field, f"{budget.field} is too large: an automaton "
                                                 f"built for it has more than {MAX_STATES} "
                                                 f"states (the limit)")
                j = index[key] = len(states)
                states.append(nxt)
            mapping[i][transition] = j
        i += 1
    return ifsm.FSM(alphabet=alphabet, states=range(len(states)), initial=0, finals=finals,
                    map=mapping, __no_validation__=True)


def _size(state) -> int:
    """How many sub-states a crawl state holds (a set or a dict of them; else one)."""
    return len(state) if isinstance(state, (set, frozenset, dict)) else 1


def _key(state):
    """A crawl state as a hashable key, equal iff the states are: interegular's states are sets
    or dicts of integers (the states of automata already built) or tuples of them."""
    if isinstance(state, dict):
        return frozenset(state.items())
    if isinstance(state, set):
        return frozenset(state)
    return state


ifsm.crawl = _bounded_crawl  # every FSM operation looks `crawl` up in its module at call time


# --- automata ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Automaton:
    """A DFA over a vocabulary's ids: delta (S, V) long, delta[s, j] the state after letter id j
    (column 0, the end token, unused), -1 for the dead state; accepting (S,) bool; start 0."""

    delta: torch.Tensor
    accepting: torch.Tensor

    @property
    def n_states(self) -> int:
        return len(self.accepting)

    def run(self, ids: list[int], state: int = 0) -> int:
        """The state after the letters `ids` (-1: dead)."""
        for j in ids:
            if state < 0:
                break
            state = int(self.delta[state, j])
        return state

    @staticmethod
    def everything(V: int) -> Automaton:
        delta = torch.zeros(1, V, dtype=torch.long)
        delta[:, 0] = -1
        return Automaton(delta, torch.ones(1, dtype=torch.bool))

    def intersect(self, other: Automaton) -> Automaton:
        """The product over the reachable pairs of states (at most MAX_STATES of them)."""
        V = self.delta.shape[1]
        a, b = self.delta.tolist(), other.delta.tolist()
        pairs, index, rows = [(0, 0)], {(0, 0): 0}, []
        i = 0
        while i < len(pairs):
            s, t = pairs[i]
            row = [-1] * V
            for j in range(1, V):
                nxt = (a[s][j], b[t][j])
                if nxt[0] < 0 or nxt[1] < 0:
                    continue
                k = index.get(nxt)
                if k is None:
                    if len(pairs) >= MAX_STATES:
                        raise TooLarge("pattern", f"the constraints together need more than "
                                                  f"{MAX_STATES} automaton states")
                    k = index[nxt] = len(pairs)
                    pairs.append(nxt)
                row[j] = k
            rows.append(row)
            i += 1
        accepting = torch.tensor([bool(self.accepting[s]) and bool(other.accepting[t])
                                  for s, t in pairs])
        return Automaton(torch.tensor(rows, dtype=torch.long), accepting)


def compile_pattern(pattern: str, vocab: Vocab, field: str = "pattern") -> Automaton:
    """A regular expression (Python syntax, as interegular reads it) that the whole name must
    match, as an Automaton over `vocab`'s letters. ConstraintError naming `field` for a pattern
    too long, unreadable, or using what a DFA cannot do (anchors, back-references...);
    TooLarge past MAX_STATES states or MAX_WORK steps. Compiled once per pattern, refusals
    included: a pattern too large spends the whole budget of work, once, not at every request
    (whatever its other fields)."""
    if len(pattern) > MAX_PATTERN:
        raise ConstraintError(field, f"{field} is {len(pattern)} characters long; at most "
                                     f"{MAX_PATTERN}")
    built = _compiled(pattern, vocab, field)
    if isinstance(built, tuple):
        kind, msg = built
        raise kind(field, msg)
    return built


@functools.lru_cache(maxsize=64)  # an automaton is at most MAX_STATES x 27 numbers
def _compiled(pattern: str, vocab: Vocab,
              field: str) -> Automaton | tuple[type[ConstraintError], str]:
    try:
        return _compile(pattern, vocab, field)
    except ConstraintError as e:  # kept as text: the exception holds the compiler's frames
        return type(e), str(e)


def _compile(pattern: str, vocab: Vocab, field: str) -> Automaton:
    letters = vocab.itos[1:]
    alphabet = ifsm.Alphabet.from_groups(*[{c} for c in letters])
    token = _budget.set(_Budget(field))
    try:
        fsm = interegular.parse_pattern(pattern).to_fsm(alphabet)
    except TooLarge:
        raise
    except interegular.Unsupported as e:
        raise ConstraintError(field, f"{field} {pattern!r} uses what names cannot need: {e} "
                                     f"(the whole name must match; no anchors, references or "
                                     f"lookarounds)") from None
    except Exception as e:  # InvalidSyntax (often without a message), a bad repeat, ...
        why = f": {e}" if str(e) else ""
        raise ConstraintError(field, f"{field} {pattern!r} is not a valid regular "
                                     f"expression{why}") from None
    finally:
        _budget.reset(token)
    order = sorted(fsm.states)
    number = {s: i for i, s in enumerate(order)}
    delta = torch.full((len(order), len(vocab)), -1, dtype=torch.long)
    for s in order:
        row = fsm.map.get(s, {})
        for j, c in enumerate(letters, start=1):
            nxt = row.get(fsm.alphabet[c])
            if nxt is not None:
                delta[number[s], j] = number[nxt]
    accepting = torch.tensor([s in fsm.finals for s in order], dtype=torch.bool)
    start = number[fsm.initial]
    if start != 0:  # the start state first
        perm = [start] + [i for i in range(len(order)) if i != start]
        inv = torch.empty(len(order), dtype=torch.long)
        inv[torch.tensor(perm)] = torch.arange(len(order))
        delta = torch.where(delta >= 0, inv[delta.clamp_min(0)], -1)[perm]
        accepting = accepting[perm]
    return Automaton(delta, accepting)


def literal(text: str) -> str:
    """`text` as a regular expression matching exactly it."""
    return "".join(c if c.isalnum() else "\\" + c for c in text)


def lowercase_pattern(pattern: str) -> str:
    """Names are lowercase: the pattern's letters lowercased, except a letter right after a
    backslash (`\\D`, `\\W` keep their meaning)."""
    out, escaped = [], False
    for c in pattern:
        out.append(c if escaped else c.lower())
        escaped = c == "\\" and not escaped
    return "".join(out)


# --- a request's constraint ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # compared by identity: app/domain/services.py caches them
class Constraint:
    """What a sampled name must be: starts with `prefix` (normalised, in the vocabulary), has
    min_len..max_len letters, and is accepted by `automaton` (the intersection of the prefix,
    suffix, contains and pattern automata). `fields` lists the constraints beyond the prefix
    and the length, for the answer's wording."""

    vocab: Vocab
    automaton: Automaton
    prefix: str = ""
    min_len: int = 1
    max_len: int = 32
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def beyond_prefix(self) -> bool:
        """Whether anything past the prefix and the length bounds is asked."""
        return bool(self.fields)

    def fits(self, name: str) -> bool:
        if not self.min_len <= len(name) <= self.max_len or not name.startswith(self.prefix):
            return False
        state = self.automaton.run(self.vocab.encode(name))
        return state >= 0 and bool(self.automaton.accepting[state])

    @cached_property
    def start_state(self) -> int:
        """The automaton's state after the prefix (-1: dead)."""
        return self.automaton.run(self.vocab.encode(self.prefix))

    @cached_property
    def open_after_prefix(self) -> bool:
        """Whether every continuation of the prefix is accepted (nothing beyond the prefix and the
        lengths is asked): every state the letters lead to from the start state accepts."""
        if self.start_state < 0:
            return False
        letters = self.automaton.delta[:, 1:].tolist()
        seen, todo = {self.start_state}, [self.start_state]
        while todo:
            s = todo.pop()
            if not self.automaton.accepting[s] or -1 in letters[s]:
                return False
            for nxt in set(letters[s]) - seen:
                seen.add(nxt)
                todo.append(nxt)
        return True

    @cached_property
    def to_accept(self) -> torch.Tensor:
        """(S,) long: the fewest letters that take each state to an accepting one (a large
        number where none can): a name still growing in state s with t letters can fit only
        if t + to_accept[s] <= max_len."""
        S = self.automaton.n_states
        far = MAX_NAME_LEN + 1
        dist = torch.where(self.automaton.accepting, 0, far)
        delta = self.automaton.delta[:, 1:]
        for _ in range(S):
            nxt = torch.where(delta >= 0, dist[delta.clamp_min(0)], far)  # (S, V-1)
            new = torch.minimum(dist, nxt.min(dim=1).values + 1).clamp_max(far)
            if torch.equal(new, dist):
                break
            dist = new
        return dist

    def possible(self) -> bool:
        """Whether some name of min_len..max_len letters fits."""
        s = self.start_state
        if s < 0:
            return False
        delta = self.automaton.delta[:, 1:]
        here = torch.zeros(self.automaton.n_states, dtype=torch.bool)
        here[s] = True
        for t in range(len(self.prefix), self.max_len + 1):
            if t >= self.min_len and bool((here & self.automaton.accepting).any()):
                return True
            nxt = delta[here].flatten()
            here = torch.zeros_like(here)
            here[nxt[nxt >= 0]] = True
            if not bool(here.any()):
                return False
        return False


def build(vocab: Vocab, prefix: str = "", suffix: str = "", contains: str = "",
          pattern: str = "", min_len: int = 1, max_len: int = 32) -> Constraint:
    """The Constraint of a request whose text fields are normalised and in the vocabulary
    (the pattern may hold any characters). ConstraintError naming the field at fault; one
    when no name of the model's alphabet and length bounds can fit."""
    if not 1 <= min_len <= max_len <= MAX_NAME_LEN:
        raise ConstraintError("min_len", f"min_len ({min_len}) must be between 1 and max_len "
                                         f"({max_len})")
    auto = Automaton.everything(len(vocab))
    fields: dict[str, str] = {}
    for name, text, regex in (("prefix", prefix, literal(prefix) + ".*"),
                              ("suffix", suffix, ".*" + literal(suffix)),
                              ("contains", contains, ".*" + literal(contains) + ".*"),
                              ("pattern", pattern, lowercase_pattern(pattern))):
        if not text:
            continue
        if name != "prefix":
            fields[name] = text
        auto = auto.intersect(compile_pattern(regex, vocab, name))
    c = Constraint(vocab, auto, prefix, min_len, max_len, fields)
    if not c.possible():
        asked = ", ".join(f"{k}={v!r}" for k, v in {"prefix": prefix, **fields}.items() if v)
        raise ConstraintError(
            "pattern" if pattern else next(iter(fields), "min_len"),
            f"no name of {min_len} to {max_len} letters made of {vocab.chars!r} fits "
            f"{asked or 'these length bounds'}")
    return c
