"""Delta tables: the only module that knows the output schemas and how rows land in a table, and what the job's
input must hold (the NOTE columns, the formats it is read from).

Pure Python on Arrow (delta-rs through `deltalake`); no Spark import. The Spark adapter (udfs/delta.py)
uses these schemas and the same MERGE statement on either engine.

Every output write replaces *all* rows of the notes it carries in one commit: the source holds the new rows
plus one marker row per note (`_marker = true`), and the MERGE deletes target rows matched by a marker and
inserts the non-marker rows. Re-running it with the same source changes nothing, which is what makes a
retried or killed job safe.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

# The OMOP CDM v5.4 NOTE columns and their types, as the masked tables hold them. An input needs note_id and
# note_text; the others are carried through when it has them and are null when it does not.
NOTE_SCHEMA = {
    "note_id": pa.int64(), "person_id": pa.int64(), "note_date": pa.date32(), "note_datetime": pa.timestamp("us"),
    "note_type_concept_id": pa.int32(), "note_class_concept_id": pa.int32(), "note_title": pa.string(),
    "note_text": pa.string(), "encoding_concept_id": pa.int32(), "language_concept_id": pa.int32(),
    "provider_id": pa.int64(), "visit_occurrence_id": pa.int64(), "visit_detail_id": pa.int64(),
    "note_source_value": pa.string(),
}
NOTE_COLUMNS = list(NOTE_SCHEMA)
NOTE_REQUIRED = ("note_id", "note_text")
MARKER = "_marker"
LEVELS = (1, 2, 3)

SPANS = pa.schema([
    ("note_id", pa.int64()), ("person_id", pa.int64()), ("field", pa.string()),
    ("span_start", pa.int32()), ("span_end", pa.int32()), ("entity_type", pa.string()), ("tier", pa.int8()),
    ("detector", pa.string()), ("score", pa.float32()), ("explanation", pa.string()),
    ("text_digest", pa.string()), ("span_text", pa.string()), ("llm_status", pa.string()),
    ("note_digest", pa.string()), ("pipeline_version", pa.string()), ("run_id", pa.string()),
])
# A note whose LLM call failed and fell back to the detectors carries this suffix on its pipeline_version, so
# the next incremental run (which looks for the plain version) processes it again.
FALLBACK_SUFFIX = "+llm-fallback"
MASKED = pa.schema([pa.field(c, t) for c, t in NOTE_SCHEMA.items()] + [
    ("masked_count", pa.int32()), ("note_digest", pa.string()), ("pipeline_version", pa.string()),
    ("run_id", pa.string()),
])
QUARANTINE = pa.schema([
    ("note_id", pa.int64()), ("person_id", pa.int64()), ("note_digest", pa.string()), ("stage", pa.string()),
    ("error_class", pa.string()), ("message", pa.string()), ("pipeline_version", pa.string()), ("run_id", pa.string()),
    ("quarantined_at", pa.timestamp("us", tz="UTC")),
])
RUNS = pa.schema([
    ("run_id", pa.string()), ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")),
    ("status", pa.string()), ("engine", pa.string()), ("input_table", pa.string()), ("input_version", pa.int64()),
    ("notes_read", pa.int64()), ("notes_written", pa.int64()), ("notes_unchanged", pa.int64()),
    ("notes_quarantined", pa.int64()), ("notes_moved", pa.int64()), ("spans_written", pa.int64()),
    ("notes_llm_fallback", pa.int64()), ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()),
    ("pipeline_version", pa.string()), ("config_digest", pa.string()), ("dictionary_version", pa.string()),
    ("prompt_version", pa.string()), ("model", pa.string()), ("reprocess", pa.string()), ("message", pa.string()),
    ("policy_preset", pa.string()), ("llm_cache_hits", pa.int64()), ("llm_calls", pa.int64()),
])
# The LLM stage's answers kept across runs (deid.llm.cache): no note text, only keyed digests and offsets.
ANSWERS = pa.schema([
    ("key", pa.string()), ("answer", pa.string()), ("model", pa.string()), ("prompt_version", pa.string()),
    ("run_id", pa.string()), ("kept_at", pa.timestamp("us", tz="UTC")),
])

TABLE_SCHEMAS = {"note_phi_spans": SPANS, "note_deid_l1": MASKED, "note_deid_l2": MASKED, "note_deid_l3": MASKED,
                 "deid_quarantine": QUARANTINE, "deid_runs": RUNS}
# Written only by runs with the LLM stage on.
LLM_TABLE_SCHEMAS = {"deid_llm_answers": ANSWERS}

# -- what a data engineer sees in DESCRIBE DETAIL / DESCRIBE TABLE --------------------------------------------
KINDS = {"spans": SPANS, "masked": MASKED, "quarantine": QUARANTINE, "runs": RUNS, "answers": ANSWERS}
TABLE_COMMENTS = {
    "spans": "deid: one row per PHI span found in a note (offsets into the note, type, tier, detector); no raw "
             "span text unless keep_span_text",
    "masked": "deid: the notes masked at one policy level, one row per note_id, OMOP NOTE columns",
    "quarantine": "deid: notes not written, with the stage and error class (never note text)",
    "runs": "deid: one row per job run: counts that reconcile, versions, status",
    "answers": "deid: the LLM stage's parsed answers, kept so that a re-run asks the model only what changed; "
               "keyed by an HMAC of the request, offsets and types only, no text",
}
COLUMN_COMMENTS = {
    "note_id": "OMOP note_id of the input note", "person_id": "OMOP person_id (dates shift per person)",
    "note_date": "masked like the text's dates at this level", "note_datetime": "masked like note_date",
    "note_title": "the title, masked", "note_text": "the note text, masked at this table's policy level",
    "field": "note_title or note_text: which field the offsets are into",
    "span_start": "first character of the span (Python str index into the field)", "span_end": "one past the last",
    "entity_type": "NAME, ADDRESS, HOSPITAL, ID_NUMBER, CONTACT, STD, PREGNANCY, DATE, ...",
    "tier": "sensitivity tier 1 (highest) to 3", "detector": "the component that found it",
    "score": "the detector's confidence", "explanation": "which rule or model, in words",
    "text_digest": "HMAC-SHA256 of the span text keyed by $DEID_SECRET", "span_text": "raw span text (keep_span_text)",
    "llm_status": "the LLM stage's outcome for the note", "masked_count": "spans masked in this note",
    "note_digest": "HMAC-SHA256 of the input title and text keyed by $DEID_SECRET: detects changed notes",
    "pipeline_version": "deid version + code and resource digests that produced the row",
    "run_id": "deid_runs.run_id of the run that wrote the row", "stage": "where the note stopped",
    "error_class": "why (an error class, never note text)", "message": "our own message, never note text",
    "key": "HMAC-SHA256, keyed by $DEID_SECRET, of the LLM request (messages, model, decoding settings)",
    "answer": "the parsed answer as JSON: offsets into the request's text, types and tiers",
    "kept_at": "when the run kept the answer",
    "llm_cache_hits": "LLM requests answered from deid_llm_answers", "llm_calls": "LLM requests sent to the model",
}
# Tables whose old files hold superseded note content (a masked text a later dictionary edit re-masks) keep them
# only this long: VACUUM (the job's --vacuum) then deletes them and time travel to those versions fails.
CONTENT_KINDS = ("spans", "masked", "quarantine")
CDF_KINDS = ("spans", "masked")   # readers of the change feed take only the notes a run re-masked


@dataclass(frozen=True)
class Retention:
    deleted_files: str = "interval 1 days"   # delta.deletedFileRetentionDuration: what VACUUM keeps
    log: str = "interval 7 days"             # delta.logRetentionDuration: the history time travel can reach


def interval_seconds(value: str) -> float:
    """A Delta interval property ("interval 7 days", "interval 0 hours") in seconds."""
    m = re.fullmatch(r"\s*(?:interval\s+)?(\d+)\s*(second|minute|hour|day|week)s?\s*", value.lower())
    if not m:
        raise ValueError(f"not a Delta interval: {value!r} (e.g. 'interval 1 days')")
    return int(m.group(1)) * {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}[m.group(2)]


def table_kind(schema: pa.Schema) -> str:
    for kind, known in KINDS.items():
        if schema.remove_metadata().names == known.names:
            return kind
    raise ValueError(f"not a deid table schema: {schema.names}")


def table_properties(kind: str, retention: Retention) -> dict[str, str]:
    props = {}
    if kind in CDF_KINDS:
        props["delta.enableChangeDataFeed"] = "true"
    if kind in CONTENT_KINDS:
        props["delta.deletedFileRetentionDuration"] = retention.deleted_files
        props["delta.logRetentionDuration"] = retention.log
    return props


def commented(schema: pa.Schema) -> pa.Schema:
    """The schema with each column's comment as Delta field metadata."""
    return pa.schema([f.with_metadata({"comment": COLUMN_COMMENTS[f.name]}) if f.name in COLUMN_COMMENTS else f
                      for f in schema])


