"""STD and PREGNANCY: tiered term dictionaries, plus obstetric formula patterns for pregnancy.

Each dictionary row carries the tier from the table in ARCHITECTURE.md; deid.tiers downgrades a
negative screening result or a denied history to tier 3.
"""
from __future__ import annotations

import re

import ahocorasick

from deid import tiers
from deid.detectors.base import Component, Document
from deid.resources import Resources, alternation, combine_digests
from deid.spans import EntityType, Span, make_span
from deid.text import normalize


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
# Pathogens that share a morpheme with an STD but are not sexually transmitted: respiratory 肺炎支原体, 肺炎衣原体,
# 鹦鹉热衣原体; intestinal and oral 肠滴虫, 口腔毛滴虫. (morpheme the core starts with, what stands before it)
_NOT_STD = ((re.compile(r"支原体|衣原体"), re.compile(r"(?:肺炎|鹦鹉热)$")),
            (re.compile(r"毛?滴虫"), re.compile(r"(?:肠道?|口腔)$")))

_CJK = "\u4e00-\u9fa5"
MENTION_WORDS = "lexicons/mention_words.tsv"
# A whole disease or procedure mention is built around its core term (梅毒, 淋球菌, 流产 ...): modifiers before it
# (stage, course, site, sex, ICD phrasing: lexicons/mention_words.tsv) and a disease word after it (梅毒|性心脏病,
# 淋球菌|性尿道炎: `_right`).
#
# Inside a phrase: CJK, but no clause word (史, a verb, a result, a conjunction that starts a new item).
_PHRASE_CHAR = rf"(?:(?![史行予于在因及和与或者了为是有无经示见查阳阴抗治疗入院])[{_CJK}])"


def _disease_end(words) -> str:
    """What may end a disease phrase: the file's disease_end words, and 病, 儿, 期 where they do not start another
    word (病史, 病人, 儿童, 期间 ...), the hepatitis types, 黄疸型."""
    return (rf"(?:{alternation(words.words('disease_end'))}|病(?![史人程情房例区灶变毒理])|[甲乙丙丁戊庚]型|无?黄疸型|"
            r"儿(?![童科])|期(?![间内]))")


def _right(words) -> str:
    """What may follow a core term in its mention (words: lexicons/mention_words.tsv)."""
    end = _disease_end(words)
    return (rf"(?:(?:[，,]\s?)?(?:{alternation(words.words('complication'))})(?:{_PHRASE_CHAR}|[和或]){{0,10}}?{end}"
            rf"|(?:性|型|的)?{_PHRASE_CHAR}{{0,10}}?{end}"                                    # 性心脏病
            rf"|[，,]\s?(?:{alternation(words.words('icd_qualifier'))})"                         # ，未特指的
            rf"|[\[(（【][{_CJK}A-Za-z]{{2,10}}[\])）】])+")                                  # [HIV], (共同感染)


# Viral hepatitis written with its types in any order: 乙型丁型病毒性肝炎, 病毒性肝炎乙型丁型急性无黄疸型.
_HEPATITIS = re.compile(rf"(?:[甲乙丙丁戊庚]型){{1,3}}{_PHRASE_CHAR}{{0,6}}?肝炎|病毒性肝炎(?:[，,]?[甲乙丙丁戊庚]型)*")
# HPV with its genotype (hpv33, HPV-6, HPV 11型): the dictionary's HPV would need a word boundary after it.
_HPV_TYPE = re.compile(r"(?<![A-Za-z])HPV(?:-?[0-9]{1,2}(?:型)?|\s[0-9]{1,2}型)(?![0-9])", re.I)


