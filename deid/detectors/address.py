"""ADDRESS: division names from the gazetteer, or an address cue (住址, 现住 ...), followed by
road / community / building / room components. Granularity decides the tier: an address that reaches
below county level (town, street, community, building, house number) is tier 1; one that stops at
province / city / district / county is tier 2. The span records its administrative prefixes with their
division levels (`admin_parts`: ("河北省", 1), ("河北省廊坊市", 2) ...) as text, not offsets, so they stay
true wherever the span is moved; the generalize operator keeps one of them.
"""
from __future__ import annotations

import re

from deid.detectors.base import Component, Document
from deid.gazetteer import Gazetteer
from deid.resources import Resources, alternation, combine_digests
from deid.spans import EntityType, Span, make_span
from deid.tiers import address_tier
from deid.vocabulary import ClinicalVocabulary, WordIndex

_CJK = r"\u4e00-\u9fa5"
_NUM = r"(?:[A-Za-z]{0,2}[0-9]+[A-Za-z]?|[一二三四五六七八九十百零〇两]+|[A-Za-z])"
# Characters that never occur inside a road or community name but often in the clinical text after a place.
_NOT_IN_NAME = "医诊治疗病症痛查患者因的了术椎骨腰胸腹肺肝肾脑哪"   # not 院 (濮院镇, 学院路) nor 行 (杭行路)
_NAME_PART = rf"(?:(?![{_NOT_IN_NAME}])[{_CJK}A-Za-z0-9]|(?<=[技艺美])术)"   # 经济技术开发区
# Units after a number that make it a count, an age, a time or a measure rather than a house or room number.
_TIME_UNIT = r"岁|天|年|月|日|次|小时|分"
_METRIC_UNIT = r"mg|ml|kg|cm|mm|g"
# A bare number closing an address that already has a fine component (幸福小区5栋302, 3单元502人).
_BARE_NUMBER = re.compile(rf"[A-Za-z]?[0-9]{{1,5}}(?![0-9.%])(?!\s?(?:{_TIME_UNIT}|{_METRIC_UNIT}))")
# One separator may stand between two components (2期 3栋, 7-2225, 136栋_5单元).
_JOINER = re.compile(r"[-_ ](?=[0-9A-Za-z一二三四五六七八九十\u4e00-\u9fa5])|、(?=[0-9A-Za-z])")   # 、 in 38F、17F
# A building number is an address on its own once a name stands before it (`_building`): not a date (2015-04-18)
# nor a range with a unit (尿量1000-1500ml).
_NOT_DATE = r"(?!(?:19|20)[0-9]{2}[-_][01]?[0-9][-_][0-3]?[0-9](?![0-9]))"
_NO_UNIT_AFTER = rf"(?![0-9.%A-Za-z])(?!\s?(?:{_TIME_UNIT}|周|秒|毫|克|升|米|厘|粒|片|支|袋|滴|度|℃))"


def _building(building: str, floor: str) -> str:
    """A building or floor number after a name (锦绣江南11幢, 江南4区71-11-1105, 龙祥园91-1846, 国贸名品九楼1363号);
    building and floor: the alternations of their units (address_units.tsv)."""
    return (rf"(?<=[{_CJK}]{{2}}){_NUM}\s?(?:{building})|"
            rf"(?<=[{_CJK}]{{2}})[0-9]{{1,4}}号(?=[0-9]{{2,4}}(?![0-9]))"
            rf"|(?<=[{_CJK}]{{2}}){_NUM}\s?(?:{floor}|F)(?=[A-Za-z]?[0-9]{{2,5}})"
            rf"|(?<=[{_CJK}]){_NOT_DATE}[0-9]{{1,4}}(?:[-_][0-9]{{1,4}}){{2}}{_NO_UNIT_AFTER}"
            rf"|(?<=[园苑区期城村庄府居庭湾座寓阁楼厦]){_NOT_DATE}[0-9]{{1,4}}[-_][0-9]{{3,4}}{_NO_UNIT_AFTER}")


