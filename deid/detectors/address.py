"""ADDRESS: division names from the gazetteer, or an address cue (住址, 现住 ...), followed by
road / community / building / room components. Granularity decides the tier: an address that reaches
below county level (town, street, community, building, house number) is tier 1; one that stops at
province / city / district / county is tier 2. The span records its administrative prefixes with their
division levels (`admin_parts`: ("河北省", 1), ("河北省廊坊市", 2) ...) as text, not offsets, so they stay
true wherever the span is moved; the generalize operator keeps one of them.
"""
from __future__ import annotations

import re

from deid.detectors.base import Document
from deid.gazetteer import Gazetteer
from deid.spans import EntityType, Span, make_span
from deid.tiers import address_tier

_CUE = re.compile(r"(?:现住址|家庭住址|家庭地址|户籍地址|户口所在地|通讯地址|联系地址|居住地址|工作单位地址|住址|地址|现住|家住|住在|居住于|现居住于|现居于|现居|户籍地|籍贯|出生地)\s*[:：]?\s*")
_CJK = r"\u4e00-\u9fa5"
_FINE_SUFFIX = (r"街道办事处|街道|镇|乡|村委会|村民委员会|居委会|社区|小区|花园|家园|公寓|大厦|广场|新村|新城|"
                r"大街|大道|路|街|巷|弄|胡同|里|苑|庄|屯|组|工业区|开发区|园区|园")
# A named component: a few CJK/alnum chars ending in a fine-grained suffix.
# Characters that never occur inside a road or community name but often in the clinical text after a place.
_NOT_IN_NAME = "医院诊治疗病症痛查患者因的了行术椎骨腰胸腹肺肝肾脑"
_NAMED = re.compile(rf"(?:(?![{_NOT_IN_NAME}])[{_CJK}A-Za-z0-9]){{0,10}}?(?:{_FINE_SUFFIX})")
# A numbered component: 27号, 3号楼, 2单元, 501室, 12栋, 3-2-501, A座, 5层.
_NUMBERED = re.compile(rf"(?:[0-9]+(?:[-—][0-9]+)*|[一二三四五六七八九十百零〇]+|[A-Za-z])\s?"
                       rf"(?:号院|号楼|号|栋|幢|座|单元|室|层|楼|弄|巷|组|期|区|排|户|段)"
                       rf"|[0-9]+(?:-[0-9]+){{1,3}}(?![0-9])")
# A bare room number closing an address that already has a fine component (幸福小区5栋302).
_BARE_NUMBER = re.compile(r"[0-9]{1,5}(?=$|[，。,；;、\s)）])")
# Words that end an address even when a suffix char follows (a clinical clause, not a place).
_STOP_INSIDE = re.compile(r"[，。,；;：:、（）()\s]|患者|就诊|入院|医院|门诊|科室|出院|住院|诊断|治疗|检查|手术|因|于|在|至|去|到|者|的|了|为|及|与|等")


class AddressDetector:
    name = "address"

    def __init__(self, gazetteer: Gazetteer | None = None):
        self.gazetteer = gazetteer or Gazetteer()

    def detect(self, doc: Document) -> list[Span]:
        text, norm = doc.text, doc.norm
        starts: dict[int, str] = {}
        for s, _e, _p in self.gazetteer.find(norm):
            starts.setdefault(s, "gazetteer")
        for m in _CUE.finditer(norm):
            starts.setdefault(m.end(), "cue")
        spans: list[Span] = []
        covered_to = -1
        for start in sorted(starts):
            if start < covered_to:
                continue
            built = self._extend(norm, start)
            if built is None:
                continue
            end, admin_parts, fine, has_admin = built
            if not has_admin and starts[start] != "cue":
                continue
            if not has_admin and not fine:
                continue
            tier = address_tier(fine)
            why = ("address.fine" if fine else "address.admin") + ("_cue" if starts[start] == "cue" else "")
            spans.append(make_span(text, start, end, EntityType.ADDRESS, tier, "dictionary" if has_admin else "pattern",
                                   0.95 if has_admin else 0.85, why,
                                   admin_parts=tuple((text[start:part_end], level) for part_end, level in admin_parts),
                                   granularity="fine" if fine else "admin"))
            covered_to = end
        return spans

    def _extend(self, norm: str, start: int):
        pos, admin_parts, fine, has_admin = start, [], False, False
        while pos < len(norm):
            hit = self.gazetteer.match_at(norm, pos)
            if hit and not fine:
                pos, has_admin = hit[0], True
                admin_parts.append((pos, hit[1].level))
                continue
            m = _NUMBERED.match(norm, pos) or _NAMED.match(norm, pos) or (fine and _BARE_NUMBER.match(norm, pos))
            if m and not _STOP_INSIDE.search(m.group()):
                pos, fine = m.end(), True
                continue
            if hit:  # a division name after a fine component (e.g. 某某路 in 某某区) still belongs
                pos = hit[0]
                continue
            break
        if pos == start:
            return None
        return pos, admin_parts, fine, has_admin
