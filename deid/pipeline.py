"""The pipeline: components (NER, then detectors) -> merge -> masking per policy level.

Built once per process from a config; `process(text)` is pure apart from the timing counters.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources as importlib_resources

from deid import __version__
from deid.allow_list import AllowList
from deid.config import PipelineConfig, load_config
from deid.detectors.address import AddressDetector
from deid.detectors.base import Document
from deid.detectors.contact import ContactDetector
from deid.detectors.date import AgeDetector, DateDetector
from deid.detectors.hospital import HospitalDetector
from deid.detectors.id_number import IdNumberDetector
from deid.detectors.identifiers import IdentifierDetector
from deid.detectors.medical import PregnancyDetector, StdDetector
from deid.detectors.name import NameDetector
from deid.detectors.ner import LacNer
from deid.detectors.workplace import WorkplaceDetector
from deid.gazetteer import Gazetteer
from deid.masking import Masker, load_policies
from deid.merge import merge
from deid.resources import combine_digests, digest_bytes
from deid.spans import NoteContext, Span
from deid.text import ReaderView
from deid.vocabulary import ClinicalVocabulary

LEVELS = (1, 2, 3)
# Modules that decide nothing about what is found or how it is masked. Every other module of the package does
# (a new detector too, unlisted), so its source is part of pipeline_version: an upgrade that changes a rule
# re-processes the notes it may mask differently, whatever __version__ says.
_NOT_DECIDING = {"cli.py", "corpora.py", "evaluate.py", "io.py", "nertrain.py", "query.py", "review", "serving", "synth"}


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


@dataclass(frozen=True)
class Analysis:
    spans: list[Span]
    llm_status: str = "off"       # off | ok | truncated | failed:<reason>
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Result:
    spans: list[Span]
    masked: dict          # level -> masked text
    masked_count: dict    # level -> number of spans masked
    llm_status: str = "off"
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Pipeline:
    def __init__(self, config: PipelineConfig | None = None, secret: bytes | None = None, llm_index=None):
        """llm_index: a prebuilt retrieval index (the Spark job broadcasts one); built here when None."""
        self.config = config or load_config()
        self.policies = load_policies(self.config.policies_path, self.config.policy_preset)
        self.masker = Masker(self.policies, secret)
        gazetteer = Gazetteer()
        vocabulary = ClinicalVocabulary()
        names = NameDetector(vocabulary)
        gate = names.may_contain_name if self.config.ner_gate else None
        factories = {
            "ner": lambda: LacNer(self.config.ner_threads, self.config.ner_batch_size, gate, self.config.ner_model),
            "id_number": IdNumberDetector,
            "contact": ContactDetector,
            "hospital": lambda: HospitalDetector(gazetteer, vocabulary),
            "address": lambda: AddressDetector(gazetteer, vocabulary),
            "name": lambda: names,
            "std": StdDetector,
            "pregnancy": PregnancyDetector,
            "date": DateDetector,
            "age": AgeDetector,
            "identifiers": IdentifierDetector,
            "workplace": WorkplaceDetector,
        }
        self.components = [(name, factories[name]()) for name in self.config.components]
        self.llm = None
        if self.config.llm.enabled:
            from deid.llm.retrieval import build_index
            from deid.llm.stage import LlmStage
            self.llm = LlmStage(self.config.llm, llm_index or build_index())
        self.allow_list = AllowList()
        self.timings: dict[str, float] = defaultdict(float)
        versions = {name: getattr(c, "version", "") for name, c in self.components}
        versions["allow_list"] = self.allow_list.version
        versions.update(code=__version__, config=self.config.digest, policies=self.policies.digest,
                        gazetteer=gazetteer.version, vocabulary=vocabulary.version, llm=self.llm.version if self.llm else "off")
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

    def analyze_batch(self, texts: list[str], contexts: list[NoteContext] | None = None) -> list[Analysis]:
        """Spans per note (and the LLM stage's status). NER runs once over all notes (shared batches); detectors
        run per note; the LLM stage, when on, sends every chunk of every note concurrently."""
        for text in texts:
            self.check(text)
        views = [ReaderView.of(t) for t in texts]
        dates = [c.note_date for c in contexts] if contexts else [None] * len(texts)
        docs = [Document(v.text, note_date=d) for v, d in zip(views, dates)]
        found: list[list[Span]] = [[] for _ in docs]
        for name, component in self.components:
            t0 = time.perf_counter()
            if name == "ner":
                component.tag_documents(docs)
            else:
                for i, doc in enumerate(docs):
                    found[i].extend(s for s in component.detect(doc) if s.entity_type in self.policies.types)
            self.timings[name] += time.perf_counter() - t0
        outcomes = None
        if self.llm is not None:
            t0 = time.perf_counter()
            outcomes = self.llm.run([v.text for v in views])
            for spans, outcome in zip(found, outcomes):
                spans.extend(s for s in outcome.spans if s.entity_type in self.policies.types)
            self.timings["llm"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        merged = [_in_note(text, view, self.allow_list.apply(merge(spans, self.config.type_priority,
                                                                   self.config.tier_rule)))
                  for text, view, spans in zip(texts, views, found)]
        self.timings["merge"] += time.perf_counter() - t0
        if outcomes is None:
            return [Analysis(spans) for spans in merged]
        return [Analysis(spans, o.status, o.prompt_tokens, o.completion_tokens) for spans, o in zip(merged, outcomes)]

    def mask(self, text: str, spans: list[Span], levels=LEVELS, context: NoteContext | None = None) -> tuple[dict, dict]:
        t0 = time.perf_counter()
        masked, counts = {}, {}
        for level in levels:
            res = self.masker.mask(text, spans, level, context)
            masked[level], counts[level] = res.text, res.masked_count
        self.timings["masking"] += time.perf_counter() - t0
        return masked, counts

    def process(self, text: str, levels=LEVELS, *, person_id=None, note_id=None, note_date=None) -> Result:
        """One note's spans and its masked text per level. person_id (else note_id) keys the date shift; a date
        without a year takes note_date's."""
        return self.process_many([text], levels, [NoteContext(person_id, note_id, note_date)])[0]

    def process_many(self, texts: list[str], levels=LEVELS, contexts: list[NoteContext] | None = None) -> list[Result]:
        contexts = contexts or [NoteContext()] * len(texts)
        results = []
        for text, context, a in zip(texts, contexts, self.analyze_batch(texts, contexts)):
            masked, counts = self.mask(text, a.spans, levels, context)
            results.append(Result(a.spans, masked, counts, a.llm_status, a.prompt_tokens, a.completion_tokens))
        return results


def _in_note(note: str, view: ReaderView, spans: list[Span]) -> list[Span]:
    """Spans found on the reader's view, as spans of the note (covering what the view dropped inside them)."""
    if view.origin is None:
        return spans
    out = []
    for s in spans:
        start, end = view.span_in_note(s.start, s.end)
        out.append(s.with_(start=start, end=end, text=note[start:end]))
    return out
