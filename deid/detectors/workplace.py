"""WORKPLACE: the named employer, school or work unit of the patient or a relative.

A name that ends in an organisation word (公司, 中学, 局 ...: resources/lexicons/workplace_endings.txt), with a
workplace cue around it: before (工作单位：X, 就职于X, 在X工作 / 任教 / 上班 / 就读), or after (X退休, X职工, X学生).
Without a cue an organisation is not taken: 某公司 in a history says nothing of the patient's own.
"""
from __future__ import annotations

import re

from deid.detectors.base import Component, Document
from deid.resources import Resources, alternation, combine_digests
from deid.spans import EntityType, Span, make_span

_NAME_CHARS = r"(?:(?!的)[\u4e00-\u9fa5A-Za-z0-9（）()])"   # 的 joins two nouns, not the words of one name
# Where a name before a cue after it begins: a clause mark or a word that introduces it (患者为|浙江大学|学生).
_NAME_OPENER = set("，,。；;:： 为是系原在于的及和与")
# A copula or 在 the model's token took in front of the name (患者|系|新世纪大酒店): no organisation starts so.
_LEADING_VERB = set("为是系在")


class WorkplaceDetector(Component):
    name = "workplace"
    entity_types = (EntityType.WORKPLACE,)
    requires = ("ner",)   # ORG tokens before a cue after them
    uses = ("resources",)

    SCORES = {"workplace.cue_before": 0.85, "workplace.cue_after": 0.8}

    def __init__(self, resources: Resources | None = None):
        files = resources or Resources.packaged()
        endings = files.load("lexicons/workplace_endings.txt")
        context = files.load("lexicons/person_context.tsv")
        self.version = combine_digests({"endings": endings.digest, "person_context": context.digest})
        # The verbs of working or studying somewhere, right after the place's name (在X工作, 在X任教).
        self._works_at = re.compile(alternation(context.words("works_at")))
        # 工作单位：X, 就职于X, 曾在X任教: the cue's end is where the name starts.
        self._before = re.compile(rf"(?:{alternation(context.words('work_field'))})\s?[:]\s?"
                                  rf"|(?:{alternation(context.words('work_before'))})"
                                  rf"|(?<![现住居])(?P<at>曾在|现在|在)(?={_NAME_CHARS}{{2,30}}?(?:{self._works_at.pattern}))")
        self._after = re.compile(alternation(context.words("work_after")))
        self._endings = tuple(sorted(endings.lines(), key=len, reverse=True))
        ending = "|".join(map(re.escape, self._endings))
        # the shortest run of name characters from a place that ends in an organisation word
        self._name = re.compile(rf"{_NAME_CHARS}{{1,28}}?(?:{ending})")

    def detect(self, doc: Document) -> list[Span]:
        norm = doc.norm
        spans: list[Span] = []
        for m in self._before.finditer(norm):
            end = self._name_end(norm, m.end())
            if end and (not m.group("at") or self._works_at.match(norm, end)):   # 在X工作: the verb right after X
                spans.append(make_span(doc.text, m.end(), end, EntityType.WORKPLACE, 2, "pattern",
                                       self.SCORES["workplace.cue_before"], "workplace.cue_before"))
        orgs = {e: s for s, e in doc.ner_of("ORG")}
        places = doc.ner_of("LOC")
        for m in self._after.finditer(norm):
            end = m.start()
            # the model's organisation or the name back to its opener, whichever is longer (阳泉市|华星超市)
            starts = [s for s in (orgs.get(end), self._name_start(norm, end)) if s is not None]
            start = min(starts) if starts else None
            if start is not None:   # a place the model tags apart is the name's head (松原市|宏达超市)
                start = next((s for s, e in places if s < start <= e), start)
                while start < end - 1 and norm[start] in _LEADING_VERB:
                    start += 1
            if start is not None and not any(s.start < end and start < s.end for s in spans):
                spans.append(make_span(doc.text, start, end, EntityType.WORKPLACE, 2, "pattern",
                                       self.SCORES["workplace.cue_after"], "workplace.cue_after"))
        return spans

    def _name_end(self, norm: str, pos: int) -> int | None:
        """The end of the longest organisation name from pos (杭州市第一中学 of 杭州市第一中学任教, not
        杭州市第一中)."""
        end = None
        while m := self._name.match(norm, end or pos):
            end = m.end()
        return end

    def _name_start(self, norm: str, end: int) -> int | None:
        """Where an organisation name ending at `end` begins: after the clause mark or opener word before it, at
        most 20 characters back; None unless it ends in an organisation word and holds something before it."""
        ending = next((e for e in self._endings if norm.endswith(e, 0, end)), None)
        if ending is None:
            return None
        start = end - len(ending)
        while (start > 0 and end - start < 20 and norm[start - 1] not in _NAME_OPENER
               and re.match(_NAME_CHARS, norm[start - 1])):
            start -= 1
        return start if start < end - len(ending) else None