def with_marker(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field(MARKER, pa.bool_()))


def replace_predicate(bounds: tuple[int, int] | None = None, null_ids: bool = False) -> str:
    """The MERGE condition. `bounds`, the source's smallest and largest note_id, add a condition on the target
    alone, which lets the engine skip every file whose note_id range lies outside (the job writes files that
    hold narrow ranges): a MERGE of recent notes then reads the tail of the table, not all of it.
    `null_ids`: the source has a marker of note_id null, which replaces every row without a note_id (the
    quarantine's NullNoteId rows) like a note's."""
    match = "t.note_id = s.note_id"
    if null_ids:
        match = f"({match} OR (t.note_id IS NULL AND s.note_id IS NULL))"
    condition = f"{match} AND s.{MARKER}"
    if bounds is not None:
        in_range = f"t.note_id >= {int(bounds[0])} AND t.note_id <= {int(bounds[1])}"
        condition += f" AND ({in_range} OR t.note_id IS NULL)" if null_ids else f" AND {in_range}"
    return condition


class SchemaError(ValueError):
    pass


class InputError(ValueError):
    """The input cannot be read as given: a path that does not exist, a format that cannot be told or read."""


# -- the job's input: an OMOP NOTE table in one of these forms ---------------------------------------------
INPUT_FORMATS = ("delta", "table", "parquet", "csv", "jsonl")   # table: a catalog table name (spark.table)
_FILE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl",
                 ".ndjson": "jsonl"}
