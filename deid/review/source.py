"""What the review reads: the input NOTE table (the original text) and the job's span and masked tables."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from deid.io import LEVELS, note_digest

FIELDS = ("note_title", "note_text")
SPAN_COLUMNS = ["note_id", "field", "span_start", "span_end", "entity_type", "tier", "detector", "score",
                "explanation", "llm_status", "note_digest", "pipeline_version"]


@dataclass
class NoteView:
    note_id: int
    person_id: int | None
    note_date: object
    original: dict[str, str]                 # field -> original text ("" when null)
    digest: str                              # of the note as it is now in the NOTE table
    processed_digest: str | None             # of the note the job processed (None: not processed)
    pipeline_version: str | None
    spans: list[dict] = field(default_factory=list)          # the job's spans, sorted by field and offset
    masked: dict[int, dict[str, str]] = field(default_factory=dict)   # level -> field -> masked text

    @property
    def changed(self) -> bool:
        """The note in the NOTE table is not the one the job processed: its spans no longer apply."""
        return self.processed_digest is not None and self.processed_digest != self.digest


class ReviewSource:
    def __init__(self, root: str | Path, notes_table: str | Path, spans_table: str = "note_phi_spans",
                 masked_tables: dict[int, str] | None = None, quarantine_table: str = "deid_quarantine"):
        self.root = Path(root)
        self.notes_table = str(notes_table)
        self.spans_table = str(self.root / spans_table)
        self.quarantine_table = str(self.root / quarantine_table)
        masked_tables = masked_tables or {k: f"note_deid_l{k}" for k in LEVELS}
        self.masked_tables = {k: str(self.root / v) for k, v in masked_tables.items()}

    def span_index(self) -> pa.Table:
        """Every span's metadata (no text): what the sampling strategies choose from."""
        from deid.query import table
        return table(self.spans_table, columns=SPAN_COLUMNS)

    def processed_notes(self) -> pa.Table:
        """(note_id, note_digest, pipeline_version) of every note in the level-3 (or highest) masked table:
        the population a random sample is drawn from, notes without spans included."""
        from deid.query import table
        level = max(self.masked_tables)
        return table(self.masked_tables[level], columns=["note_id", "note_digest", "pipeline_version"])

    def note(self, note_id: int) -> NoteView | None:
        from deid.query import table
        where = pc.field("note_id") == note_id
        rows = table(self.notes_table, filter=where).to_pylist()
        if not rows:
            return None
        row = rows[-1]
        original = {f: row.get(f) or "" for f in FIELDS}
        spans = table(self.spans_table, columns=SPAN_COLUMNS, filter=where).to_pylist()
        spans.sort(key=lambda s: (FIELDS.index(s["field"]), s["span_start"], s["span_end"]))
        masked, processed, version = {}, None, None
        for level, path in sorted(self.masked_tables.items()):
            got = table(path, columns=["note_title", "note_text", "note_digest", "pipeline_version"],
                        filter=where).to_pylist()
            if got:
                masked[level] = {f: got[0][f] or "" for f in FIELDS}
                processed, version = got[0]["note_digest"], got[0]["pipeline_version"]
        return NoteView(note_id, row.get("person_id"), row.get("note_date"), original,
                        note_digest(row.get("note_title"), row.get("note_text")), processed, version, spans, masked)

    def quarantined_digests(self, note_id: int) -> set[str]:
        """The digests of this note's quarantined versions (it failed processing, or lost to another row with its
        note_id)."""
        from deltalake import DeltaTable

        from deid.query import table
        if not DeltaTable.is_deltatable(self.quarantine_table):
            return set()
        rows = table(self.quarantine_table, columns=["note_digest"], filter=pc.field("note_id") == note_id)
        return set(rows.column("note_digest").to_pylist())

    def texts(self, note_ids: list[int]) -> dict[int, dict]:
        """note_id -> {note_title, note_text, digest} for many notes at once (the exports)."""
        from deid.query import table
        if not note_ids:
            return {}
        rows = table(self.notes_table, columns=["note_id", "note_title", "note_text"],
                     filter=pc.field("note_id").isin(sorted(set(note_ids)))).to_pylist()
        return {r["note_id"]: {**r, "digest": note_digest(r["note_title"], r["note_text"])} for r in rows}
