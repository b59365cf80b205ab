"""What every detector sees (a Document) and returns (spans). Detectors know nothing of masking."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from deid.spans import Span
from deid.text import clauses, normalize

if TYPE_CHECKING:
    from deid.vocabulary import WordIndex


@dataclass
class Document:
    """One note. `norm` is the length-preserving normalized text that patterns run on."""
    text: str
    ner: list[tuple[int, int, str]] | None = None  # (start, end, PER|LOC|ORG), filled by the NER component
    clinical: WordIndex | None = None  # clinical words (start, end), found once by the vocabulary
    note_date: date | None = None          # when the note was written (a birth year's age is counted from it)

    @cached_property
    def norm(self) -> str:
        return normalize(self.text)

    @cached_property
    def clauses(self) -> list[tuple[int, int]]:
        return clauses(self.norm)

    def ner_of(self, label: str) -> list[tuple[int, int]]:
        return [(s, e) for s, e, tag in (self.ner or ()) if tag == label]


class Component:
    """What a pipeline component declares; the registry (deid.detectors.registry) and the config read it."""
    name: str = ""                          # its name in pipeline.yaml's `components`
    entity_types: tuple = ()                # the EntityTypes it finds
    requires: tuple[str, ...] = ()          # annotations it reads (`ner`: the PER/LOC/ORG tokens) when present
    uses: tuple[str, ...] = ()              # the shared data its constructor takes (resources, gazetteer, vocabulary)
    settings: Mapping[str, object] = MappingProxyType({})   # its settings in pipeline.yaml, with their defaults
    operational: frozenset = frozenset()    # settings that change how the work is done, not what is found


class Detector(Protocol):
    name: str

    def detect(self, doc: Document) -> list[Span]: ...


class Taken:
    """The characters of a note that found spans hold, so that the first pattern to take one wins, in time linear in
    the note (a span is checked against its own characters, not against every span found before it)."""

    def __init__(self, length: int):
        self._held = bytearray(length)

    def free(self, start: int, end: int) -> bool:
        return not any(self._held[start:end])

    def take(self, start: int, end: int) -> None:
        self._held[start:end] = b"\x01" * (end - start)

    def claim(self, start: int, end: int) -> bool:
        """Take [start, end) when none of it is held; say whether it was."""
        if not self.free(start, end):
            return False
        self.take(start, end)
        return True


def left_context(text: str, start: int, width: int) -> str:
    return text[max(0, start - width):start]


def right_context(text: str, end: int, width: int) -> str:
    return text[end:end + width]