_COMPRESSED = (".gz", ".bz2", ".zst", ".snappy", ".lz4")
_ENCODING_CHECK_BYTES = 1 << 20   # of each CSV or JSON Lines file: enough to meet a wrong encoding at once


def encoding_name(name: str) -> str:
    import codecs
    try:
        return codecs.lookup(name).name
    except (LookupError, TypeError):
        raise InputError(f"unknown encoding {name!r}; give e.g. --encoding utf-8 or --encoding gb18030") from None


def _is_uri(location: str) -> bool:
    return bool(re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", location))


def _file_format(name: str) -> str | None:
    stem = name.lower()
    for suffix in _COMPRESSED:
        stem = stem.removesuffix(suffix)
    return next((fmt for suffix, fmt in _FILE_FORMATS.items() if stem.endswith(suffix)), None)


def _data_files(folder: str) -> list[str]:
    """The files Spark reads in a folder: not those whose name starts with _ or . (logs, checksums, markers)."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        found += [os.path.join(root, n) for n in sorted(names) if not n.startswith(("_", "."))]
    return found


def input_format(location: str, given: str = "auto", local_fs: bool = True) -> str:
    """The input's format: `given`, or told by the path: a folder with _delta_log is Delta, a file or a folder of
    files by their suffix, a name that is not a path a catalog table. A local path must exist. `local_fs`: paths
    without a scheme are on this machine (Spark in local mode), not on a cluster's default file system."""
    local = local_fs and not _is_uri(location)
    looks_like_path = "/" in location or location.startswith(".") or _file_format(location) is not None
    if local and (looks_like_path or os.path.exists(location)) and not os.path.exists(location):
        raise InputError(f"input {location} does not exist; check --input (or input.table in the config)")
    if given != "auto":
        return given
    if not local:
        return _file_format(location.rstrip("/")) or "delta"
    if not os.path.exists(location):
        return "table"
    if os.path.isdir(os.path.join(location, "_delta_log")):
        return "delta"
    if os.path.isfile(location):
        found = {_file_format(location)}
    else:
        found = {_file_format(f) for f in _data_files(location)}
    if len(found) == 1 and None not in found:
        return found.pop()
    kinds = ", ".join(sorted(str(k) for k in found if k)) or "no .parquet, .csv or .jsonl files"
    raise InputError(f"cannot tell the format of input {location} ({kinds}); give --input-format "
                     + "|".join(INPUT_FORMATS))


def check_text_encoding(location: str, fmt: str, encoding: str) -> None:
    """A local CSV or JSON Lines input that is not in `encoding` fails here, before Spark, which would read it
    with replacement characters and mask garbled text. The first MiB of each file is decoded strictly."""
    import codecs
    if fmt not in ("csv", "jsonl") or _is_uri(location) or not os.path.exists(location):
        return
    for path in [location] if os.path.isfile(location) else _data_files(location):
        if path.lower().endswith(_COMPRESSED):
            continue
        with open(path, "rb") as f:
            head = f.read(_ENCODING_CHECK_BYTES)
        try:
            codecs.getincrementaldecoder(encoding)().decode(head, final=len(head) < _ENCODING_CHECK_BYTES)
        except UnicodeDecodeError as exc:   # the position, never the bytes: they are note text
            raise InputError(f"{path} is not {encoding} text ({exc.reason} at byte {exc.start}); give its "
                             "encoding with --encoding (e.g. --encoding gb18030) or input.encoding") from None


def local_input_schema(location: str, fmt: str, encoding: str = "utf-8") -> pa.Schema | None:
    """The columns of a local input, read without Spark (a file footer, a header line, the Delta log), so that a
    wrong file or a missing column fails before Spark starts; None where only Spark can tell (a catalog table,
    an object store, JSON Lines, whose columns are those of every line)."""
    if fmt in ("table", "jsonl") or _is_uri(location) or not os.path.exists(location):
        return None
    if fmt == "delta":
        from deltalake import DeltaTable
        if not DeltaTable.is_deltatable(location):
            raise InputError(f"{location} is not a Delta table (no _delta_log); give --input-format parquet|csv|jsonl")
        return pa.schema(DeltaTable(location).schema())
    files = [location] if os.path.isfile(location) else _data_files(location)
    if not files:
        raise InputError(f"input folder {location} holds no data files; check --input")
    if fmt == "parquet":
        import pyarrow.parquet as pq
        try:
            return pq.read_schema(files[0])
        except (pa.ArrowException, OSError):
            raise InputError(f"{files[0]} is not a Parquet file; check it, or give its format with --input-format "
                             "csv|jsonl") from None
    import csv
    with open(files[0], encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="") as f:
        header = next(csv.reader(f), [])
    return pa.schema([(name, pa.string()) for name in header])


def note_columns(schema: pa.Schema, columns: dict[str, str] | None = None) -> dict[str, str | None]:
    """For each NOTE column, the input column that holds it: the one `columns` (input.columns) names, else the
    one of its own name (case aside, as Spark resolves names); None where the input has none. Raises SchemaError
    naming a required column missing or a mapped one absent, and a key column of the wrong kind."""
    columns = columns or {}
    by_lower: dict[str, list[str]] = {}
    for name in schema.names:
        by_lower.setdefault(name.lower(), []).append(name)

    def find(name: str) -> str | None:
        if name in schema.names:
            return name
        same = by_lower.get(name.lower(), [])
        return same[0] if len(same) == 1 else None

    has = ", ".join(schema.names[:30]) + (", ..." if len(schema.names) > 30 else "")
    found = {}
    for note_column in NOTE_COLUMNS:
        source = columns.get(note_column)
        found[note_column] = find(source or note_column)
        if source and found[note_column] is None:
            raise SchemaError(f"the input has no column {source} (input.columns.{note_column}); it has: {has}")
    missing = [c for c in NOTE_REQUIRED if found[c] is None]
    if missing:
        raise SchemaError(f"the input has no {' or '.join(missing)} column; name the input's column(s) in the job "
                          f"config, e.g. input: {{columns: {{{missing[0]}: YOUR_COLUMN}}}} (it has: {has})")
    for note_column in ("note_id", "note_title", "note_text"):
        if found[note_column] is None:
            continue
        got = schema.field(found[note_column]).type
        text = pa.types.is_string(got) or pa.types.is_large_string(got) or pa.types.is_string_view(got)
        if note_column == "note_id":
            fits, want = pa.types.is_integer(got) or text, "an integer (or text of one)"
        else:
            fits, want = text, "text"
        if not fits:
            raise SchemaError(f"input column {found[note_column]} ({note_column}) has type {got}; it must be {want}")
    return found


# -- delta-rs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeltaRs:
    """Delta tables through delta-rs: what runs where the Delta JVM jars cannot be had."""
    storage_options: dict | None = None
    retention: Retention = Retention()

    def _table(self, path: str):
        from deltalake import DeltaTable
        return DeltaTable(path, storage_options=self.storage_options)

    def exists(self, path: str) -> bool:
        from deltalake import DeltaTable
        return DeltaTable.is_deltatable(path, storage_options=self.storage_options)

    def ensure(self, path: str, schema: pa.Schema) -> None:
        """Create the table with its comments and properties, or bring an existing one's properties up to date
        (a table written by an earlier version, or before the retention settings changed)."""
        from deltalake import DeltaTable
        kind = table_kind(schema)
        props = table_properties(kind, self.retention)
        if not self.exists(path):
            if "://" not in path:
                os.makedirs(path, exist_ok=True)
            DeltaTable.create(path, schema=commented(schema), mode="ignore", description=TABLE_COMMENTS[kind],
                              configuration=props, storage_options=self.storage_options)
            return
        table = self._table(path)
        current = table.metadata().configuration
        if any(current.get(k) != v for k, v in props.items()):
            table.alter.set_table_properties(props, raise_if_not_exists=False)

    def vacuum(self, path: str) -> int:
        """Delete the files no version within the table's retention needs, then the expired log entries (after a
        checkpoint, which the log cleanup needs). Returns the number of files deleted."""
        if not self.exists(path):
            return 0
        table = self._table(path)
        deleted = len(table.vacuum(dry_run=False))   # retention: the table's delta.deletedFileRetentionDuration
        # delta-rs leaves the change feed's files alone; they hold the pre-images of replaced rows (the old masked
        # text), so those older than the retention go too, as Delta Lake's own VACUUM does.
        keep = interval_seconds(table.metadata().configuration.get("delta.deletedFileRetentionDuration",
                                                                   "interval 7 days"))
        changes = os.path.join(path, "_change_data")
        if "://" not in path and os.path.isdir(changes):
            cutoff = time.time() - keep
            for root, _, names in os.walk(changes):
                for name in names:
                    file = os.path.join(root, name)
                    if os.path.getmtime(file) <= cutoff:
                        os.remove(file)
                        deleted += 1
        table.create_checkpoint()
        table.cleanup_metadata()
        return deleted

    def version(self, path: str) -> int | None:
        return self._table(path).version() if self.exists(path) else None

    def files(self, path: str) -> list[str]:
        """The live data files of the current version, from the Delta log (never a directory listing, which
        would bring back files that MERGE and DELETE removed)."""
        table = self._table(path)
        features = set(table.protocol().reader_features or [])
        if "deletionVectors" in features and any(table.deletion_vectors().column("deletion_vector")):
            raise SchemaError(f"{path} has deletion vectors; read it with Spark's native Delta engine")
        return table.file_uris()

    def arrow_schema(self, path: str) -> pa.Schema:
        return pa.schema(self._table(path).schema())

    def replace_notes(self, path: str, schema: pa.Schema, source_files: list[str]) -> dict:
        """One MERGE commit: rows of every note in the source are replaced by the source's rows."""
        self.ensure(path, schema)
        staged = ds.dataset(source_files, format="parquet", schema=with_marker(schema))
        ids = staged.to_table(columns=["note_id"]).column("note_id")
        bounds = tuple(v.as_py() for v in pc.min_max(ids).values()) if len(ids) > ids.null_count else None
        return (self._table(path).merge(staged.scanner().to_reader(),
                                        predicate=replace_predicate(bounds, null_ids=ids.null_count > 0),
                                        source_alias="s", target_alias="t")
                .when_matched_delete()
                .when_not_matched_insert(updates={c: f"s.{c}" for c in schema.names}, predicate=f"NOT s.{MARKER}")
                .execute())

    def commit_files(self, path: str, schema: pa.Schema, files: list[str]) -> int:
        """Append Parquet files that executors wrote: move them into the table folder and commit them as add
        actions in one transaction, without rewriting a byte. A crash before the commit leaves only files the
        log does not name, which no reader sees. Local file systems only."""
        import json
        import shutil
        import uuid

        import pyarrow.parquet as pq
        from deltalake.transaction import AddAction
        self.ensure(path, schema)
        actions = []
        for src in files:
            metadata = pq.read_metadata(src)   # one footer read: the columns to check and the statistics
            got = metadata.schema.to_arrow_schema()
            if got.names != schema.names:
                raise SchemaError(f"staged file columns {got.names} do not match the table's {schema.names}")
            name = f"part-{uuid.uuid4().hex}.parquet"
            dest = os.path.join(path, name)
            shutil.move(src, dest)
            actions.append(AddAction(name, os.path.getsize(dest), {}, int(os.path.getmtime(dest) * 1000), True,
                                     json.dumps(file_stats(metadata, schema))))
        if actions:
            self._table(path).create_write_transaction(actions, mode="append", schema=commented(schema))
        return len(actions)

    def compact(self, path: str, target_bytes: int) -> dict:
        """Rewrite the table's files smaller than `target_bytes` into files of about that size (one commit; the
        rows and the table's version history do not change, readers see the same data)."""
        metrics = self._table(path).optimize.compact(target_size=target_bytes)
        return {"removed": metrics.get("numFilesRemoved", 0), "added": metrics.get("numFilesAdded", 0)}

    def upsert(self, path: str, rows: pa.Table, key: str) -> dict:
        """Insert rows, or update the ones whose `key` is already there (one commit)."""
        self.ensure(path, rows.schema)
        return (self._table(path)   # merge_schema: a table written before a column was added gains it
                .merge(rows, predicate=f"t.{key} = s.{key}", source_alias="s", target_alias="t", merge_schema=True)
                .when_matched_update_all().when_not_matched_insert_all().execute())

    def move_version(self, path: str, old: str, new: str) -> dict:
        """Rows still at `old` belong to notes that were not re-run: move them to `new` (one commit).
        Re-run notes already carry `new`, so the predicate leaves them alone."""
        if not self.exists(path):
            return {}
        return self._table(path).update(
            predicate=f"pipeline_version = '{_sql_str(old)}'", updates={"pipeline_version": f"'{_sql_str(new)}'"})


def file_stats(metadata, schema: pa.Schema) -> dict:
    """Delta file statistics (row count; min, max and null count of the integer columns) from a Parquet footer.
    Without min/max of note_id a MERGE cannot skip the file, so every MERGE would read the whole table."""
    stats = {"numRecords": metadata.num_rows, "minValues": {}, "maxValues": {}, "nullCount": {}}
    names = [metadata.schema.column(j).name for j in range(metadata.num_columns)]
    for field in schema:
        if not pa.types.is_integer(field.type) or field.name not in names:
            continue
        j = names.index(field.name)
        columns = [metadata.row_group(i).column(j).statistics for i in range(metadata.num_row_groups)]
        if not columns or any(c is None or not c.has_min_max or not c.has_null_count for c in columns):
            continue
        stats["minValues"][field.name] = min(c.min for c in columns)
        stats["maxValues"][field.name] = max(c.max for c in columns)
        stats["nullCount"][field.name] = sum(c.null_count for c in columns)
    return stats


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


# How to make the key, in the error a run without one stops with.
SECRET_HOWTO = "export {env}=$(python -c 'import secrets; print(secrets.token_hex(32))')"
HMAC_BLOCK = 64   # SHA-256's block size in bytes


class MissingSecret(RuntimeError):
    pass


def secret_key(env: str = "DEID_SECRET") -> bytes:
    """The HMAC key from the environment variable `env`."""
    value = os.environ.get(env, "")
    if not value:
        raise MissingSecret(f"${env} is not set; the job keys note_digest and text_digest with it. Make one and keep "
                            f"it (another key re-processes every note): {SECRET_HOWTO.format(env=env)}")
    return value.encode("utf-8")


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer pads (RFC 2104): the key, hashed when longer than a block, zero-padded to a
    block and xored with 0x36 and 0x5c. From these two the Spark job computes the same HMAC in SQL."""
    if len(key) > HMAC_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(HMAC_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def note_digest(title: str | None, text: str | None, key: bytes | None = None) -> str:
    """The job's note_digest in Python: HMAC-SHA256 of the tagged title and text (null and empty differ), keyed
    by `key` ($DEID_SECRET when None). Keyed because it is published beside the masked text: an unkeyed hash
    would let anyone test guesses of the masked words against it."""
    def tagged(value):
        return "N" if value is None else "V" + value
    message = f"{tagged(title)}\x1f{tagged(text)}".encode()
    return hmac.new(key or secret_key(), message, hashlib.sha256).hexdigest()
