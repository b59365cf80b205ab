"""The pipeline: components (NER, then detectors) -> merge -> masking per policy level.

Built once per process from a config; `process(text)` is pure apart from the timing counters.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from deid import __version__
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

LEVELS = (1, 2, 3)


class NoteError(ValueError):
    """A note the pipeline refuses; the message never contains note text."""


class NoteTooLarge(NoteError):
    pass


@dataclass(frozen=True)
class Result:
    spans: list[Span]
    masked: dict          # level -> masked text
    masked_count: dict    # level -> number of spans masked


class Pipeline:
    def __init__(self, config: PipelineConfig | None = None, secret: bytes | None = None):
        self.config = config or load_config()
        self.policies = load_policies(self.config.policies_path)
        self.masker = Masker(self.policies, secret)
        gazetteer = Gazetteer()
        names = NameDetector()
        gate = names.may_contain_name if self.config.ner_gate else None
        factories = {
            "ner": lambda: LacNer(self.config.ner_threads, self.config.ner_batch_size, gate),
            "id_number": IdNumberDetector,
            "contact": ContactDetector,
            "hospital": lambda: HospitalDetector(gazetteer),
            "address": lambda: AddressDetector(gazetteer),
            "name": lambda: names,
            "std": StdDetector,
            "pregnancy": PregnancyDetector,
        }
        self.components = [(name, factories[name]()) for name in self.config.components]
        self.timings: dict[str, float] = defaultdict(float)
        versions = {name: getattr(c, "version", "") for name, c in self.components}
        versions.update(code=__version__, config=self.config.digest, policies=self.policies.digest,
                        gazetteer=gazetteer.version)
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
        """Spans per note. NER runs once over all notes (shared batches); detectors run per note."""
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
        t0 = time.perf_counter()
        merged = [merge(spans, self.config.type_priority) for spans in found]
        self.timings["merge"] += time.perf_counter() - t0
        return merged

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
        for text, spans in zip(texts, self.analyze_many(texts)):
            masked, counts = self.mask(text, spans, levels)
            results.append(Result(spans, masked, counts))
        return results
