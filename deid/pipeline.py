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
        factories = {
            "ner": lambda: LacNer(self.config.ner_threads, self.config.ner_batch_size),
            "id_number": IdNumberDetector,
            "contact": ContactDetector,
            "hospital": lambda: HospitalDetector(gazetteer),
            "address": lambda: AddressDetector(gazetteer),
            "name": NameDetector,
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

    def analyze(self, text: str) -> list[Span]:
        if not isinstance(text, str):
            raise NoteError(f"note text must be a string, not {type(text).__name__}")
        if len(text) > self.config.max_chars:
            raise NoteTooLarge(f"note has {len(text)} characters; the limit is {self.config.max_chars}")
        doc = Document(text)
        found: list[Span] = []
        for name, component in self.components:
            t0 = time.perf_counter()
            if name == "ner":
                component(doc)
            else:
                found.extend(component.detect(doc))
            self.timings[name] += time.perf_counter() - t0
        t0 = time.perf_counter()
        merged = merge(found, self.config.type_priority)
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
        spans = self.analyze(text)
        masked, counts = self.mask(text, spans, levels)
        return Result(spans, masked, counts)
