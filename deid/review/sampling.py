"""Which note a reviewer sees next.

Strategies (each an ordering of the processed notes, fixed by the seed):
- random: every processed note, spans or not, in a seeded random order: the only sample that gives unbiased
  precision and recall;
- low_score: notes by their least confident span;
- llm_only: notes holding a span only the LLM found;
- disagreement: notes holding a span found by one kind of detector where its type is usually found by several;
- quota: round robin over (type, tier) cells, up to `quota` notes per cell, so rare cells are seen too.

A reviewer never gets a note they finished for its current pipeline version. A note goes to one reviewer, except
the seeded share `double_share` of notes that go to two on purpose (inter-reviewer agreement). Notes opened but
not finished are held for their reviewer for `claim_minutes`.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections import defaultdict

import numpy as np
import pyarrow as pa

from deid.review.store import effective

STRATEGIES = ("random", "low_score", "llm_only", "disagreement", "quota")


def orders(notes: pa.Table, spans: pa.Table, seed: int, quota: int) -> dict[str, list[int]]:
    """note_id orderings per strategy from the processed notes and their spans' metadata."""
    rng = np.random.default_rng(seed)
    ids = sorted(notes.column("note_id").to_pylist())
    out = {"random": [ids[i] for i in rng.permutation(len(ids))]}
    rows = spans.select(["note_id", "entity_type", "tier", "detector", "score"]).to_pylist()
    lowest: dict[int, float] = {}
    for r in rows:
        lowest[r["note_id"]] = min(lowest.get(r["note_id"], 1.0), r["score"] if r["score"] is not None else 0.0)
    out["low_score"] = sorted(lowest, key=lambda n: (lowest[n], n))
    llm = {r["note_id"] for r in rows if r["detector"] == "llm"}
    out["llm_only"] = [n for n in out["low_score"] if n in llm]
    kinds: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        kinds[r["entity_type"]].update(r["detector"].split("+"))
    lone = defaultdict(int)
    for r in rows:
        if len(kinds[r["entity_type"]]) > 1 and "+" not in r["detector"]:
            lone[r["note_id"]] += 1
    out["disagreement"] = sorted(lone, key=lambda n: (-lone[n], n))
    cells: dict[tuple, set[int]] = defaultdict(set)
    for r in rows:
        cells[(r["entity_type"], r["tier"])].add(r["note_id"])
    shuffled = {}
    for key in sorted(cells):
        members = sorted(cells[key])
        shuffled[key] = [members[i] for i in rng.permutation(len(members))][:quota]
    seen, round_robin = set(), []
    for rank in range(quota):
        for key in sorted(shuffled):
            if rank < len(shuffled[key]) and shuffled[key][rank] not in seen:
                seen.add(shuffled[key][rank])
                round_robin.append(shuffled[key][rank])
    out["quota"] = round_robin
    return out


def doubled(note_id: int, seed: int, share: float) -> bool:
    """Whether a note is one of the seeded share reviewed by two reviewers."""
    h = hashlib.sha256(f"{seed}:{note_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2 ** 64 < share


class Queue:
    def __init__(self, source, store, seed: int = 0, double_share: float = 0.1, quota: int = 20,
                 claim_minutes: float = 30):
        self.source, self.store = source, store
        self.seed, self.double_share, self.quota = seed, double_share, quota
        self.claim_seconds = claim_minutes * 60
        self._claims: dict[int, dict[str, float]] = defaultdict(dict)   # note -> reviewer -> time claimed
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> None:
        """Re-read the job's tables (after a new run)."""
        notes = self.source.processed_notes()
        self.versions = dict(zip(notes.column("note_id").to_pylist(), notes.column("pipeline_version").to_pylist(),
                                 strict=True))
        self.orders = orders(notes, self.source.span_index(), self.seed, self.quota)

    def finished(self, rows: list[dict] | None = None) -> dict[int, set[str]]:
        """note -> reviewers who finished it at its current pipeline version (from `rows` or the store)."""
        out = defaultdict(set)
        for r in effective(self.store.decisions() if rows is None else rows):
            if r["action"] == "done" and self.versions.get(r["note_id"]) == r["pipeline_version"]:
                out[r["note_id"]].add(r["reviewer"])
        return out

    def next(self, reviewer: str, strategy: str) -> int | None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
        finished = self.finished()
        now = time.time()
        with self._lock:
            claims = {n: {r: t for r, t in c.items() if now - t < self.claim_seconds} for n, c in self._claims.items()}
            for note, by in claims.items():       # an unfinished note of this reviewer's comes back first
                if reviewer in by and reviewer not in finished.get(note, ()):
                    return note
            for note in self.orders[strategy]:
                done = finished.get(note, set())
                if reviewer in done:
                    continue
                others = (done | set(claims.get(note, {}))) - {reviewer}
                capacity = 2 if doubled(note, self.seed, self.double_share) else 1
                if len(others) < capacity:
                    self._claims[note][reviewer] = now
                    return note
        return None

    def release(self, reviewer: str, note_id: int) -> None:
        with self._lock:
            self._claims.get(note_id, {}).pop(reviewer, None)

    def progress(self) -> dict:
        """Notes finished per strategy (by the strategy recorded with the decision) and what is left."""
        rows = effective(self.store.decisions())
        finished = self.finished(rows)
        by_strategy = defaultdict(set)
        for r in rows:
            if r["action"] == "done" and r["note_id"] in finished:
                by_strategy[r["strategy"]].add(r["note_id"])
        return {s: {"finished": len(by_strategy.get(s, ())), "available": len(self.orders[s])} for s in STRATEGIES}
