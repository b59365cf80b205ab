"""The pipeline: components (NER, then detectors) -> merge -> masking per policy level.

Built once per process from a config; `process(text)` is pure apart from the timing counters.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from deid import __version__
from deid.allow_list import AllowList
from deid.config import PipelineConfig, load_config
from deid.detectors.address import AddressDetector
from deid.detectors.base import Document
from deid.detectors.contact import ContactDetector
from deid.detectors.hospital import HospitalDetector
from deid.detectors.id_number import IdNumberDetector
from deid.detectors.medical import PregnancyDetector, StdDetector
from deid.detectors.name import NameDetector
from deid.detectors.ner import LacNer
from deid.gazetteer import Gazetteer
from deid.masking import Masker, load_policies
from deid.merge import merge
from deid.resources import combine_digests
from deid.spans import Span
from deid.vocabulary import ClinicalVocabulary

LEVELS = (1, 2, 3)


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
        self.policies = load_policies(self.config.policies_path)
        self.masker = Masker(self.policies, secret)
        gazetteer = Gazetteer()
        vocabulary = ClinicalVocabulary()
        names = NameDetector(vocabulary)
        gate = names.may_contain_name if self.config.ner_gate else None
        factories = {
            "ner": lambda: LacNer(self.config.ner_threads, self.config.ner_batch_size, gate),
            "id_number": IdNumberDetector,
            "contact": ContactDetector,
            "hospital": lambda: HospitalDetector(gazetteer, vocabulary),
            "address": lambda: AddressDetector(gazetteer, vocabulary),
            "name": lambda: names,
            "std": StdDetector,
            "pregnancy": PregnancyDetector,
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
        self.component_versions = versions
        self.version = f"{__version__}+{combine_digests(versions)}"

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

    def analyze_batch(self, texts: list[str]) -> list[Analysis]:
        """Spans per note (and the LLM stage's status). NER runs once over all notes (shared batches); detectors
        run per note; the LLM stage, when on, sends every chunk of every note concurrently."""
        for text in texts:
            self.check(text)
        docs = [Document(t) for t in texts]
        found: list[list[Span]] = [[] for _ in docs]
        for name, component in self.components:
            t0 = time.perf_counter()
            if name == "ner":
                component.tag_documents(docs)
            else:
                for i, doc in enumerate(docs):
                    found[i].extend(component.detect(doc))
            self.timings[name] += time.perf_counter() - t0
        outcomes = None
        if self.llm is not None:
            t0 = time.perf_counter()
            outcomes = self.llm.run(texts)
            for spans, outcome in zip(found, outcomes):
                spans.extend(outcome.spans)
            self.timings["llm"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        merged = [self.allow_list.apply(merge(spans, self.config.type_priority, self.config.tier_rule)) for spans in found]
        self.timings["merge"] += time.perf_counter() - t0
        if outcomes is None:
            return [Analysis(spans) for spans in merged]
        return [Analysis(spans, o.status, o.prompt_tokens, o.completion_tokens) for spans, o in zip(merged, outcomes)]

    def mask(self, text: str, spans: list[Span], levels=LEVELS) -> tuple[dict, dict]:
        t0 = time.perf_counter()
        masked, counts = {}, {}
        for level in levels:
            res = self.masker.mask(text, spans, level)
            masked[level], counts[level] = res.text, res.masked_count
        self.timings["masking"] += time.perf_counter() - t0
        return masked, counts

    def process(self, text: str, levels=LEVELS) -> Result:
        return self.process_many([text], levels)[0]

    def process_many(self, texts: list[str], levels=LEVELS) -> list[Result]:
        results = []
        for text, a in zip(texts, self.analyze_batch(texts)):
            masked, counts = self.mask(text, a.spans, levels)
            results.append(Result(a.spans, masked, counts, a.llm_status, a.prompt_tokens, a.completion_tokens))
        return results