class TermDetector(Component):
    """Tiered terms for one entity type (a dictionary, the official ICD-10 diagnoses, morpheme patterns), each
    stretched to the whole mention it belongs to."""

    RESOURCES = ("dictionaries/icd10_sensitive.tsv",)

    uses = ("resources",)

    def __init__(self, entity_type: EntityType, resource: str, resources: Resources | None = None):
        self.entity_type = entity_type
        files = resources or Resources.packaged()
        loaded = [files.load(r) for r in (resource, *self.RESOURCES)]
        words = files.load(MENTION_WORDS)
        self._negation = tiers.NegationRule(files)
        self.version = combine_digests({**{r.name: r.digest for r in (*loaded, words)},
                                        tiers.NEGATION_CUES: self._negation.digest})
        modifier = (alternation(words.words("modifier"))
                    + rf"|(?:{alternation(words.words('cause'))})[{_CJK}]{{0,3}}?性")   # 输卵管阻塞性
        self._left = re.compile(rf"(?:{modifier})(?:[或和]?(?:{modifier}))*$")
        self._right = re.compile(_right(words))
        self.patterns = self._patterns(words)   # (compiled pattern, tier)
        self._auto = ahocorasick.Automaton()
        for res in loaded:
            for row in res.rows():
                if row.get("type", entity_type.value) != entity_type.value:
                    continue
                key = normalize(row["term"]).lower()   # matched against the normalized note
                if key not in self._auto:
                    self._auto.add_word(key, (row["term"], int(row["tier"]), row.get("canonical", "")))
        self._auto.make_automaton()

    def _cores(self, norm: str):
        """(start, end, tier, kind, canonical) of every term and morpheme hit."""
        lowered = norm.lower()
        hits = sorted(((end - len(t) + 1, end + 1, t, tier, canon)
                       for end, (t, tier, canon) in self._auto.iter(lowered)),
                      key=lambda h: (h[0], -(h[1] - h[0])))
        last_end = -1
        for start, end, _term, tier, canon in hits:
            if start < last_end or not _ascii_bounded(norm, start, end):
                continue
            if start > 0 and _FALSE_HIT.match(norm, start - 1):
                continue
            last_end = end
            yield start, end, tier, "dictionary", canon
        for rx, tier in self.patterns:
            for m in rx.finditer(norm):
                yield m.start(), m.end(), tier, "pattern", ""

    def _patterns(self, words) -> tuple:
        """The patterns that find terms besides the dictionaries, with their tiers (none unless a subclass has)."""
        return ()

    def _whole_mention(self, norm: str, start: int, end: int) -> tuple[int, int]:
        """Stretch a core term over the modifiers before it and the disease words after it."""
        left = self._left.search(norm, max(0, start - 24), start)
        if left and left.end() == start:
            start = left.start()
        right = self._right.match(norm, end)
        if right:
            end = right.end()
        return start, end

    def detect(self, doc: Document) -> list[Span]:
        norm = doc.norm
        mentions: list[list] = []
        for start, end, tier, kind, canon in self._cores(norm):
            if self.entity_type is EntityType.STD and any(
                    core.match(norm, start) and before.search(norm, max(0, start - 3), start)
                    for core, before in _NOT_STD):
                continue
            start, end = self._whole_mention(norm, start, end)
            mentions.append([start, end, tier, kind, canon])
        mentions.sort(key=lambda m: (m[0], -m[1]))
        merged: list[list] = []
        for m in mentions:   # one span per mention: overlapping hits join, the most sensitive tier wins
            if merged and m[0] < merged[-1][1]:
                last = merged[-1]
                last[1], last[2] = max(last[1], m[1]), min(last[2], m[2])
                last[4] = last[4] or m[4]
            else:
                merged.append(m)
        return [self._span(doc, s, e, tier, kind, 0.95 if kind == "dictionary" else 0.9, f"{self.name}.{kind}",
                           canonical=canon) for s, e, tier, kind, canon in merged]

    def _span(self, doc: Document, start: int, end: int, tier: int, kind: str, score: float, why: str, **attrs) -> Span:
        if tier < 3 and self._negation.is_negative(doc.norm, start, end):
            tier, why = 3, why + "+negative"
        return make_span(doc.text, start, end, self.entity_type, tier, kind, score, why, **attrs)


# Obstetric formulas: (pattern, tier rule). G/P formulas are childbearing status (tier 3) unless they
# record an abortion (A>=1), which makes them abortion history (tier 1).
_GPA = re.compile(r"(?<![A-Za-z0-9])G\s?\d{1,2}\s?P\s?\d{1,2}(?:\s?A\s?(\d{1,2}))?(?:\s?L\s?\d{1,2})?"
                  r"(?![A-Za-z0-9])", re.I)
