"""Reviewer decisions and the audit trail: two append-only Delta tables beside the job's outputs.

A decision is never updated in place: an undo is a row of its own that names the decision it takes back, so the
table is the full history and two reviewers saving at once only ever append (Delta's blind appends do not
conflict; a commit that loses the race for a log version is retried).
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict, dataclass
from dataclasses import field as default
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

REVIEW_TABLE = "deid_review"
AUDIT_TABLE = "deid_review_audit"

# confirm / retype / retier / reject act on a span the pipeline found; add records a span it missed; comment is
# per note; done closes the note for this reviewer; undo takes back the decision named in `undoes`.
SPAN_ACTIONS = ("confirm", "retype", "retier", "reject", "add")
ACTIONS = (*SPAN_ACTIONS, "comment", "done", "undo")

REVIEW = pa.schema([
    ("decision_id", pa.string()), ("reviewer", pa.string()), ("decided_at", pa.timestamp("us", tz="UTC")),
    ("note_id", pa.int64()), ("note_digest", pa.string()), ("pipeline_version", pa.string()),
    ("strategy", pa.string()), ("action", pa.string()), ("field", pa.string()),
    ("span_start", pa.int32()), ("span_end", pa.int32()),
    ("old_type", pa.string()), ("old_tier", pa.int8()), ("new_type", pa.string()), ("new_tier", pa.int8()),
    ("comment", pa.string()), ("undoes", pa.string()),
])
AUDIT = pa.schema([
    ("at", pa.timestamp("us", tz="UTC")), ("user", pa.string()), ("event", pa.string()),
    ("note_id", pa.int64()), ("detail", pa.string()),
])


@dataclass
class Decision:
    reviewer: str
    note_id: int
    note_digest: str
    pipeline_version: str
    action: str
    strategy: str = ""
    field: str | None = None
    span_start: int | None = None
    span_end: int | None = None
    old_type: str | None = None
    old_tier: int | None = None
    new_type: str | None = None
    new_tier: int | None = None
    comment: str | None = None
    undoes: str | None = None
    decision_id: str = default(default_factory=lambda: uuid.uuid4().hex)
    decided_at: datetime = default(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"unknown review action {self.action!r}")
        if self.action in SPAN_ACTIONS and (self.field is None or self.span_start is None or self.span_end is None):
            raise ValueError(f"a {self.action} decision needs a field and span offsets")
        if self.action == "undo" and not self.undoes:
            raise ValueError("an undo names the decision it takes back")


class ReviewStore:
    """deid_review and deid_review_audit under the output root."""

    def __init__(self, root: str | Path, retries: int = 20):
        self.root = Path(root)
        self.review_path = str(self.root / REVIEW_TABLE)
        self.audit_path = str(self.root / AUDIT_TABLE)
        self.retries = retries
        self._lock = threading.Lock()   # one commit at a time from this process; other processes retry

    def append(self, decisions: list[Decision]) -> None:
        """All of `decisions` in one commit (atomic: a reader sees all or none)."""
        if decisions:
            rows = [asdict(d) for d in decisions]
            self._append(self.review_path, pa.Table.from_pylist(rows, schema=REVIEW))

    def audit(self, user: str, event: str, note_id: int | None = None, detail: str = "") -> None:
        self.audit_many([audit_row(user, event, note_id, detail)])

    def audit_many(self, rows: list[dict]) -> None:
        """Audit rows (from audit_row) in one commit."""
        if rows:
            self._append(self.audit_path, pa.Table.from_pylist(rows, schema=AUDIT))

    def _append(self, path: str, rows: pa.Table) -> None:
        from deltalake import write_deltalake
        from deltalake.exceptions import CommitFailedError
        with self._lock:
            for attempt in range(self.retries):
                try:
                    write_deltalake(path, rows, mode="append")
                    break
                except CommitFailedError:     # another process took the log version: an append can simply retry
                    time.sleep(0.05 * (attempt + 1))
            else:
                raise RuntimeError(f"could not append to {Path(path).name} after {self.retries} attempts")

    def compact(self) -> None:
        """Rewrite each table's small files (one per decision) into few. Not done while writing: a compaction
        racing another process's appends duplicated rows in testing, so the server runs it once at start-up,
        before it takes any write."""
        from deltalake import DeltaTable
        for path in (self.review_path, self.audit_path):
            if DeltaTable.is_deltatable(path):
                DeltaTable(path).optimize.compact()

    def decisions(self, note_id: int | None = None) -> list[dict]:
        """Every decision row (of one note), oldest first."""
        return self._rows(self.review_path, REVIEW, note_id, "decided_at")

    def audit_rows(self) -> list[dict]:
        return self._rows(self.audit_path, AUDIT, None, "at")

    @staticmethod
    def _rows(path: str, schema: pa.Schema, note_id: int | None, order: str) -> list[dict]:
        from deltalake import DeltaTable

        from deid.query import table
        if not DeltaTable.is_deltatable(path):
            return []
        filter = [("note_id", "=", note_id)] if note_id is not None else None
        return table(path, filter=filter).select(schema.names).sort_by(order).to_pylist()


def audit_row(user: str, event: str, note_id: int | None = None, detail: str = "") -> dict:
    return {"at": datetime.now(UTC), "user": user, "event": event, "note_id": note_id, "detail": detail}


class AuditBatch:
    """Audit rows of a frequent event (failed sign-ins) held in memory and written in one commit: when `max_rows`
    wait, `max_wait_s` after the first of them, or when flushed (the server does at shutdown). One commit each let
    a burst of guesses add a file and a log version to the table per guess."""

    def __init__(self, store: ReviewStore, max_rows: int = 100, max_wait_s: float = 10.0):
        self.store, self.max_rows, self.max_wait_s = store, max_rows, max_wait_s
        self._rows: list[dict] = []
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def add(self, user: str, event: str, note_id: int | None = None, detail: str = "") -> None:
        with self._lock:
            self._rows.append(audit_row(user, event, note_id, detail))
            full = len(self._rows) >= self.max_rows
            if not full and self._timer is None:
                self._timer = threading.Timer(self.max_wait_s, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self.store.audit_many(rows)


def effective(rows: list[dict]) -> list[dict]:
    """The decisions that stand: undo rows and the decisions they took back removed."""
    undone = {r["undoes"] for r in rows if r["action"] == "undo"}
    return [r for r in rows if r["action"] != "undo" and r["decision_id"] not in undone]


def span_key(row: dict) -> tuple:
    return row["field"], row["span_start"], row["span_end"]


def outcomes(rows: list[dict], reviewer: str) -> dict:
    """One reviewer's standing decision per span (the latest wins), added spans included: key -> row."""
    out = {}
    for r in effective(rows):
        if r["reviewer"] == reviewer and r["action"] in SPAN_ACTIONS:
            out[span_key(r)] = r
    return out


def reviewers_done(rows: list[dict]) -> set[str]:
    return {r["reviewer"] for r in effective(rows) if r["action"] == "done"}
