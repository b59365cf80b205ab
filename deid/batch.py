"""One Arrow batch of NOTE rows in, one Arrow batch of results out: what a Spark task runs per batch.

Pure Python and Arrow. A note that fails is isolated (its batch is retried note by note) and comes back
with status "quarantined", the stage, the error class and a message that never contains note text; it has
no masked text, so it can never be written unmasked.
"""
from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa

from deid.pipeline import LEVELS, NoteError, Pipeline

SPAN_STRUCT = pa.struct([
    ("field", pa.string()), ("span_start", pa.int32()), ("span_end", pa.int32()), ("entity_type", pa.string()),
    ("tier", pa.int8()), ("detector", pa.string()), ("score", pa.float32()), ("explanation", pa.string()),
    ("text_digest", pa.string()), ("span_text", pa.string()),
])
RESULT = pa.schema(
    [("note_id", pa.int64()), ("status", pa.string()), ("stage", pa.string()), ("error_class", pa.string()),
     ("message", pa.string())]
    + [(f"{f}_l{k}", pa.string()) for k in LEVELS for f in ("masked_title", "masked_text")]
    + [(f"masked_count_l{k}", pa.int32()) for k in LEVELS]
    + [("spans", pa.list_(SPAN_STRUCT)), ("llm_status", pa.string()), ("prompt_tokens", pa.int64()),
       ("completion_tokens", pa.int64())]
)


def text_digest(secret: bytes | None, text: str) -> str | None:
    if not secret:
        return None
    return hmac.new(secret, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]


def _read_strings(column: pa.Array) -> list:
    """Values as str, None, or an exception for a value that is not valid UTF-8 (found value by value only
    when the whole column does not decode)."""
    try:
        return column.to_pylist()
    except (UnicodeDecodeError, ValueError):
        pass
    out = []
    for i in range(len(column)):
        try:
            out.append(column[i].as_py())
        except (UnicodeDecodeError, ValueError) as exc:
            out.append(exc)
    return out


class BatchProcessor:
    def __init__(self, pipeline: Pipeline, secret: bytes | None = None, keep_span_text: bool = False):
        self.pipeline = pipeline
        self.secret = secret
        self.keep_span_text = keep_span_text

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        ids = batch.column("note_id").to_pylist()
        titles = _read_strings(batch.column("note_title"))
        texts = _read_strings(batch.column("note_text"))
        rows = [None] * len(ids)
        good = []
        for i, (title, text) in enumerate(zip(titles, texts)):
            bad = next((v for v in (title, text) if isinstance(v, Exception)), None)
            if bad is not None:
                rows[i] = self._failed(ids[i], "decode", "InvalidEncoding", "note text is not valid UTF-8")
                continue
            try:
                for value in (title, text):
                    if value is not None:
                        self.pipeline.check(value)
            except NoteError as exc:
                rows[i] = self._failed(ids[i], "validate", type(exc).__name__, str(exc))
                continue
            good.append(i)
        self._run(good, ids, titles, texts, rows)
        return pa.RecordBatch.from_pylist(rows, schema=RESULT)

    def _run(self, idx: list[int], ids, titles, texts, rows) -> None:
        """Process notes together; if that fails, one by one so only the failing note is quarantined."""
        if not idx:
            return
        try:
            bodies = self.pipeline.process_many([texts[i] or "" for i in idx])
            heads = self.pipeline.process_many([titles[i] or "" for i in idx])
        except Exception as exc:  # noqa: BLE001 - any failure must quarantine, never pass a note through
            if len(idx) == 1:
                i = idx[0]
                rows[i] = self._failed(ids[i], "detect", type(exc).__name__, "the detector pipeline raised an error")
                return
            for i in idx:
                self._run([i], ids, titles, texts, rows)
            return
        quarantine_on_llm_failure = self.pipeline.config.llm.on_failure == "quarantine"
        for i, body, head in zip(idx, bodies, heads):
            status = next((r.llm_status for r in (body, head) if r.llm_status.startswith("failed")), body.llm_status)
            if status.startswith("failed") and quarantine_on_llm_failure:
                rows[i] = self._failed(ids[i], "llm", "LlmUnavailable",
                                       f"the LLM call failed ({status.split(':', 1)[1]}); the note was not written")
                rows[i]["prompt_tokens"] = body.prompt_tokens + head.prompt_tokens
                continue
            rows[i] = self._ok(ids[i], titles[i], texts[i], head, body)
            rows[i].update(llm_status=status, prompt_tokens=body.prompt_tokens + head.prompt_tokens,
                           completion_tokens=body.completion_tokens + head.completion_tokens)

    def _ok(self, note_id, title, text, head, body) -> dict:
        row = {"note_id": note_id, "status": "ok", "stage": None, "error_class": None, "message": None}
        for k in LEVELS:
            row[f"masked_title_l{k}"] = None if title is None else head.masked[k]
            row[f"masked_text_l{k}"] = None if text is None else body.masked[k]
            row[f"masked_count_l{k}"] = head.masked_count[k] + body.masked_count[k]
        row["spans"] = [self._span(field, s) for field, res in (("note_title", head), ("note_text", body))
                        for s in res.spans]
        return row

    def _span(self, field: str, s) -> dict:
        return {"field": field, "span_start": s.start, "span_end": s.end, "entity_type": s.entity_type.value,
                "tier": s.tier, "detector": "+".join(sorted(s.sources)), "score": s.score,
                "explanation": s.explanation, "text_digest": text_digest(self.secret, s.text),
                "span_text": s.text if self.keep_span_text else None}

    @staticmethod
    def _failed(note_id, stage: str, error_class: str, message: str) -> dict:
        row = {"note_id": note_id, "status": "quarantined", "stage": stage, "error_class": error_class,
               "message": message, "spans": [], "llm_status": None, "prompt_tokens": 0, "completion_tokens": 0}
        for k in LEVELS:
            row.update({f"masked_title_l{k}": None, f"masked_text_l{k}": None, f"masked_count_l{k}": 0})
        return row
