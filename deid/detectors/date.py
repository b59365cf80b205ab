"""DATE: absolute dates in every written form; AGE: ages of 90 and over, and a birth year that makes one.

The forms are in deid.dates (the masking operators read them back to shift a date). What is not a date stays
out by the forms' own boundaries: relative times (术后第3天, 3天前), ranges and doses (2-3次/日, 1.5-2.0cm), blood
pressures and fractions (120/80), versions (v2.3.1), times alone (14:30), digits inside a longer number (an ID
number's birth date stays inside ID_NUMBER). Eight digits run together (20230315) are a date only after a date
cue. A year alone (2023年) is not an identifier and is left.
"""
from __future__ import annotations

import re
from datetime import date

from deid.dates import COMPACT, FORMS, read_match
from deid.detectors.base import Component, Document, Taken, left_context
from deid.resources import Resources, alternation
from deid.spans import EntityType, Span, make_span

# 93岁, 101周岁, 九十三岁, 一百零一岁; 年龄：95 (the cues: age_cues.tsv). Under 90 an age is no identifier (HIPAA Safe
# Harbor).
_AGE = re.compile(r"(?<![0-9.])(?:9[0-9]|1[01][0-9]|120)\s?(?:周岁|岁)")
_AGE_CN = re.compile(r"(?<![一二三四五六七八九十百])(?:九十[一二三四五六七八九]?|一百(?:零[一二三四五六七八九]|"
                     r"[一二]十[一二三四五六七八九]?)?)"
                     r"(?:周岁|岁)")


_NUMBER_START = re.compile(r"(?<![0-9])[0-9]|"
                           r"(?<![〇零一二三四五六七八九十])[〇零一二三四五六七八九十](?=[〇零一二三四五六七八九十]*[年月])")


class DateDetector(Component):
    name = "date"
    entity_types = (EntityType.DATE,)
    uses = ("resources",)

    def __init__(self, resources: Resources | None = None):
        cues = (resources or Resources.packaged()).load("lexicons/date_cues.txt")
        self.version = cues.digest
        self._cue = re.compile(f"(?:{alternation(cues.words())})" + r"\s?(?:为|是|:)?\s?$")

    def detect(self, doc: Document) -> list[Span]:
        norm, year = doc.norm, doc.note_date.year if doc.note_date else None
        spans: list[Span] = []
        taken = Taken(len(norm))
        # every form begins with a number: try the forms where numbers begin, not at every character of the note
        candidates = [(form, m) for pos in (a.start() for a in _NUMBER_START.finditer(norm))
                      for form, rx in FORMS if (m := rx.match(norm, pos))]
        candidates += [("compact", m) for m in COMPACT.finditer(norm)
                       if self._cue.search(left_context(norm, m.start(), 8))]
        # the longest reading of a place first (2023年3月15日 before its 3月15日)
        for form, m in sorted(candidates, key=lambda c: (c[1].start(), -c[1].end())):
            start, end = m.span()
            if not taken.free(start, end) or read_match(form, m, year) is None:
                continue
            while end > start and norm[end - 1] == " ":
                end -= 1
            taken.take(start, end)
            spans.append(make_span(doc.text, start, end, EntityType.DATE, 1, "pattern", 0.95, f"date.{form}"))
        return spans


class AgeDetector(Component):
    name = "age"
    entity_types = (EntityType.AGE,)
    uses = ("resources",)

    def __init__(self, resources: Resources | None = None):
        cues = (resources or Resources.packaged()).load("lexicons/age_cues.tsv")
        self.version = cues.digest
        # each pattern is scanned only where one of its words is in the note
        self._field_words = cues.words("field")
        self._birth_words = cues.words("born_in") + cues.words("birth_field") + cues.words("born_after")
        self._field = re.compile(rf"(?:{alternation(cues.words('field'))})\s?[:]?\s?((?:9[0-9]|1[01][0-9]|120))"
                                 r"(?![0-9.])")
        # A birth year said as such (1930年出生, 生于1930年, 出生年份：1930); a full birth date is a DATE already.
        self._birth_year = re.compile(
            rf"(?:(?:{alternation(cues.words('born_in'))}|(?:{alternation(cues.words('birth_field'))})\s?:?\s?)"
            r"((?:18|19|20)[0-9]{2})年?(?![0-9]|\s?[-/.年]\s?[0-9])"
            rf"|((?:18|19|20)[0-9]{{2}})年(?:{alternation(cues.words('born_after'))}))")

    def detect(self, doc: Document) -> list[Span]:
        norm = doc.norm
        spans = []
        if "岁" in norm:
            spans += [make_span(doc.text, *m.span(), EntityType.AGE, 1, "pattern", 0.95, why)
                      for rx, why in ((_AGE, "age.years"), (_AGE_CN, "age.years_cn")) for m in rx.finditer(norm)]
        if any(w in norm for w in self._field_words):
            spans += [make_span(doc.text, *m.span(1), EntityType.AGE, 1, "pattern", 0.9, "age.field")
                      for m in self._field.finditer(norm) if not any(s.start <= m.start(1) < s.end for s in spans)]
        this_year = (doc.note_date or date.today()).year
        for m in self._birth_year.finditer(norm) if any(w in norm for w in self._birth_words) else ():
            group = 1 if m.group(1) else 2
            if this_year - int(m.group(group)) >= 90:
                spans.append(make_span(doc.text, *m.span(group), EntityType.AGE, 1, "pattern", 0.85, "age.birth_year"))
        return spans
