"""mapInArrow partition function: Arrow batches of NOTE rows -> Arrow batches of deid results.

The driver broadcasts one bundle (resource files, pipeline config, policies). Each Python worker
materializes it and builds the pipeline once, cached by the bundle's digest; Spark reuses Python workers
across tasks, so a worker pays the model and dictionary load once, not per task, batch or row.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

_WORKER_CACHE: dict[str, object] = {}


def make_bundle(pipeline_config_raw: dict, policies_bytes: bytes, files: dict[str, bytes],
                index_bytes: bytes | None = None) -> dict:
    """files: the resource files the driver read (deid.resources.bundle), so workers get the same bytes the
    run's dictionary version was computed from."""
    from deid.resources import combine_digests, digest_bytes
    digest = combine_digests({**{k: digest_bytes(v) for k, v in files.items()},
                              "__config__": digest_bytes(repr(sorted(pipeline_config_raw.items())).encode()),
                              "__policies__": digest_bytes(policies_bytes)})
    return {"digest": digest, "files": files, "config": pipeline_config_raw, "policies": policies_bytes,
            "index": index_bytes}


def worker_processor(bundle: dict, secret: bytes | None, keep_span_text: bool):
    """The BatchProcessor of this worker process, built on first use."""
    key = bundle["digest"]
    if key not in _WORKER_CACHE:
        from deid.batch import BatchProcessor
        from deid.config import parse_config
        from deid.pipeline import Pipeline
        from deid.resources import Resources, materialize
        root = Path(tempfile.gettempdir()) / f"deid-bundle-{key}"
        if not (root / ".complete").exists():
            materialize(bundle["files"], root / "resources")
            (root / "policies.yaml").write_bytes(bundle["policies"])
            (root / ".complete").touch()
        config = parse_config({**bundle["config"], "policies": str(root / "policies.yaml")}, root)
        index = None
        if bundle.get("index"):
            from deid.llm.retrieval import EntryIndex
            index = EntryIndex.from_bytes(bundle["index"])   # once per worker, not per task
        pipeline = Pipeline(config, secret, index, Resources(root / "resources"))   # the driver's files
        _WORKER_CACHE[key] = BatchProcessor(pipeline, secret, keep_span_text)
    return _WORKER_CACHE[key]


def partition_function(bundle_broadcast, secret_env: str, keep_span_text: bool, carry: tuple[str, ...] = ()):
    """The function given to DataFrame.mapInArrow; the secret is read from the executor's environment.
    `carry` names input columns passed through beside each note's result (one result row per input row, in
    order), so the writes need no join back to the notes and keep the partitions' note_id ranges."""
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        secret = os.environ.get(secret_env, "").encode() or None
        processor = worker_processor(bundle_broadcast.value, secret, keep_span_text)
        for batch in batches:
            result = processor.process(batch)
            for name in carry:
                result = result.append_column(batch.schema.field(name), batch.column(name))
            yield result
    return run


def request_keys_function(bundle_broadcast, secret_env: str, keep_span_text: bool):
    """mapInArrow function: NOTE rows -> (note_id, key) of the LLM requests the detect function would send (the
    same worker processor: keep_span_text as the detect function's)."""
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        secret = os.environ.get(secret_env, "").encode() or None
        processor = worker_processor(bundle_broadcast.value, secret, keep_span_text)
        for batch in batches:
            yield processor.request_keys(batch)
    return run


def affected_function(terms_broadcast):
    """mapInArrow function: (note_id, note_title, note_text) -> (note_id) of notes holding a changed term."""
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import ahocorasick

        from deid.batch import joined_note
        auto = ahocorasick.Automaton()
        for term in terms_broadcast.value:
            auto.add_word(term.lower(), term)
        auto.make_automaton()
        for batch in batches:
            hits = []
            columns = (batch.column(c).to_pylist() for c in ("note_id", "note_title", "note_text"))
            for note_id, title, text in zip(*columns, strict=True):
                body = joined_note(title, text).lower()
                if any(True for _ in auto.iter(body)):
                    hits.append(note_id)
            yield pa.RecordBatch.from_pydict({"note_id": pa.array(hits, pa.int64())})
    return run
