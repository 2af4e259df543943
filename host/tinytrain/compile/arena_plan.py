"""Static memory plan: lifetimes from the final step order, one offset per buffer in one arena.

A buffer lives from the step that writes it to the last step that reads it
(the model input lives from before the first step). A step may overwrite an
input that dies at that step (`Step.inplace`); such buffers share one slot.
Slots are placed greedily at the lowest offset that does not overlap a slot
whose lifetime intersects; several greedy orders are tried and the tightest
kept. The input lives from before the first step, since
the sample is received (the board knows from the message type which
program's input slot to receive into).
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field

from tinytrain.ir.program import Buffer, Step

ALIGN = 8


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class Slot:
    buffers: list[str]
    size: int
    start: int
    end: int
    offset: int = -1

    def overlaps(self, other: "Slot") -> bool:
        return self.start <= other.end and other.start <= self.end


@dataclass
class ArenaPlan:
    offsets: dict[str, int]
    sizes: dict[str, int]
    lifetimes: dict[str, tuple[int, int]]
    arena_bytes: int
    peak_live_bytes: int
    live_bytes_per_step: list[int] = field(default_factory=list)

    def check(self) -> None:
        """Raises AssertionError if two buffers that are live at once overlap in memory (and are not in-place pairs)."""
        names = list(self.offsets)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if self.offsets[a] == self.offsets[b] and self.shared(a, b):
                    continue
                la, lb = self.lifetimes[a], self.lifetimes[b]
                if la[0] <= lb[1] and lb[0] <= la[1]:
                    oa, ob = self.offsets[a], self.offsets[b]
                    assert oa + self.sizes[a] <= ob or ob + self.sizes[b] <= oa, f"{a} and {b} overlap"

    _shared: set[frozenset[str]] = field(default_factory=set)

    def shared(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self._shared


# Greedy placement orders; the plan keeps whichever packs tightest.
_ORDERS = (
    lambda s: (-s.size, s.start),
    lambda s: (s.start, -s.size),
    lambda s: (-(s.end - s.start + 1) * s.size, s.start),
    lambda s: (-s.end + s.start, -s.size),
)


def _place(slots: list[Slot], key) -> list[Slot]:
    """Each slot, in `key` order, at the lowest offset clear of every placed slot whose lifetime
    intersects its own. The placed slots are kept sorted by (offset, end offset), so one pass over them
    visits the intersecting ones in the order a sort of just those would give."""
    placed: list[Slot] = []
    spans: list[tuple[int, int, int, int]] = []  # (offset, offset + size, start, end), sorted
    for slot in sorted(slots, key=key):
        size, start, end = slot.size, slot.start, slot.end
        offset = 0
        for lo, hi, s, e in spans:
            if s <= end and start <= e:
                if offset + size <= lo:
                    break
                if hi > offset:
                    offset = hi
        bisect.insort(spans, (offset, offset + size, start, end))
        placed.append(Slot(slot.buffers, size, start, end, offset))
    return placed


def lifetimes(steps: list[Step], buffers: dict[str, Buffer], input_name: str | None) -> dict[str, tuple[int, int]]:
    """Buffers of role `stream` (a sample received row by row inside a streaming stage) have none:
    they are not in the arena."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    if input_name is not None and buffers[input_name].role != "stream":
        first[input_name] = -1
        last[input_name] = -1
    for i, s in enumerate(steps):
        for b in s.writes:
            first.setdefault(b, i)
            last[b] = max(last.get(b, i), i)
        for b in s.reads:
            if buffers[b].role == "stream":
                continue
            if b not in first:
                raise ValueError(f"step {i} ({s.kind}) reads {b} before it is written")
            last[b] = i
    return {b: (first[b], last[b]) for b in first if b in buffers}


def plan(steps: list[Step], buffers: dict[str, Buffer], input_name: str | None = None) -> ArenaPlan:
    life = lifetimes(steps, buffers, input_name)
    # Union-find of in-place pairs whose input dies at the step that overwrites it.
    parent = {b: b for b in life}

    def root(b: str) -> str:
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        return b

    shared: set[frozenset[str]] = set()
    for i, s in enumerate(steps):
        for out, inp in s.inplace.items():
            if inp in life and out in life and life[inp][1] == i and root(inp) != root(out):
                parent[root(out)] = root(inp)
    groups: dict[str, list[str]] = {}
    for b in life:
        groups.setdefault(root(b), []).append(b)
    slots = []
    for members in groups.values():
        for a in members:
            for b in members:
                if a != b:
                    shared.add(frozenset((a, b)))
        slots.append(Slot(members, _align(max(buffers[b].nbytes for b in members)),
                          min(life[b][0] for b in members), max(life[b][1] for b in members)))
    placed = min((_place(slots, key) for key in _ORDERS), key=lambda ps: max(
        (p.offset + p.size for p in ps), default=0))
    offsets = {b: s.offset for s in placed for b in s.buffers}
    sizes = {b: buffers[b].nbytes for b in life}
    delta = [0] * (len(steps) + 2)  # live bytes per step (from step -1, the input's), by differences
    for s in placed:
        delta[s.start + 1] += s.size
        delta[s.end + 2] -= s.size
    per_step = list(itertools.accumulate(delta[:-1]))
    arena = max((s.offset + s.size for s in placed), default=0)
    p = ArenaPlan(offsets, sizes, life, arena, max(per_step, default=0), per_step)
    p._shared = shared
    return p
