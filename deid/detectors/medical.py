"""STD and PREGNANCY: tiered term dictionaries, plus obstetric formula patterns for pregnancy.

Each dictionary row carries the tier from the table in ARCHITECTURE.md; deid.tiers downgrades a
negative screening result or a denied history to tier 3.
"""
from __future__ import annotations

import re

import ahocorasick

from deid import resources, tiers
from deid.detectors.base import Document
from deid.spans import EntityType, Span, make_span


def _ascii_bounded(norm: str, start: int, end: int) -> bool:
    """Latin terms (HIV, TP, LMP) must not be glued to other Latin letters or digits."""
    if not norm[start:end].isascii():
        before = norm[start - 1] if start and norm[start].isascii() else " "
        after = norm[end] if end < len(norm) and norm[end - 1].isascii() else " "
    else:
        before = norm[start - 1] if start else " "
        after = norm[end] if end < len(norm) else " "
    return not (before.isascii() and before.isalnum()) and not (after.isascii() and (after.isalnum()))


# Term hits that are really parts of other words: 阳性病史 holds 性病, 阴性病灶 too.
_FALSE_HIT = re.compile(r"[阴阳]性病")


class TermDetector:
    """Longest-match dictionary of tiered terms for one entity type."""

    def __init__(self, entity_type: EntityType, resource: str, name: str):
        self.name = name
        self.entity_type = entity_type
        res = resources.load(resource)
        self.version = res.digest
        self._auto = ahocorasick.Automaton()
        for row in res.rows():
            self._auto.add_word(row["term"].lower(), (row["term"], int(row["tier"]), row.get("canonical", "")))
        self._auto.make_automaton()

    def detect(self, doc: Document) -> list[Span]:
        norm = doc.norm
        lowered = norm.lower()
        hits = sorted(((end - len(t) + 1, end + 1, t, tier, canon) for end, (t, tier, canon) in self._auto.iter(lowered)),
                      key=lambda h: (h[0], -(h[1] - h[0])))
        spans, last_end = [], -1
        for start, end, _term, tier, canon in hits:
            if start < last_end or not _ascii_bounded(norm, start, end):
                continue
            if start > 0 and _FALSE_HIT.match(norm, start - 1):
                continue
            spans.append(self._span(doc, start, end, tier, "dictionary", 0.95, f"{self.name}.term", canonical=canon))
            last_end = end
        return spans

    def _span(self, doc: Document, start: int, end: int, tier: int, kind: str, score: float, why: str, **attrs) -> Span:
        if tier < 3 and tiers.is_negative_context(doc.norm, start, end):
            tier, why = 3, why + "+negative"
        return make_span(doc.text, start, end, self.entity_type, tier, kind, score, why, **attrs)


# Obstetric formulas: (pattern, tier rule). G/P formulas are childbearing status (tier 3) unless they
# record an abortion (A>=1), which makes them abortion history (tier 1).
_GPA = re.compile(r"(?<![A-Za-z0-9])G\s?\d{1,2}\s?P\s?\d{1,2}(?:\s?A\s?(\d{1,2}))?(?:\s?L\s?\d{1,2})?(?![A-Za-z0-9])", re.I)
_YUN_CHAN = re.compile(r"孕\s?(\d{1,2}|[一二三四五六七八九十])\s?产\s?(\d{1,2}|[零一二三四五六七八九十])(?:\s?(?:流产|人流|流)\s?(\d{1,2}|[零一二三四五六七八九十])次?)?")
_GESTATION = re.compile(r"(?:怀孕|孕|妊娠|停经)\s?\d{1,2}\s?(?:\+\s?\d\s?)?周(?:\s?\+?\s?\d\s?天)?|停经\s?\d{1,3}\s?天|"
                        r"(?:怀孕|孕|妊娠)\s?(?:\d{1,2}|[一二两三四五六七八九十])\s?个?月")
_COUNT = re.compile(r"\s?(?:\d{1,2}|[一二三四五六七八九十])\s?次")
_CHILDREN = re.compile(r"(?:育有?|生过?|生育)\s?(?:\d|[一二两三四五六])\s?(?:子|女|个孩子|个小孩|胎|孩)(?:\s?(?:\d|[一二两三四五六])\s?(?:子|女))?")
_ZERO = {"0", "零"}


class PregnancyDetector(TermDetector):
    def __init__(self):
        super().__init__(EntityType.PREGNANCY, "dictionaries/pregnancy_terms.tsv", "pregnancy")

    def detect(self, doc: Document) -> list[Span]:
        norm = doc.norm
        spans = []
        for span in super().detect(doc):
            # 人工流产2次: the count belongs to the fact
            count = _COUNT.match(norm, span.end)
            spans.append(self._span(doc, span.start, count.end(), span.tier, "dictionary", span.score,
                                    span.explanation + "+count", **span.attrs) if count and span.tier == 1 else span)
        for m in _GPA.finditer(norm):
            tier = 1 if m.group(1) and m.group(1) != "0" else 3
            spans.append(self._span(doc, m.start(), m.end(), tier, "pattern", 0.95, "pregnancy.gpa"))
        for m in _YUN_CHAN.finditer(norm):
            tier = 1 if m.group(3) and m.group(3) not in _ZERO else 3
            spans.append(self._span(doc, m.start(), m.end(), tier, "pattern", 0.95, "pregnancy.yun_chan"))
        for rx, tier, why in ((_GESTATION, 2, "pregnancy.gestation"), (_CHILDREN, 3, "pregnancy.children")):
            for m in rx.finditer(norm):
                spans.append(self._span(doc, m.start(), m.end(), tier, "pattern", 0.93, why))
        return spans


class StdDetector(TermDetector):
    def __init__(self):
        super().__init__(EntityType.STD, "dictionaries/std_terms.tsv", "std")
