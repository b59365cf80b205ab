"""One Arrow batch of NOTE rows in, one Arrow batch of results out: what a Spark task runs per batch.

Pure Python and Arrow. A note that fails is isolated (its batch is retried note by note) and comes back
with status "quarantined", the stage, the error class and a message that never contains note text; it has
no masked text, so it can never be written unmasked. So does a note still being analysed when its time budget
(limits.note_time_budget_s) runs out: a batch gets the budget of one note, and one that overruns it is retried
note by note, each with its own budget, so only a note that alone overruns is quarantined (NoteTimeout).
"""
from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa

from deid.pipeline import LEVELS, Note, NoteResult, Pipeline, time_budget_s
from deid.pipeline import joined_note as joined_note  # the job's affected-notes scan reads notes so too
from deid.spans import NoteContext

SPAN_STRUCT = pa.struct([
    ("field", pa.string()), ("span_start", pa.int32()), ("span_end", pa.int32()), ("entity_type", pa.string()),
    ("tier", pa.int8()), ("detector", pa.string()), ("score", pa.float32()), ("explanation", pa.string()),
    ("text_digest", pa.string()), ("span_text", pa.string()),
])
# An answer the LLM stage got for one request, to keep (deid.llm.cache): its key and the parsed answer, no text.
ANSWER_STRUCT = pa.struct([("key", pa.string()), ("answer", pa.string())])
# The input column of the answers the job looked up for a note's requests (the same struct).
CACHED_COLUMN = "llm_cached"
RESULT = pa.schema(
    [("note_id", pa.int64()), ("status", pa.string()), ("stage", pa.string()), ("error_class", pa.string()),
     ("message", pa.string())]
    + [(f"{f}_l{k}", pa.string()) for k in LEVELS for f in ("masked_title", "masked_text")]
    + [(f"masked_count_l{k}", pa.int32()) for k in LEVELS]
    + [("spans", pa.list_(SPAN_STRUCT)), ("llm_status", pa.string()), ("prompt_tokens", pa.int64()),
       ("completion_tokens", pa.int64()), ("llm_cache_hits", pa.int32()), ("llm_calls", pa.int32()),
       ("llm_answers", pa.list_(ANSWER_STRUCT))]
    # the NOTE row's own dates as each level's DATE operator writes dates (shifted, the year's 1 January, or none)
    + [(f"masked_{c}_l{k}", t) for k in LEVELS for c, t in (("note_date", pa.date32()),
                                                          ("note_datetime", pa.timestamp("us")))]
)


# Quarantined for a cause that may pass (the LLM was unavailable, a loaded worker overran the budget): the job
# tries these notes again on every run. Other quarantined notes stay so until the note or the pipeline changes.
TRANSIENT_ERRORS = frozenset({"LlmUnavailable", "NoteTimeout"})

# Analysed once before a processor's first budgeted batch: the pipeline builds some indexes on first use (the
# clinical vocabulary takes about 2 s), which is no note's time.
WARM_UP = ("患者张建国，男，52岁，手机13812345678，身份证号110101197003077513，于北京协和医院就诊，"
           "现住北京市东城区东单北大街1号。")


def _contexts(batch: pa.RecordBatch, ids: list) -> list[tuple[NoteContext, dict]]:
    """Per note: whose it is and when it was written (NoteContext), and the row's own date columns. A table
    without person_id shifts each note as its own person; without note_date, a date's year is its own."""
    def column(name):
        return batch.column(name).to_pylist() if name in batch.schema.names else [None] * len(ids)
    persons, days, times = column("person_id"), column("note_date"), column("note_datetime")
    return [(NoteContext(person, note_id, day or (time.date() if time else None)),
             {"note_date": day, "note_datetime": time})
            for note_id, person, day, time in zip(ids, persons, days, times, strict=True)]


def _notes(batch: pa.RecordBatch) -> tuple[list, list]:
    """(the note_ids, and per row its Note, or None where its title or text is not valid UTF-8)."""
    ids = batch.column("note_id").to_pylist()
    titles = _read_strings(batch.column("note_title"))
    texts = _read_strings(batch.column("note_text"))
    return ids, [None if any(isinstance(v, Exception) for v in (title, text)) else Note(text, title, *context)
                 for title, text, context in zip(titles, texts, _contexts(batch, ids), strict=True)]


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
        self.budget_s = time_budget_s(pipeline.config)
        self.warm = not self.budget_s

    def warm_up(self) -> None:
        """The pipeline's first-use work, done outside any budget (and without the LLM stage: no request)."""
        llm, self.pipeline.llm = self.pipeline.llm, None
        try:
            self.pipeline.analyze(WARM_UP)
        finally:
            self.pipeline.llm = llm
        self.warm = True

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Each row through Pipeline.process_notes, the one path of a note; a row whose title or text is not
        valid UTF-8 is quarantined before it. The answers in a `llm_cached` column are not asked again; the
        answers the batch had to ask for come back in its first row's `llm_answers`, to keep."""
        if not self.warm:
            self.warm_up()
        ids, notes = _notes(batch)
        rows = [None if isinstance(note, Note) else
                self._failed(ids[i], "decode", "InvalidEncoding", "note text is not valid UTF-8")
                for i, note in enumerate(notes)]
        readable = [i for i, note in enumerate(notes) if isinstance(note, Note)]
        known = {}
        if CACHED_COLUMN in batch.schema.names:
            for answers in batch.column(CACHED_COLUMN).to_pylist():
                known.update((a["key"], a["answer"]) for a in answers or ())
        cache = self.pipeline.llm_cache(known)
        results = self.pipeline.process_notes([notes[i] for i in readable], budget_s=self.budget_s, llm_cache=cache)
        for i, result in zip(readable, results, strict=True):
            rows[i] = self._row(ids[i], result)
        if cache and cache.learnt and rows:
            rows[0]["llm_answers"] = [{"key": k, "answer": v} for k, v in cache.learnt.items()]
        return pa.RecordBatch.from_pylist(rows, schema=RESULT)

    def request_keys(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """(note_id, key) of every LLM request process() would send for the batch's notes, for the lookup."""
        ids, notes = _notes(batch)     # with their dates: a note's date decides some spans, so what routing sends
        readable = [i for i, note in enumerate(notes) if isinstance(note, Note)]
        keys = self.pipeline.llm_request_keys([notes[i] for i in readable])
        pairs = [(ids[i], k) for i, ks in zip(readable, keys, strict=True) for k in ks]
        return pa.RecordBatch.from_pydict({"note_id": pa.array([p[0] for p in pairs], pa.int64()),
                                           "key": pa.array([p[1] for p in pairs], pa.string())})

    def _row(self, note_id, result: NoteResult) -> dict:
        if result.failure:
            f = result.failure
            row = self._failed(note_id, f.stage, f.error_class, f.message)
            row["prompt_tokens"] = result.prompt_tokens
            return row
        row = {"note_id": note_id, "status": "ok", "stage": None, "error_class": None, "message": None,
               "llm_status": result.llm_status, "prompt_tokens": result.prompt_tokens,
               "completion_tokens": result.completion_tokens, "llm_cache_hits": result.llm_cache_hits,
               "llm_calls": result.llm_calls}
        for k in LEVELS:
            for column, value in result.masked_dates[k].items():
                row[f"masked_{column}_l{k}"] = value
            for name in ("title", "text"):
                row[f"masked_{name}_l{k}"] = result.masked[name][k]
            row[f"masked_count_l{k}"] = result.masked_count[k]
        row["spans"] = [self._span(f"note_{name}", s) for name in ("title", "text") for s in result.spans[name]]
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
