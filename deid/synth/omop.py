"""Write synthetic notes as JSONL (with gold spans) and as an OMOP CDM v5.4 NOTE table in Parquet."""
from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# OMOP concept ids: EHR note type, UTF-8 encoding, Chinese language.
NOTE_TYPE_EHR = 32831
ENCODING_UTF8 = 32678
LANGUAGE_CHINESE = 4182948

NOTE_SCHEMA = pa.schema([
    ("note_id", pa.int64()), ("person_id", pa.int64()), ("note_date", pa.date32()),
    ("note_datetime", pa.timestamp("us")), ("note_type_concept_id", pa.int32()),
    ("note_class_concept_id", pa.int32()), ("note_title", pa.string()), ("note_text", pa.string()),
    ("encoding_concept_id", pa.int32()), ("language_concept_id", pa.int32()), ("provider_id", pa.int64()),
    ("visit_occurrence_id", pa.int64()), ("visit_detail_id", pa.int64()), ("note_source_value", pa.string()),
    ("note_event_id", pa.int64()), ("note_event_field_concept_id", pa.int32()),
])


def note_table(notes: list[dict]) -> pa.Table:
    rows = {
        "note_id": [n["id"] for n in notes],
        "person_id": [n["person_id"] for n in notes],
        "note_date": [date.fromisoformat(n["note_date"]) for n in notes],
        "note_datetime": [datetime.fromisoformat(n["note_datetime"]) for n in notes],
        "note_type_concept_id": [NOTE_TYPE_EHR] * len(notes),
        "note_class_concept_id": [0] * len(notes),
        "note_title": [n["note_title"] for n in notes],
        "note_text": [n["text"] for n in notes],
        "encoding_concept_id": [ENCODING_UTF8] * len(notes),
        "language_concept_id": [LANGUAGE_CHINESE] * len(notes),
        "provider_id": [None] * len(notes),
        "visit_occurrence_id": [n["person_id"] * 10 + 1 for n in notes],
        "visit_detail_id": [None] * len(notes),
        "note_source_value": [n["note_type"] for n in notes],
        "note_event_id": [None] * len(notes),
        "note_event_field_concept_id": [None] * len(notes),
    }
    return pa.Table.from_pydict(rows, schema=NOTE_SCHEMA)


def write_outputs(notes: list[dict], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "notes.jsonl"
    with open(jsonl, "w", encoding="utf-8") as f:
        for n in notes:
            f.write(json.dumps(n, ensure_ascii=False, sort_keys=True) + "\n")
    parquet = out / "notes.parquet"
    pq.write_table(note_table(notes), parquet, compression="zstd")
    return [jsonl, parquet]


def write_note_delta(notes: list[dict], path: Path) -> Path:
    """The NOTE rows as a Delta table (delta-rs), replacing any table already there."""
    from deltalake import write_deltalake
    write_deltalake(str(path), note_table(notes), mode="overwrite", schema_mode="overwrite")
    return path
