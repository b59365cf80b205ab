"""The span: one finding of sensitive information, in Unicode code points (end exclusive)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from enum import Enum
from typing import Any


class EntityType(str, Enum):
    NAME = "NAME"
    ID_NUMBER = "ID_NUMBER"
    CONTACT = "CONTACT"
    HOSPITAL = "HOSPITAL"
    ADDRESS = "ADDRESS"
    STD = "STD"
    PREGNANCY = "PREGNANCY"
    # identifiers beyond the paper's seven (HIPAA Safe Harbor, GB/T 37964-2019)
    DATE = "DATE"
    AGE = "AGE"
    RECORD_ID = "RECORD_ID"
    ACCOUNT = "ACCOUNT"
    CERTIFICATE = "CERTIFICATE"
    VEHICLE = "VEHICLE"
    WORKPLACE = "WORKPLACE"

    @property
    def label_zh(self) -> str:
        return LABELS_ZH[self]


# The paper's Chinese labels, used by masking tags and by the LLM markup.
LABELS_ZH = {
    EntityType.NAME: "姓名",
    EntityType.ID_NUMBER: "身份证号",
    EntityType.CONTACT: "联系方式",
    EntityType.HOSPITAL: "医院名称",
    EntityType.ADDRESS: "地址",
    EntityType.STD: "性传播疾病",
    EntityType.PREGNANCY: "妊娠相关",
    EntityType.DATE: "日期",
    EntityType.AGE: "年龄",
    EntityType.RECORD_ID: "病历号",
    EntityType.ACCOUNT: "账号",
    EntityType.CERTIFICATE: "证件号",
    EntityType.VEHICLE: "车辆标识",
    EntityType.WORKPLACE: "工作单位",
}

# The paper's seven types: what the `paper` policy preset finds and masks.
PAPER_TYPES = (EntityType.NAME, EntityType.ID_NUMBER, EntityType.CONTACT, EntityType.HOSPITAL, EntityType.ADDRESS,
               EntityType.STD, EntityType.PREGNANCY)
# Types whose tier is fixed by the type; the other three are tiered by content.
FIXED_TIER = {EntityType.NAME: 1, EntityType.ID_NUMBER: 1, EntityType.CONTACT: 1, EntityType.HOSPITAL: 1,
              EntityType.DATE: 1, EntityType.AGE: 1, EntityType.RECORD_ID: 1, EntityType.ACCOUNT: 1,
              EntityType.CERTIFICATE: 1, EntityType.VEHICLE: 1, EntityType.WORKPLACE: 2}
TIERED_TYPES = (EntityType.ADDRESS, EntityType.STD, EntityType.PREGNANCY)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    entity_type: EntityType
    text: str
    tier: int
    detector: str            # kind of recognizer: pattern | dictionary | ner | llm
    score: float
    explanation: str = ""    # which rule fired, short, never the matched text
    sources: frozenset = frozenset()   # detector kinds that agreed after merging
    attrs: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        if not (0 <= self.start < self.end):
            raise ValueError(f"bad span offsets {self.start}..{self.end}")
        if self.tier not in (1, 2, 3):
            raise ValueError(f"bad tier {self.tier}")
        if not self.sources:
            object.__setattr__(self, "sources", frozenset({self.detector}))

    def __len__(self) -> int:
        return self.end - self.start

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end

    def with_(self, **changes) -> Span:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "type": self.entity_type.value,
            "tier": self.tier,
            "detector": "+".join(sorted(self.sources)),
            "score": round(self.score, 4),
        }


def make_span(text: str, start: int, end: int, entity_type: EntityType, tier: int,
              detector: str, score: float, explanation: str = "", **attrs) -> Span:
    """Build a span whose text is sliced from the note, so offsets and text never disagree."""
    return Span(start, end, entity_type, text[start:end], tier, detector, score, explanation, attrs=attrs)


def split_spans(spans: list[Span], left_len: int, right_start: int) -> tuple[list[Span], list[Span]]:
    """Spans found in `left + separator + right` as spans of `left` and of `right` (offsets shifted). A span
    reaching across the separator is cut in two, so both sides stay masked; the separator itself is dropped."""
    left, right = [], []
    for s in spans:
        if s.start < left_len:
            end = min(s.end, left_len)
            left.append(s if end == s.end else s.with_(end=end, text=s.text[:end - s.start]))
        if s.end > right_start:
            start = max(s.start, right_start)
            cut = s if start == s.start else s.with_(start=start, text=s.text[start - s.start:])
            right.append(cut.with_(start=cut.start - right_start, end=cut.end - right_start))
    return left, right


@dataclass(frozen=True)
class NoteContext:
    """What is known of a note besides its text: whose it is and when it was written. Dates are shifted per person
    (a note without person_id is its own person), and a date without a year takes the note's."""
    person_id: int | str | None = None
    note_id: int | str | None = None
    note_date: date | None = None

    @property
    def person_key(self) -> str | None:
        if self.person_id is not None:
            return f"person:{self.person_id}"
        return None if self.note_id is None else f"note:{self.note_id}"