# A native place at the head of a note: 患者，男，56岁，浙江省德清县钟管镇人，
_NATIVE_PLACE = re.compile(r"(?:岁|男|女|族)[，,]\s*(?=[^，,。；;\n]{2,30}人[，,。；;])")
_NAME_CHAR = re.compile(rf"[{_CJK}A-Za-z0-9]")
_CLAUSE_MARKS = set("，。,；;：:、（）() \t\n")
_DIVISION_NAME = re.compile(r"(?:镇|乡|村|街道)$")
# The rest of an address phrase once it is known to be one (a cue, or a component below county level): names
# with no suffix (仙浦, 莫家埭), shops and firms (东昌汽车销售公司), floors and rooms in any form (F1314, 4564档),
# up to clause punctuation, a clinical or narrative word, or a native-place 人 (德清县钟管镇人，).
_REST = re.compile(rf"(?:[{_CJK}A-Za-z0-9#·/]|[-_]+(?=[{_CJK}A-Za-z0-9])| (?=[A-Za-z0-9])|"
                   rf"(?<=[0-9A-Za-z号])、(?=[A-Za-z]?[0-9]))+")
_REST_MAX = 30
# A full date (2016-03-11, 2016.3.11) ends the phrase: no address holds a year, a month and a day.
_FULL_DATE = re.compile(r"(?:19|20)[0-9]{2}([-./])(?:0?[1-9]|1[0-2])\1(?:[0-2]?[0-9]|3[01])(?![0-9])")


