"""The pipeline: components (NER, then detectors) -> merge -> masking per policy level.

Built once per process from a config; `process(text)` is pure apart from the timing counters.
"""
from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources as importlib_resources

from deid import __version__
from deid.allow_list import NAME as ALLOW_LIST
from deid.allow_list import AllowList
from deid.config import PipelineConfig, load_config
from deid.detectors.base import Document
from deid.detectors.registry import COMPONENTS, Shared, build
from deid.masking import Masker, load_policies
from deid.merge import merge
from deid.resources import Resources, combine_digests, digest_bytes
from deid.spans import NoteContext, Span, split_spans
from deid.text import ReaderView

LEVELS = (1, 2, 3)
# Modules that decide nothing about what is found or how it is masked. Every other module of the package does
# (a new detector too, unlisted), so its source is part of pipeline_version: an upgrade that changes a rule
# re-processes the notes it may mask differently, whatever __version__ says.
_NOT_DECIDING = {"cli.py", "corpora.py", "evaluate.py", "exits.py", "io.py", "jobconfig.py", "nertrain.py", "query.py",
                 "review", "serving", "synth"}


@lru_cache(maxsize=1)
def source_digest() -> str:
    """A digest of the source of every deciding module, read from the installed package."""
    def walk(folder, prefix=""):
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name in _NOT_DECIDING or entry.name == "__pycache__":
                continue
            if entry.is_dir():
                yield from walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".py"):
                yield f"{prefix}{entry.name}", digest_bytes(entry.read_bytes())
    return combine_digests(dict(walk(importlib_resources.files("deid"))))


def source_part(version: str) -> str:
    """The source digest inside a pipeline_version ('' for a version written before it had one)."""
    tail = version.partition("+")[2]
    return tail.partition(".")[0] if "." in tail else ""


class NoteError(ValueError):
    """A note the pipeline refuses; the message never contains note text."""


class NoteTooLarge(NoteError):
    pass


class LlmUnavailable(NoteError):
    """The LLM stage failed on a note and llm.on_failure is quarantine."""


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


def time_budget_s(config: PipelineConfig) -> float:
    """Seconds one pipeline call may take (0: unbounded): limits.note_time_budget_s, plus, with the LLM stage on,
    the longest its own timeout and retries let a request take, so that the budget never cuts the LLM short."""
    budget = config.note_time_budget_s
    if budget and config.llm.enabled:
        budget += config.llm.client.timeout_s * (config.llm.client.retries + 1)
    return budget


# Between title and text when they are analysed together: a sentence boundary for every detector and chunker.
SEPARATOR = "\n"
FIELDS = ("title", "text")


def joined_note(title: str | None, text: str | None) -> str:
    """Title and text as the pipeline analyses them."""
    return f"{title or ''}{SEPARATOR}{text or ''}"


@dataclass(frozen=True)
class Note:
    """One NOTE row as the pipeline reads it: its title and text (either may be None), whose it is, and the row's
    own date columns (note_date, note_datetime), masked as the text's dates are."""
    text: str | None
    title: str | None = None
    context: NoteContext = NoteContext()
    dates: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NoteFailure:
    """Why a note has no output: where it failed, the error's class and a message free of note text."""
    stage: str          # validate | detect | llm
    error_class: str
    message: str
    error: BaseException | None = field(default=None, compare=False)   # to re-raise for a caller of one note


@dataclass(frozen=True)
class NoteResult:
    spans: dict           # field (title, text) -> its spans, offsets in that field
    masked: dict          # field -> level -> masked text (None where the field is None)
    masked_count: dict    # level -> spans masked in title and text
    llm_status: str = "off"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failure: NoteFailure | None = None
    masked_dates: dict = field(default_factory=dict)   # level -> date column -> its masked value
    llm_cache_hits: int = 0       # LLM requests answered from the answer cache
    llm_calls: int = 0            # LLM requests sent to the model


@dataclass(frozen=True)
class Analysis:
    spans: list[Span]
    llm_status: str = "off"       # off | ok | truncated | failed:<reason>
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_cache_hits: int = 0
    llm_calls: int = 0