# 孕2产1 and the counts written with it: 孕3产1流2, 孕2产1(足1早0流1存1) (their words:
# lexicons/obstetric_formula_words.tsv), and the bare 流 count after a comma (孕1产0,流1) that is shorthand of the
# formula; the abortion count (流, 流产, 人流) decides the tier. A statement after a comma (孕2产1,早产1次,
# 人流1次) is a fact of its own.
OBSTETRIC_FORMULA_WORDS = "lexicons/obstetric_formula_words.tsv"
_COUNT_WORD = r"(?:\d{1,2}|[零一二三四五六七八九十])"
_GESTATION = re.compile(r"(?:怀孕|孕|妊娠|停经)\s?\d{1,2}\s?(?:\+\s?\d\s?)?周(?:\s?\+?\s?\d\s?天)?|停经\s?\d{1,3}\s?天|"
                        r"(?:怀孕|孕|妊娠)\s?(?:\d{1,2}|[一二两三四五六七八九十])\s?个?月")
_COUNT = re.compile(r"\s?(?:\d{1,2}|[一二三四五六七八九十])\s?次")
_CHILDREN = re.compile(r"(?:育有?|生过?|生育)\s?(?:\d|[一二两三四五六])\s?(?:子|女|个孩子|个小孩|胎|孩)(?:\s?(?:\d|"
                       r"[一二两三四五六])\s?(?:子|女))?")
_ZERO = {"0", "零"}


class PregnancyDetector(TermDetector):
    name = "pregnancy"
    entity_types = (EntityType.PREGNANCY,)

    def __init__(self, resources: Resources | None = None):
        files = resources or Resources.packaged()
        super().__init__(EntityType.PREGNANCY, "dictionaries/pregnancy_terms.tsv", files)
        formula = files.load(OBSTETRIC_FORMULA_WORDS)
        self.version = combine_digests({"terms": self.version, "formula": formula.digest})
        self._yun_chan = re.compile(rf"孕\s?(\d{{1,2}}|[一二三四五六七八九十])\s?产\s?{_COUNT_WORD}"
                                    rf"(?:\s?[、(]?\s?(?:{alternation(formula.words('count'))})\s?{_COUNT_WORD}次?\)?)*"
                                    rf"(?:\s?[,;]\s?流\s?{_COUNT_WORD}次?(?![0-9]))?")
        self._abortions = re.compile(rf"(?:{alternation(formula.words('abortion'))})\s?({_COUNT_WORD})")

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
        for m in self._yun_chan.finditer(norm):
            tier = 1 if any(a.group(1) not in _ZERO for a in self._abortions.finditer(m.group())) else 3
            spans.append(self._span(doc, m.start(), m.end(), tier, "pattern", 0.95, "pregnancy.yun_chan"))
        for rx, tier, why in ((_GESTATION, 2, "pregnancy.gestation"), (_CHILDREN, 3, "pregnancy.children")):
            for m in rx.finditer(norm):
                spans.append(self._span(doc, m.start(), m.end(), tier, "pattern", 0.93, why))
        return spans


class StdDetector(TermDetector):
    name = "std"
    entity_types = (EntityType.STD,)

    def __init__(self, resources: Resources | None = None):
        super().__init__(EntityType.STD, "dictionaries/std_terms.tsv", resources)

    def _patterns(self, words) -> tuple:
        site = f"(?:{alternation(words.words('genital_site'))})"
        # Herpes at a genital or perianal site is genital herpes (带状疱疹, 口唇疱疹 are not).
        genital_herpes = re.compile(rf"{site}{_PHRASE_CHAR}{{0,4}}?疱疹|疱疹(?:病毒)?性?{site}")
        # 主要为性传播的疾病, 经性传播: the mode of transmission names the disease group.
        transmission = re.compile(alternation(words.words("transmission")))
        return (_HEPATITIS, 3), (genital_herpes, 2), (transmission, 2), (_HPV_TYPE, 2)
