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
import signal
import threading
from contextlib import contextmanager

import pyarrow as pa

from deid.pipeline import LEVELS, NoteError, Pipeline
from deid.spans import NoteContext, split_spans

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
    # the NOTE row's own dates as each level's DATE operator writes dates (shifted, the year's 1 January, or none)
    + [(f"masked_{c}_l{k}", t) for k in LEVELS for c, t in (("note_date", pa.date32()),
                                                          ("note_datetime", pa.timestamp("us")))]
)


# Quarantined for a cause that may pass (the LLM was unavailable, a loaded worker overran the budget): the job
# tries these notes again on every run. Other quarantined notes stay so until the note or the pipeline changes.
TRANSIENT_ERRORS = frozenset({"LlmUnavailable", "NoteTimeout"})

# Analysed once before a processor's first budgeted batch: the pipeline builds some indexes on first use (the
# clinical vocabulary takes about 2 s), which is no note's time.
WARM_UP = "患者张建国，男，52岁，手机13812345678，身份证号110101197003077513，于北京协和医院就诊，现住北京市东城区东单北大街1号。"


def _contexts(batch: pa.RecordBatch, ids: list) -> list[tuple[NoteContext, dict]]:
    """Per note: whose it is and when it was written (NoteContext), and the row's own date columns. A table
    without person_id shifts each note as its own person; without note_date, a date's year is its own."""
    def column(name):
        return batch.column(name).to_pylist() if name in batch.schema.names else [None] * len(ids)
    persons, days, times = column("person_id"), column("note_date"), column("note_datetime")
    return [(NoteContext(person, note_id, day or (time.date() if time else None)),
             {"note_date": day, "note_datetime": time})
            for note_id, person, day, time in zip(ids, persons, days, times)]


class NoteTimeout(BaseException):
    """A time budget ran out. Not an Exception, so that no `except Exception` inside a detector swallows it."""


@contextmanager
def time_budget(seconds: float):
    """Raise NoteTimeout in the block after `seconds` (0: never). The SIGALRM handler runs between two bytecodes
    of the main thread, so it stops a pure-Python loop; one long call into C finishes first. Spark's Python
    worker calls the mapInArrow function in its main thread."""
    if not seconds:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("limits.note_time_budget_s uses SIGALRM, which only the main thread receives; "
                           "set it to 0 to run without a budget")

    def expire(signum, frame):
        raise NoteTimeout
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:   # restored even when the alarm goes off on the line above
            signal.signal(signal.SIGALRM, previous)


def time_budget_s(config) -> float:
    """Seconds one pipeline call may take (0: unbounded): limits.note_time_budget_s, plus, with the LLM stage on,
    the longest its own timeout and retries let a request take, so that the budget never cuts the LLM short."""
    budget = config.note_time_budget_s
    if budget and config.llm.enabled:
        budget += config.llm.client.timeout_s * (config.llm.client.retries + 1)
    return budget


def text_digest(secret: bytes | None, text: str) -> str | None:
    if not secret:
        return None
    return hmac.new(secret, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]


# Between title and text when they are analysed together: a sentence boundary for every detector and chunker.
SEPARATOR = "\n"


def joined_note(title: str | None, text: str | None) -> str:
    """Title and text as the pipeline analyses them."""
    return f"{title or ''}{SEPARATOR}{text or ''}"


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
        if not self.warm:
            self.warm_up()
        ids = batch.column("note_id").to_pylist()
        titles = _read_strings(batch.column("note_title"))
        texts = _read_strings(batch.column("note_text"))
        contexts = _contexts(batch, ids)
        rows = [None] * len(ids)
        good = []
        for i, (title, text) in enumerate(zip(titles, texts)):
            bad = next((v for v in (title, text) if isinstance(v, Exception)), None)
            if bad is not None:
                rows[i] = self._failed(ids[i], "decode", "InvalidEncoding", "note text is not valid UTF-8")
                continue
            try:
                self.pipeline.check(joined_note(title, text))
            except NoteError as exc:
                rows[i] = self._failed(ids[i], "validate", type(exc).__name__, str(exc))
                continue
            good.append(i)
        self._run(good, ids, titles, texts, contexts, rows)
        return pa.RecordBatch.from_pylist(rows, schema=RESULT)

    def _run(self, idx: list[int], ids, titles, texts, contexts, rows) -> None:
        """Process notes together; if that fails, one by one so only the failing note is quarantined.
        Title and text are analysed as one string (one LLM request per chunk, not one more for the title)
        and masked separately."""
        if not idx:
            return
        try:
            with time_budget(self.budget_s):
                analyses = self.pipeline.analyze_batch([joined_note(titles[i], texts[i]) for i in idx],
                                                       [contexts[i][0] for i in idx])
                outputs = [self._mask(titles[i], texts[i], a, *contexts[i]) for i, a in zip(idx, analyses)]
        except (Exception, NoteTimeout) as exc:  # noqa: BLE001 - any failure must quarantine, never pass a note through
            if len(idx) == 1:
                i = idx[0]
                rows[i] = self._failed(ids[i], "detect", *self._failure(exc))
                return
            for i in idx:
                self._run([i], ids, titles, texts, contexts, rows)
            return
        quarantine_on_llm_failure = self.pipeline.config.llm.on_failure == "quarantine"
        for i, a, row in zip(idx, analyses, outputs):
            if a.llm_status.startswith("failed") and quarantine_on_llm_failure:
                rows[i] = self._failed(ids[i], "llm", "LlmUnavailable",
                                       f"the LLM call failed ({a.llm_status.split(':', 1)[1]}); the note was not written")
                rows[i]["prompt_tokens"] = a.prompt_tokens
                continue
            rows[i] = {"note_id": ids[i], "status": "ok", "stage": None, "error_class": None, "message": None,
                       **row, "llm_status": a.llm_status, "prompt_tokens": a.prompt_tokens,
                       "completion_tokens": a.completion_tokens}

    def _failure(self, exc: BaseException) -> tuple[str, str]:
        """The error class and message of a note that failed in detection."""
        if isinstance(exc, NoteTimeout):
            return "NoteTimeout", f"the note was still being analysed after its time budget of {self.budget_s:g} s"
        return type(exc).__name__, "the detector pipeline raised an error"

    def _mask(self, title: str | None, text: str | None, analysis, context: NoteContext, dates: dict) -> dict:
        title_spans, text_spans = split_spans(analysis.spans, len(title or ""), len(title or "") + len(SEPARATOR))
        row, spans = {}, []
        masker = self.pipeline.masker
        for k in LEVELS:
            for column, value in dates.items():
                row[f"masked_{column}_l{k}"] = masker.mask_date_value(value, k, context)
        for field, value, found in (("title", title, title_spans), ("text", text, text_spans)):
            masked, counts = self.pipeline.mask(value or "", found, context=context)
            for k in LEVELS:
                row[f"masked_{field}_l{k}"] = None if value is None else masked[k]
                row[f"masked_count_l{k}"] = row.get(f"masked_count_l{k}", 0) + counts[k]
            spans += [self._span(f"note_{field}", s) for s in found]
        row["spans"] = spans
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