@dataclass(frozen=True)
class Result:
    spans: list[Span]
    masked: dict          # level -> masked text
    masked_count: dict    # level -> number of spans masked
    llm_status: str = "off"
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Pipeline:
    def __init__(self, config: PipelineConfig | None = None, secret: bytes | None = None, llm_index=None,
                 resources: Resources | None = None):
        """llm_index: a prebuilt retrieval index (the Spark job broadcasts one); built here when None.
        resources: the dictionaries and lexicons every component reads; when None, the folder $DEID_RESOURCES
        names, else the package's, read here once (the CLI and the job hand theirs in)."""
        self.config = config or load_config()
        self.secret = secret
        self.policies = load_policies(self.config.policies_path, self.config.policy_preset)
        self.masker = Masker(self.policies, secret)
        self.resources = resources or Resources.from_environment()
        shared = Shared(self.resources)
        self.components = build(self.config.components, shared, self.config.settings)
        self.llm = None
        if self.config.llm.enabled:
            from deid.llm.retrieval import build_index
            from deid.llm.stage import LlmStage
            self.llm = LlmStage(self.config.llm, llm_index or build_index(resources=self.resources), self.resources,
                                dict(self.components).get("name"))
        self.allow_list = AllowList(self.resources.load(ALLOW_LIST))
        self.timings: dict[str, float] = defaultdict(float)
        versions = {name: getattr(c, "version", "") for name, c in self.components}
        versions["allow_list"] = self.allow_list.version
        versions.update(code=__version__, config=self.config.digest, policies=self.policies.digest,
                        gazetteer=shared.gazetteer.version, vocabulary=shared.vocabulary.version,
                        llm=self.llm.version if self.llm else "off")
        versions["source"] = source_digest()
        self.component_versions = versions
        self.version = f"{__version__}+{versions['source'][:8]}.{combine_digests(versions)}"

    def check(self, text) -> None:
        """Raise NoteError for input the pipeline refuses; the message never quotes the text."""
        if not isinstance(text, str):
            raise NoteError(f"note text must be a string, not {type(text).__name__}")
        if len(text) > self.config.max_chars:
            raise NoteTooLarge(f"note has {len(text)} characters; the limit is {self.config.max_chars}")

    def analyze(self, text: str) -> list[Span]:
        return self.analyze_many([text])[0]

    def analyze_many(self, texts: list[str]) -> list[list[Span]]:
        return [a.spans for a in self.analyze_batch(texts)]

    def detect(self, texts: list[str], contexts: list[NoteContext] | None = None
               ) -> tuple[list[ReaderView], list[Document], list[list[Span]]]:
        """The detectors alone: each note's reader view, its Document (with the NER tokens) and the spans found on
        the view, before the merge."""
        for text in texts:
            self.check(text)
        views = [ReaderView.of(t) for t in texts]
        dates = [c.note_date for c in contexts] if contexts else [None] * len(texts)
        docs = [Document(v.text, note_date=d) for v, d in zip(views, dates, strict=True)]
        found: list[list[Span]] = [[] for _ in docs]
        for name, component in self.components:
            t0 = time.perf_counter()
            if getattr(COMPONENTS[name], "provides", None):   # an annotation (NER tokens), not spans
                component.tag_documents(docs)
            else:
                for i, doc in enumerate(docs):
                    found[i].extend(s for s in component.detect(doc) if s.entity_type in self.policies.types)
            self.timings[name] += time.perf_counter() - t0
        return views, docs, found

    def llm_cache(self, known: dict[str, str] | None = None):
        """An answer cache for the LLM stage holding `known` (key -> kept answer), or None where answers cannot be
        kept: no LLM stage, or no secret to key them with."""
        if self.llm is None or not self.secret:
            return None
        from deid.llm.cache import AnswerCache
        return AnswerCache(self.secret, dict(known or {}))

    def llm_request_keys(self, notes: list[Note]) -> list[list[str]]:
        """Per note, the answer-cache keys of the LLM requests process_notes would send for it (none for a note
        the pipeline refuses), so that a caller can look their answers up first."""
        cache = self.llm_cache()
        keys: list[list[str]] = [[] for _ in notes]
        if cache is None:
            return keys
        idx = [i for i, note in enumerate(notes) if self._refusal(note) is None]   # a refused note asks nothing
        texts = [joined_note(notes[i].title, notes[i].text) for i in idx]
        views, docs, found = self.detect(texts, [notes[i].context for i in idx])
        for n, _, messages in self.llm.requests([v.text for v in views], found, docs):
            keys[idx[n]].append(cache.key(self.llm.decoding, messages))
        return keys

    def analyze_batch(self, texts: list[str], contexts: list[NoteContext] | None = None,
                      llm_cache=None) -> list[Analysis]:
        """Spans per note (and the LLM stage's status). The LLM stage, when on, sends what the detectors leave
        (llm.routing) of every note concurrently, but no request whose answer `llm_cache` (an AnswerCache) holds."""
        views, docs, found = self.detect(texts, contexts)
        outcomes = None
        if self.llm is not None:
            t0 = time.perf_counter()
            # The detectors' spans and the NER tokens tell the stage what is settled (llm.routing).
            outcomes = self.llm.run([v.text for v in views], [list(f) for f in found], docs, cache=llm_cache)
            for spans, outcome in zip(found, outcomes, strict=True):
                spans.extend(s for s in outcome.spans if s.entity_type in self.policies.types)
            self.timings["llm"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        merged = [_in_note(text, view, self.allow_list.apply(merge(spans, self.config.type_priority,
                                                                   self.config.tier_rule)))
                  for text, view, spans in zip(texts, views, found, strict=True)]
        self.timings["merge"] += time.perf_counter() - t0
        if outcomes is None:
            return [Analysis(spans) for spans in merged]
        return [Analysis(spans, o.status, o.prompt_tokens, o.completion_tokens, o.cache_hits, o.calls)
                for spans, o in zip(merged, outcomes, strict=True)]

    def mask(self, text: str, spans: list[Span], levels=LEVELS,
             context: NoteContext | None = None) -> tuple[dict, dict]:
        t0 = time.perf_counter()
        masked, counts = {}, {}
        for level in levels:
            res = self.masker.mask(text, spans, level, context)
            masked[level], counts[level] = res.text, res.masked_count
        self.timings["masking"] += time.perf_counter() - t0
        return masked, counts

    def process_notes(self, notes: list[Note], levels=LEVELS, budget_s: float = 0.0,
                      llm_cache=None) -> list[NoteResult]:
        """Every note's one path, the job's and the command line's: title and text joined as one string (one LLM
        request per chunk, not one more for the title), checked, analysed with the other notes (the NER model's
        batches are shared), split back into the title's spans and the text's, masked per field and level. A
        note that fails is isolated: the notes are retried one by one, so only the failing note comes back with
        a failure and no masked text. budget_s bounds one call (time_budget); a note that alone overruns it fails
        with NoteTimeout. llm_cache: an AnswerCache (Pipeline.llm_cache) the LLM stage reads and fills."""
        results: list[NoteResult | None] = [None] * len(notes)
        valid = []
        for i, note in enumerate(notes):
            refusal = self._refusal(note)
            if refusal is None:
                valid.append(i)
            else:
                results[i] = _failed(NoteFailure("validate", type(refusal).__name__, str(refusal), refusal))
        self._process_isolated(notes, valid, levels, budget_s, results, llm_cache)
        return results

    def _refusal(self, note: Note) -> NoteError | None:
        """Why process_notes refuses the note (a field that is not a string, a joined note over the size limit),
        None where it analyses it: the one test for process_notes and llm_request_keys."""
        try:
            for name in FIELDS:
                value = getattr(note, name)
                if value is not None and not isinstance(value, str):
                    raise NoteError(f"note {name} must be a string, not {type(value).__name__}")
            self.check(joined_note(note.title, note.text))
        except NoteError as exc:
            return exc
        return None

    def process_note(self, note: Note, levels=LEVELS) -> NoteResult:
        return self.process_notes([note], levels)[0]

    def _process_isolated(self, notes: list[Note], idx: list[int], levels, budget_s: float, results: list,
                          llm_cache=None) -> None:
        if not idx:
            return
        try:
            with time_budget(budget_s):
                analyses = self.analyze_batch([joined_note(notes[i].title, notes[i].text) for i in idx],
                                              [notes[i].context for i in idx], llm_cache)
                outputs = [self._mask_note(notes[i], a, levels) for i, a in zip(idx, analyses, strict=True)]
        except (Exception, NoteTimeout) as exc:  # noqa: BLE001 - any failure must fail the note, never pass it through
            if len(idx) > 1:
                for i in idx:
                    self._process_isolated(notes, [i], levels, budget_s, results, llm_cache)
                return
            if isinstance(exc, NoteTimeout):
                failure = NoteFailure("detect", "NoteTimeout",
                                      f"the note was still being analysed after its time budget of {budget_s:g} s", exc)
            else:
                failure = NoteFailure("detect", type(exc).__name__, "the detector pipeline raised an error", exc)
            results[idx[0]] = _failed(failure)
            return
        quarantine_on_llm_failure = self.config.llm.on_failure == "quarantine"
        for i, a, result in zip(idx, analyses, outputs, strict=True):
            if a.llm_status.startswith("failed") and quarantine_on_llm_failure:
                message = f"the LLM call failed ({a.llm_status.split(':', 1)[1]}); the note was not written"
                result = _failed(NoteFailure("llm", "LlmUnavailable", message, LlmUnavailable(message)),
                                 a.prompt_tokens)
            results[i] = result

    def _mask_note(self, note: Note, analysis: Analysis, levels) -> NoteResult:
        title_len = len(note.title or "")
        spans = dict(zip(FIELDS, split_spans(analysis.spans, title_len, title_len + len(SEPARATOR)), strict=True))
        masked, total = {}, dict.fromkeys(levels, 0)
        for name in FIELDS:
            value = getattr(note, name)
            texts, counts = self.mask(value or "", spans[name], levels, note.context)
            masked[name] = {k: None if value is None else texts[k] for k in levels}
            total = {k: total[k] + counts[k] for k in levels}
        dates = {k: {c: self.masker.mask_date_value(v, k, note.context) for c, v in note.dates.items()} for k in levels}
        return NoteResult(spans, masked, total, analysis.llm_status, analysis.prompt_tokens,
                          analysis.completion_tokens, masked_dates=dates, llm_cache_hits=analysis.llm_cache_hits,
                          llm_calls=analysis.llm_calls)

    def process(self, text: str, levels=LEVELS, *, person_id=None, note_id=None, note_date=None) -> Result:
        """One note's spans and its masked text per level, as the job finds and masks a note's text (a note
        without a title). person_id (else note_id) keys the date shift; a date without a year takes note_date's.
        A note the pipeline refuses or fails on raises its error."""
        return self.process_many([text], levels, [NoteContext(person_id, note_id, note_date)])[0]

    def process_many(self, texts: list[str], levels=LEVELS, contexts: list[NoteContext] | None = None) -> list[Result]:
        contexts = contexts or [NoteContext()] * len(texts)
        for text in texts:
            self.check(text)   # a text, not None: process_notes takes a NOTE row, whose text may be null
        results = self.process_notes([Note(t, None, c) for t, c in zip(texts, contexts, strict=True)], levels)
        failed = next((r.failure for r in results if r.failure), None)
        if failed:
            raise failed.error
        return [Result(r.spans["text"], r.masked["text"], r.masked_count, r.llm_status, r.prompt_tokens,
                       r.completion_tokens) for r in results]


def _failed(failure: NoteFailure, prompt_tokens: int = 0) -> NoteResult:
    return NoteResult({}, {}, {}, None, prompt_tokens, 0, failure)


def _in_note(note: str, view: ReaderView, spans: list[Span]) -> list[Span]:
    """Spans found on the reader's view, as spans of the note (covering what the view dropped inside them)."""
    if view.origin is None:
        return spans
    out = []
    for s in spans:
        start, end = view.span_in_note(s.start, s.end)
        out.append(s.with_(start=start, end=end, text=note[start:end]))
    return out