class AddressDetector(Component):
    name = "address"
    entity_types = (EntityType.ADDRESS,)
    requires = ("ner",)   # a person the model names ends a phrase no cue introduced
    uses = ("gazetteer", "vocabulary", "resources")
    # How far a span is trusted: a division from the gazetteer in the phrase, or named and numbered components alone.
    SCORES = {"dictionary": 0.95, "pattern": 0.85}

    def __init__(self, gazetteer: Gazetteer | None = None, vocabulary: ClinicalVocabulary | None = None,
                 resources: Resources | None = None):
        files = resources or Resources.packaged()
        self.gazetteer = gazetteer or Gazetteer(files)
        self.vocabulary = vocabulary or ClinicalVocabulary(resources=files)
        verbs = files.load("lexicons/place_verbs.txt")
        cues = files.load("lexicons/address_cues.txt")
        endings = files.load("lexicons/place_endings.tsv")
        units = files.load("lexicons/address_units.tsv")
        stops = files.load("lexicons/address_stops.tsv")
        person = files.load("lexicons/person_context.tsv")
        self.version = combine_digests({r.name: r.digest for r in (verbs, cues, endings, units, stops, person)})
        self._verb = re.compile(alternation(verbs.words()))
        self._cue = re.compile(rf"(?:{alternation(cues.words())}|出生于(?![0-9])|"
                               rf"(?<![发产寄滋衍])生于(?![0-9]))\s*[:：]?\s*")
        named = alternation(endings.words("named"))
        unit = alternation(units.words("numbered")) + "|F(?![A-Za-z])"
        self._building = re.compile(_building(alternation(units.words("building")), alternation(units.words("floor"))))
        # A building, floor or room inside an institution named before it (温州市人民医院17幢11楼, 财经大学9号楼,
        # 医院住院部165层): the institution is its own span, the numbers after it are the address below it.
        self._inside_institution = re.compile(
            "(?:" + "|".join(f"(?<={re.escape(w)})" for w in sorted(endings.words("institution"))) + ")"
            rf"(?:{alternation(endings.words('institution_wing'))}|[行综]\w楼|[A-Z]区)?"
            rf"(?={_NUM}\s?(?:{alternation(units.words('institution_floor'))})(?!梯|道))")
        # A division's short name directly before one of these begins a road or a place (温州大道, 朝阳西路, 湖州街,
        # 天水家园, 杭州东站, 浙江师范大学), so generalize must not keep it as a division; nor is a province or city
        # after a county one (江北区|宁波利星).
        self._named_after_place = re.compile(
            rf"(?:[东西南北中]|[0-9一二三四五六七八九十]+)?(?:{alternation(endings.words('division_road'))})"
            rf"|{alternation(endings.words('division_place'))}"
            rf"|[东西南北]?(?:{alternation(endings.words('division_station'))})"
            rf"|(?:(?![省市县区])[{_CJK}]){{0,7}}?(?:{alternation(endings.words('division_site'))})")
        # Development zones, towns and roads may be named after a division, full name and all (平湖市经济开发区,
        # 祁县镇, 鄞县大道); a firm so named (台州市箭马缝纫机有限公司) keeps the division, which opens its address.
        self._named_after_full = re.compile(
            rf"(?:{alternation(endings.words('zone_qualifier'))})?(?:{alternation(endings.words('division_zone'))})"
            rf"|{alternation(endings.words('division_town'))}"
            rf"|[东西南北中]?(?:{alternation(endings.words('division_avenue'))})")
        # A named component: a name that ends in a place word (幸福小区), or in a numbered part (朝晖五区).
        self._named = re.compile(rf"{_NAME_PART}{{0,10}}?(?:{named})(?:{_NUM}(?:区|期|片|组|队|社))?"
                                 rf"|{_NAME_PART}{{1,8}}?(?:[0-9]+|[一二三四五六七八九十]+)(?:区|期|片|组|队|社)")
        # Numbered components in every written form: 27号, 3号楼, 二队, 13幢6单元1341房, 40-5-594, A座, 5层, 2期.
        self._numbered = re.compile(rf"{_NUM}\s?(?:{unit})|[0-9]+(?:\s?(?:-+|_|~)\s?[0-9]+){{1,3}}(?:号|室)?(?![0-9])"
                                    r"|[0-9]+(?:、[0-9]+)+(?:号|室)")   # 167、169、171号
        # What ends an address even when a place word follows: clause punctuation, a clinical or function word.
        self._stop_inside = re.compile(r"[，。,；;：:（）()\s]|(?<![0-9])、|、(?![0-9])|"
                                       r"" + alternation(stops.words("inside")))
        # Where an address starts with neither a division nor a cue: a road with a house number, or a named place
        # with a building or unit number (东明锦园7-2225, 国大全城小区136栋). The name is taken back to a clause
        # boundary.
        self._anchor = re.compile(rf"(?:{alternation(endings.words('anchor'))})"
                                  rf"(?=[-_ ]?{_NAME_PART}{{0,8}}?{_NUM}\s?(?:号|栋|幢|座|单元|弄|巷|期|队|组|区|楼|层)"
                                  rf"|[0-9]+[-_][0-9]|{_NAME_PART}{{1,8}}?(?:{named}))")
        # A road or place with a bare number of two digits or more (闻川路1722金乐染织有限公司, 宾虹路853OPPO体验店,
        # 南虹广场2153); not a count or a measure (静脉通路2条, 环路3圈, 通路16G). Road names hold herbs and plants
        # (香樟西大道, 丁香路), so a clinical word in the name does not veto it.
        self._place_number = re.compile(rf"(?:{alternation(endings.words('numbered'))})"
                                        r"(?=[0-9]{2,5}(?![0-9.%])(?![A-Za-z](?![A-Za-z]))"
                                        rf"(?!\s?(?:{_TIME_UNIT}|{_METRIC_UNIT}|[条支圈根个处枚例针周时秒度])))")
        # What ends the rest of an address phrase: a clinical, narrative or working word (address_stops.tsv), a
        # title or a verb of saying (person_context.tsv), and words that need a look around them: 与 unless a road
        # follows, 行 unless a bank (建行, 中行), 职工 unless its housing (职工住宅楼), 学生 unless 大学生, 人 ending a
        # word.
        self._rest_stop = re.compile(r"[因于在至去到者的了为及等被从向往]|与(?![^，。,；;与]{1,8}?(?:路|街|大道|线))"
                                     r"|(?<![银商车发支分建中工农交招])行(?!政|业)|(?:职工|员工)(?!住宅|宿舍|公寓|新村|小区|楼|之家)"
                                     r"|(?<!大)学生|人(?=$|[^\u4e00-\u9fa5A-Za-z0-9])|"
                                     + alternation(stops.words("rest") + person.words("place_end")))
        # The rest of a phrase after a stop word is still a place when it is all named and numbered components: then
        # the word is part of a name (四季青常青六楼4564档, 会龙乡于庄村黄庄114号), not the clinical clause it usually
        # begins. Shops, firms and institutions close a place name too (万通锁行, 清绿茶叶店, 克拉玛依校区).
        business = alternation(endings.words("business"))
        self._place_tail = re.compile(rf"(?:{_NUM}\s?(?:{unit})|[0-9]+(?:[-_][0-9]+)*"
                                      rf"|(?:(?![的了症痛疗查哪那])[{_CJK}A-Za-z]){{0,8}}?(?:{named}|{business})"
                                      rf"|[{_CJK}]{{1,8}}?[0-9]+(?:号|号楼|栋|幢|单元|室)|"
                                      rf"[{_CJK}]{{1,8}}?[0-9]{{2,5}}(?![0-9]))+")   # 陈家12号
        # What makes the words after a bare cue an address: a number or a place word.
        self._place_evidence = re.compile(rf"[0-9]|{named}")

    def _begins_named_place(self, norm: str, place, end: int) -> bool:
        """A division's short name that begins a road or place (温州大道, 朝阳西路, 河南村, 浙江师范大学); a full name
        (浙江省, 西湖区) is the division itself, except as the name of a zone, town or road (永康市经济开发区)."""
        if place.name.endswith(("省", "市", "县", "区")):
            return bool(self._named_after_full.match(norm, end))
        return bool(self._named_after_place.match(norm, end))

    def detect(self, doc: Document) -> list[Span]:
        text, norm = doc.text, doc.norm
        starts: dict[int, str] = {}
        # a cue decides how far the phrase runs, so it is recorded before a division starting at the same place
        for m in (*self._cue.finditer(norm), *_NATIVE_PLACE.finditer(norm)):
            starts.setdefault(m.end(), "cue")
        clinical = self.vocabulary.of(doc)
        persons = [s for s, _e in doc.ner_of("PER")]
        anchored: set[int] = set()   # starts a named place also opens, whatever opened them first
        for s, e, place in self.gazetteer.find(norm):
            if any(cs <= s < ce and ce > e for cs, ce in clinical.near(s, e)):   # 长春 of 长春胺
                continue
            if (not place.name.endswith(("省", "市", "县", "区"))
                    and self.vocabulary.treated_with.search(norm, max(0, s - 3), s)):
                continue   # 口服瑞宁德: a drug, not 宁德
            starts.setdefault(s, "gazetteer")
            if self._begins_named_place(norm, place, e):   # 杭州学院路, 鄞县大道: the division's name begins a place
                anchored.add(s)
        named_buildings: dict[int, int] = {}   # name start -> where its building number begins
        for m in self._inside_institution.finditer(norm):
            starts.setdefault(m.start(), "anchor")
            named_buildings.setdefault(m.start(), m.end())   # 住院部|165层
        for m in (*self._anchor.finditer(norm), *self._place_number.finditer(norm), *self._building.finditer(norm)):
            # a place named before a building may be long (洪家星星电子产业基地A11幢)
            name_start = self._name_start(norm, m.start(), 12 if m.re is self._building else 8)
            if m.start() - name_start >= 2 or m.re is not self._building:
                starts.setdefault(name_start, "anchor")
                anchored.add(name_start)
            if m.re is self._building and m.start() - name_start >= 2:
                named_buildings.setdefault(name_start, m.start())
        spans: list[Span] = []
        covered_to = -1
        for start in sorted(starts):
            if start < covered_to:
                continue
            built = self._extend(norm, start)
            if built is None and start in named_buildings:   # 锦绣江南11幢九单元2112: a name with no place ending
                built = self._extend(norm, named_buildings[start])
            if built is None and starts[start] == "cue":   # 家住甘家边东995号: a cue alone opens the phrase
                built = (start, [], False, False, [(start, start, "cue")])
            if built is None:
                continue
            end, admin_parts, fine, has_admin, evidence = built
            if not has_admin and starts[start] == "gazetteer" and start not in anchored:
                continue
            rest = self._rest(norm, end, starts[start] == "cue", fine, persons, clinical)
            if rest > end:   # the rest of the phrase, and the numbers and place words in it
                evidence += [(end, rest, "rest"), *((m.start(), m.end(), "number" if m.group().isdigit() else "named")
                                                    for m in self._place_evidence.finditer(norm, end, rest))]
                end, fine = rest, True
            if not has_admin and not fine or end == start:
                continue
            if not has_admin and starts[start] == "cue" and not self._place_evidence.search(norm, start, end):
                continue   # 家住本地, 现住院: a cue and a word, not an address
            tier = address_tier(fine)
            opened_by = "" if starts[start] == "gazetteer" else "_" + starts[start]
            why = ("address.fine" if fine else "address.admin") + opened_by
            kind = "dictionary" if has_admin else "pattern"
            spans.append(make_span(text, start, end, EntityType.ADDRESS, tier, kind, self.SCORES[kind], why,
                                   admin_parts=tuple((text[start:part_end], level) for part_end, level in admin_parts),
                                   granularity="fine" if fine else "admin",
                                   evidence=tuple((s - start, e - start, kind) for s, e, kind in evidence if e <= end)))
            covered_to = end
        return spans

    def _rest(self, norm: str, pos: int, cue: bool, fine: bool, persons: list[int],
              clinical: WordIndex) -> int:
        """End of the address phrase from pos: up to clause punctuation, a clinical or narrative word (附近, 就诊,
        总经理, 表示 ...), or a person the NER model names. After a cue or a component below county level the phrase
        goes on to its end; after a bare county only when a number is in it (下石演590), so 江汉区退休工人 stays a
        county."""
        m = _REST.match(norm, pos, min(len(norm), pos + _REST_MAX))
        if not m:
            return pos
        end = m.end()
        if date := _FULL_DATE.search(norm, pos, end):
            end = date.start()
        stops = sorted({*(w.span() for w in self._rest_stop.finditer(norm, pos, end)),
                        *((s, e) for s, e in clinical.starting_in(pos, end) if e - s >= 3)})
        for s, e in stops:   # a stop word followed, up to the next one, by a place is part of its name
            nxt = next((s2 for s2, _e2 in stops if s2 >= e), end)
            if nxt <= e or not self._tail_is_place(norm, s, nxt):   # (a place word after it: not 中心|行|手术)
                end = s
                break
        # a person the model names ends a phrase no cue introduced (北京大观园管委会主任马俊潼)
        # (not a shop's name right after a house number: 拥军路1279号大盈袜业)
        end = min([end, *(p for p in persons if pos <= p < end and not cue and not self._tail_is_place(norm, p, end)
                          and not (p and norm[p - 1] in "0123456789号-_"))])
        while end > pos and norm[end - 1] in "-_ ":
            end -= 1
        if not (cue or fine) and not any(c.isdigit() for c in norm[pos:end]) and not (
                end - pos >= 3 and self._tail_is_place(norm, pos, end)):
            return pos   # after a bare county only a number or a named place goes on (江汉区退休工人 stops)
        return end

    def _tail_is_place(self, norm: str, start: int, end: int) -> bool:
        m = self._place_tail.match(norm, start, end)
        return bool(m) and m.end() == end

    def _stopped(self, component: str) -> bool:
        """A clinical word or clause mark inside a component ends the address; a single function character does
        not inside a town or village name (于潜镇, 在城乡)."""
        stop = self._stop_inside.search(component)
        return bool(stop) and not (len(stop.group()) == 1 and stop.group() not in _CLAUSE_MARKS
                                   and _DIVISION_NAME.search(component))

    def _name_start(self, norm: str, suffix_start: int, reach: int) -> int:
        """Where the name ending at a road or place suffix begins: back over name characters to a boundary, and
        after a verb that stands before a place (乘坐|陕A1F52N, 拨打|138-1234-5678, 转入|...)."""
        start = suffix_start
        while start > 0 and suffix_start - start < reach and _NAME_CHAR.match(norm[start - 1]):
            start -= 1
        window = max(0, start - 6)   # a cue may begin before the name does (现住|金华义乌市城北路)
        stops = [m.end() for rx in (self._stop_inside, self._cue) for m in rx.finditer(norm, window, suffix_start)]
        # a verb may hold the suffix itself (路过|金华大厦: 路 is no road there)
        stops += [m.end() for m in self._verb.finditer(norm, window, suffix_start + 2) if m.start() <= suffix_start]
        return max([start, *stops])

    def _extend(self, norm: str, start: int):
        """(end, admin_parts, fine, has_admin, evidence) of the components from start, or None. `evidence` lists
        each component (start, end, admin | named | number): what makes each part of the phrase an address, so that
        merge can tell which part still is one where another detector's span takes some of it."""
        pos, admin_parts, fine, has_admin, evidence = start, [], False, False, []
        while pos < len(norm):
            hit = self.gazetteer.match_at(norm, pos)
            if hit and (self._begins_named_place(norm, hit[1], hit[0])
                        or admin_parts and hit[1].level < admin_parts[-1][1]):
                hit = None   # 温州大道, 湖州街, 天水家园; 江北区|宁波利星公司: a name that begins with a division's
            if hit and not fine:
                evidence.append((pos, hit[0], "admin"))
                pos, has_admin = hit[0], True
                admin_parts.append((pos, hit[1].level))
                continue
            numbered = self._numbered.match(norm, pos)
            m = numbered or self._named.match(norm, pos) or (fine and _BARE_NUMBER.match(norm, pos))
            if m and not self._stopped(m.group()):
                evidence.append((pos, m.end(), "named" if m.re is self._named else "number"))
                pos, fine = m.end(), True
                continue
            if hit:  # a division name after a fine component (e.g. 某某路 in 某某区) still belongs
                evidence.append((pos, hit[0], "admin"))
                pos = hit[0]
                continue
            joined = (fine or admin_parts) and _JOINER.match(norm, pos)   # 广东省-广州市-白云区, 2期 3栋
            if joined and joined.group() == "、":   # a list of numbers (38F、17F), not of places
                nxt = fine and self._numbered.match(norm, pos + 1)
                if nxt:
                    evidence.append((pos + 1, nxt.end(), "number"))
                    pos = nxt.end()
                    continue
            elif joined:   # a separator counts only when a component follows it
                nxt = self._numbered.match(norm, pos + 1) or self._named.match(norm, pos + 1) or (
                    fine and _BARE_NUMBER.match(norm, pos + 1))
                if nxt and not self._stopped(nxt.group()):
                    evidence.append((pos + 1, nxt.end(), "named" if nxt.re is self._named else "number"))
                    pos, fine = nxt.end(), True
                    continue
                if self.gazetteer.match_at(norm, pos + 1):
                    pos += 1
                    continue
            break
        if pos == start:
            return None
        return pos, admin_parts, fine, has_admin, evidence
