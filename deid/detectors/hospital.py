"""HOSPITAL: the curated dictionary (official names, aliases, English names) plus a pattern for
institutions that are not in it: a proper prefix (a place, a person's or a university's name, an ordinal) followed by a
health-facility ending (医院, 人民医院, 妇幼保健院, 卫生院, 社区卫生服务中心, 精神卫生中心, 诊所 ...:
resources/lexicons/health_facility_endings.txt). A department alone (心内科) or a generic phrase (当地医院, 县医院,
我院) is not a hospital; a place and a specialty are (福州肺科医院). A span that ends in a health-facility ending
records it in `facility`: merge lets it win over an address reading of the same characters (an alias or a colloquial
name such as 浙一 or 赣州市一院 is no such evidence).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import ahocorasick

from deid.detectors.base import Component, Document, left_context, right_context
from deid.gazetteer import Gazetteer
from deid.resources import Resources, alternation, combine_digests
from deid.spans import EntityType, Span, make_span
from deid.text import is_cjk
from deid.vocabulary import ClinicalVocabulary

# Characters of a hospital name's prefix; a bracket, a clause or a verb is a boundary.
_PREFIX_CHAR = re.compile(r"[\u4e00-\u9fa5〇A-Za-z0-9·]")   # 〇 of 第九〇四医院
# A department or a kind of care names no institution (内科医院, 男科医院, 精神科医院).
_DEPARTMENT = re.compile(r"[\u4e00-\u9fa5]{0,3}科")
# A house or building number in front of a name ends the address before it (浣纱路356号|杭州市第一人民医院).
_HOUSE_NUMBER = re.compile(r"[0-9]+\s?[号栋幢]")
# Asking which one of them (上海骨科医院哪家好, 哪些, 哪所) makes the phrase a kind of institution, not one.
_WHICH_AFTER = re.compile(r"\s?哪[家些所]")
# Digits or a date glued to the front of a name (2016-10-14承德市中心医院) are not part of it.
_LEADING_NUMBER = re.compile(r"[0-9][0-9\-./:]*(?=[\u4e00-\u9fa5])")
# A duration or a date in the prefix (近日加重1月|西南大学医院, 2年前|...) ends it: no name holds one.
_DURATION = re.compile(r"[0-9]+个?(?:年|月|日|天|周|小时)[余前后]?")
# A campus, a branch or a bracketed former or other name right after a hospital's name is part of it
# (瑞金医院北院, 槐南卫生院西华分院, 扬州大学附属医院（东区）, 重庆市红十字会医院（江北区人民医院）).
_BRANCH = re.compile(r"[（(]原?[\u4e00-\u9fa50-9]{1,14}?(?:院区|分院|区|院|部|中心)[)）]"
                     r"|[\u4e00-\u9fa5]{0,6}?(?:分院|院区)|[东南西北]院(?!长)")
_BRACKETED_PLACE = re.compile(r"[（(]([\u4e00-\u9fa5]{2,8})[)）]")


@dataclass(frozen=True)
class _Entry:
    canonical: str
    form: str
    kind: str   # name | alias | ambiguous | english


def _ascii_word_boundary(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isascii() and before.isalnum()) and not (after.isascii() and after.isalnum())


ALIAS_KINDS = ("alias", "ambiguous")


def hospital_forms(row: dict) -> list[tuple[str, str]]:
    """(form, kind) for one hospitals.tsv row: its name ("name"), aliases ("alias"; "ambiguous" when marked
    with ~ in the file: also an ordinary word), English names ("english")."""
    forms = [(row["name"], "name")]
    for alias in filter(None, row.get("aliases", "").split(";")):
        forms.append((alias[1:], "ambiguous") if alias.startswith("~") else (alias, "alias"))
    return forms + [(en, "english") for en in filter(None, row.get("english", "").split(";"))]


class HospitalDetector(Component):
    name = "hospital"
    entity_types = (EntityType.HOSPITAL,)
    uses = ("gazetteer", "vocabulary", "resources")
    # How far a span is trusted, by rule: a dictionary name and its forms, the pattern, a colloquial name.
    SCORES = {"name": 0.99, "alias": 0.95, "english": 0.95, "ambiguous": 0.85, "pattern": 0.9, "colloquial": 0.85}

    def __init__(self, gazetteer: Gazetteer | None = None, vocabulary: ClinicalVocabulary | None = None,
                 resources: Resources | None = None):
        files = resources or Resources.packaged()
        self.gazetteer = gazetteer or Gazetteer(files)
        self.vocabulary = vocabulary or ClinicalVocabulary(resources=files)
        res = files.load("dictionaries/hospitals.tsv")
        endings = files.load("lexicons/health_facility_endings.txt")
        words = files.load("lexicons/hospital_words.tsv")
        zones = files.load("lexicons/place_endings.tsv")
        self.version = combine_digests({"hospitals": res.digest, "endings": endings.digest,
                                        "words": words.digest, "zones": zones.digest})
        self._determiners = re.compile(f"(?:{alternation(words.words('determiner'))})+")
        self._school_word = re.compile(alternation(words.words("school_word")))
        # Where a name's prefix starts: after a word of going, choosing or asking (就诊于, 推荐), or a character of
        # grammar or care (于, 在, 转, 的, 看).
        self._prefix_stop = re.compile(alternation(words.words("prefix_stop"))
                                       + "|"
                                         "[于在至到赴转经去往及与、由从我外曾行予后入住诉因示见即既往来的看治做查好最这那哪有]")
        # Clinical words that do name real specialist hospitals (肿瘤医院, 皮肤病医院); any other clinical word
        # before 医院 makes a description (上海胃癌医院, 银屑病医院), not a name.
        self._specialty = re.compile(alternation(words.words("specialty")) + "|结核病?")
        # Words that on their own do not name an institution (当地, 三甲, 上级, 该).
        self._generic = re.compile(alternation(words.words("generic")) + "|上一?级|下一?级|"
                                                                         "[某该县市省区乡镇村各其此原]")
        self._suffix = re.compile(alternation(endings.words()))
        self._zone = re.compile(rf"(?:{alternation(zones.words('zone_qualifier'))})"
                                rf"(?:{alternation(zones.words('division_zone'))})")
        # What makes an ambiguous alias a hospital: a visit before it or after it (转至|浙一, 浙一|就诊); what makes
        # an alias a school (浙医|大学).
        self._visit_before = re.compile(rf"(?:{alternation(words.words('visit_before'))})\s*$")
        self._visit_after = re.compile(rf"^\s*(?:{alternation(words.words('visit_after'))})")
        self._school_after = re.compile(rf"^(?:{alternation(words.words('school_after'))})")
        # A road named after an institution (医院路, 医院西街) is no institution.
        self._road_after = re.compile(rf"[东西南北中]?(?:{alternation(words.words('road_after'))})")
        # What may follow a clinical-looking word inside a name: a place or a clan (葫芦|岛市, 风团|镇, 黄|氏).
        self._place_or_clan = re.compile(alternation(words.words("place_or_clan")))
        # A colloquial name after a division's (赣州市|一院, 长春|附一院, 徐州|妇保院), unless a longer name goes on.
        self._colloquial_name = re.compile(
            rf"(?:市|县|区)?(?:第?[一二三四五六七八九]院|附[一二三四五六七八]院?|医大[一二三四五六七八]院|"
            rf"{alternation(words.words('colloquial'))})"
            rf"(?![\u4e00-\u9fa5]{{0,3}}(?:{alternation(words.words('full_ending'))}))")
        self.entries: list[_Entry] = []
        auto = ahocorasick.Automaton()
        for row in res.rows():
            name = row["name"]
            for form, kind in hospital_forms(row):
                entry = _Entry(name, form, kind)
                self.entries.append(entry)
                key = form.lower()
                if key not in auto or auto.get(key).kind == "ambiguous":
                    auto.add_word(key, entry)
        auto.make_automaton()
        self._auto = auto

    def detect(self, doc: Document) -> list[Span]:
        text, norm = doc.text, doc.norm
        spans = self._dictionary(text, norm) + self._pattern(text, norm) + self._colloquial(text, norm)
        return [self._with_branch(text, norm, s) for s in spans]

    def _dictionary(self, text: str, norm: str) -> list[Span]:
        lowered = norm.lower()
        hits = []
        for end, entry in self._auto.iter(lowered):
            start = end - len(entry.form) + 1
            hits.append((start, end + 1, entry))
        hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))
        spans, last_end = [], -1
        for start, end, entry in hits:
            if start < last_end:
                continue
            if entry.kind == "english" and not _ascii_word_boundary(norm, start, end):
                continue
            if entry.kind != "english" and entry.form.isascii() and not _ascii_word_boundary(norm, start, end):
                continue
            if entry.kind in ("alias", "ambiguous") and self._school_after.match(right_context(norm, end, 4)):
                continue
            if entry.kind == "ambiguous":
                if not (self._visit_before.search(left_context(norm, start, 5)) or
                        self._visit_after.match(right_context(norm, end, 5))):
                    continue
            spans.append(make_span(text, start, end, EntityType.HOSPITAL, 1, "dictionary", self.SCORES[entry.kind],
                                   f"hospital.dict.{entry.kind}", canonical=entry.canonical,
                                   facility=self._ending(entry.form) if entry.kind != "ambiguous" else ""))
            last_end = end
        return spans

    def _colloquial(self, text: str, norm: str) -> list[Span]:
        """赣州市一院, 长春附一院, 徐州妇保院: a division name then a numbered or abbreviated hospital."""
        spans = []
        for s, e, _place in self.gazetteer.find(norm):
            m = self._colloquial_name.match(norm, e)
            if m:
                spans.append(make_span(text, s, m.end(), EntityType.HOSPITAL, 1, "pattern", self.SCORES["colloquial"],
                                       "hospital.colloquial"))
        return spans

    def _pattern(self, text: str, norm: str) -> list[Span]:
        spans = []
        for m in self._suffix.finditer(norm):
            if self._road_after.match(norm, m.end()) or _WHICH_AFTER.match(norm, m.end()):
                continue   # 医院路94号: a road named after the institution; 上海骨科医院哪家好: a kind of hospital
            start = m.start()
            while start > 0 and m.start() - start < 24 and _PREFIX_CHAR.match(norm[start - 1]):
                start -= 1
            prefix = norm[start:m.start()]
            places = [(s, e) for s, e, _ in self.gazetteer.find(prefix)]
            # A stop character inside a division name (沈阳市于洪区) or a development zone's (枣阳|经济开发区医院)
            # does not end the prefix, nor does a clan name's surname (于氏诊所) or a department's first character
            # (整形外科医院)
            places += [z.span() for z in self._zone.finditer(prefix)]
            stops = [st for st in self._prefix_stop.finditer(prefix)
                     if not any(s <= st.start() < e for s, e in places)
                     and prefix[st.end():st.end() + 1] not in ("氏", "科")]
            stops += list(_DURATION.finditer(prefix))
            if stops:
                start += max(st.end() for st in stops)
                prefix = norm[start:m.start()]
            house = [h.end() for h in _HOUSE_NUMBER.finditer(prefix)]
            if house and self._names_something(prefix[house[-1]:]):   # (延安路521号|口腔医院: the address names it)
                start, prefix = start + house[-1], prefix[house[-1]:]
            while prefix and not (is_cjk(prefix[0]) or prefix[0].isalnum()):
                start, prefix = start + 1, prefix[1:]
            number = _LEADING_NUMBER.match(prefix)
            if number:
                start, prefix = start + number.end(), prefix[number.end():]
            # Strip generic determiners at the front (当地, 我院 ...) but keep a real name behind them.
            lead = self._determiners.match(prefix)
            if lead:
                start, prefix = start + lead.end(), prefix[lead.end():]
            if not prefix or not self._names_something(prefix):
                continue
            if prefix.isascii() and prefix.isdigit() and m.group() != "医院":
                continue   # 301医院 is numbered; 120急救中心 names no one institution
            spans.append(make_span(text, start, m.end(), EntityType.HOSPITAL, 1, "pattern", self.SCORES["pattern"],
                                   "hospital.pattern", facility=m.group()))
        return spans

    def _with_branch(self, text: str, norm: str, span: Span) -> Span:
        """The span over the campus, branch or bracketed name (_BRANCH) or place (（深圳）) that follows it; not for a
        hospital named by its house number (锦绣路1605号中医院|水心院区), a landmark the address phrase holds."""
        if _HOUSE_NUMBER.search(span.text):
            return span
        m = _BRANCH.match(norm, span.end)
        if not m:
            m = _BRACKETED_PLACE.match(norm, span.end)
            if not m or not any(s == 0 and e == len(m.group(1)) for s, e, _ in self.gazetteer.find(m.group(1))):
                return span
        return span.with_(end=m.end(), text=text[span.start:m.end()])

    def _ending(self, name: str) -> str:
        """The health-facility ending a dictionary name ends in ('' for an alias such as 浙一 or 华西, which is no
        evidence against an address reading of the same characters)."""
        return next((m.group() for m in self._suffix.finditer(name) if m.end() == len(name)), "")

    def _names_something(self, prefix: str) -> bool:
        if "某" not in prefix and len(prefix) >= 2 and self._school_word.search(prefix):
            return True   # a school's hospital (信阳职业技术学院附属医院): its clinical-looking words are the school's
        if "某" in prefix or len(prefix) < 2 or self._describes(prefix) or (
                _DEPARTMENT.fullmatch(prefix) and not self._place_first(prefix)):
            return False   # 山东省某医院, 上海胃癌医院, 男科医院, 痛医院: no institution is named (福州肺科医院 is)
        if re.fullmatch(f"(?:{self._specialty.pattern}|病)+", prefix):
            return False   # 精神病医院, 皮肤病医院: a kind of hospital, no name
        if self.gazetteer.find(prefix):
            return True
        if re.search(r"第[一二三四五六七八九十0-9]+", prefix):
            return True
        return not re.fullmatch(f"(?:{self._generic.pattern})+", prefix)

    def _place_first(self, prefix: str) -> bool:
        """A division's name opens the prefix and a specialty follows it (福州|肺科, 北京|骨科)."""
        return any(s == 0 and e < len(prefix) for s, e, _ in self.gazetteer.find(prefix))

    def _describes(self, prefix: str) -> bool:
        """A clinical word stands in the prefix that is neither a specialty nor part of a place or a clan name
        (葫芦 of 葫芦岛市, 风团 of 风团镇, 黄氏)."""
        named = ([m.span() for m in self._specialty.finditer(prefix)]
                 + [(s, e) for s, e, _ in self.gazetteer.find(prefix)])
        return any(not any(ns < e and s < ne for ns, ne in named) and not self._place_or_clan.match(prefix, e)
                   for s, e in self.vocabulary.matches(prefix))

