"""The real-context set: real EMR notes with real PHI values placed where clinical notes put them.

cEHRNER train's de-identified notes (`cehr_train`) keep their text and labelled clinical mentions; into each the
generator writes a header (姓名/性别/年龄/科室/床号/住院号, admission date, ID or document number, phone, address,
health-plan card), the hospitals the corpus starred out (`***医院`, `在**就诊`) and some of its `外院`, a name after
a `患者` cue, history sentences about relatives, contacts, addresses, earlier hospital stays, an accident or a
refund, and a signature line. The values come from allowed real sources only:
- person names: CLUENER train sentences 2,001-3,000 (the dev split of the name work; sentences 1-2,000 are held
  back and never read here, the rest trained the name model), those written in Chinese characters as a Chinese
  record writes a name (a transliteration's interpunct allowed);
- addresses: the address train split (`address_train`), tier 1 when they hold a part below county level;
- health institutions: every second distinct name of a public list of Chinese hospitals (`hospitals`; the other
  half is held back for a later check and not used);
- phones, ID numbers, record, card, certificate and plate numbers: the project's format generators (deid.synth).

`types` lists the types placed, labelled exhaustively; dates placed in the header and signature are gold spans
(recall only: the notes' own dates are not labelled). Deterministic for a seed.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

from deid.corpora import FINE_PARTS, address_components, cehr_notes
from deid.synth import vocab as V
from deid.synth.generator import NoteBuilder, Synth

CORPUS = "real_context"
PLACED_TYPES = ["NAME", "ADDRESS", "HOSPITAL", "CONTACT", "ID_NUMBER", "RECORD_ID", "ACCOUNT", "CERTIFICATE",
                "VEHICLE"]
NAME_DEV_LINES = range(2000, 3000)   # 0-based lines of CLUENER train: its sentences 2,001-3,000

# A name as a Chinese record writes it: Chinese characters, a transliteration's interpunct inside.
_CHINESE_NAME = re.compile(r"[\u4e00-\u9fff]+(?:[·•][\u4e00-\u9fff]+)*")
_FACILITY_END = re.compile(r"(?:院|中心|所|站|部)$")
# A school or a firm in the list (乐山职业技术学院) is no health facility.
_HEALTH_WORD = re.compile(r"医|卫生|保健|诊|疗|康复|防治|防疫|疾病|血")
_BRACKETED = re.compile(r"[（(][^）)]*[）)]$")
# Hospitals the corpus starred out: `***医院`, `*二院`, or the stars alone where a visit follows (在**就诊).
_STARRED = re.compile(r"(?<![0-9.a-zA-Z)）*])\*+(?:医院|[一二三四五六七八九十]院)"
                      r"|(?<=[在于到入至])\*+(?=就诊|住院|行|检查|复查)")
_OUTSIDE_HOSPITAL = "外院"
_PATIENT_CUE = re.compile(r"患者(?=[于因自为近再此本入出发现术无精一病感未拒行反化受诉及])")


def cluener_dev_names(raw: str) -> list[str]:
    """Distinct person names of CLUENER train sentences 2,001-3,000 written in Chinese characters, in order."""
    lines = raw.splitlines()[NAME_DEV_LINES.start:NAME_DEV_LINES.stop]
    names: dict[str, None] = {}
    for line in lines:
        for name in json.loads(line).get("label", {}).get("name", {}):
            if 2 <= len(name) <= 8 and _CHINESE_NAME.fullmatch(name):
                names[name] = None
    return list(names)


def train_addresses(raw: str) -> list[tuple[str, int]]:
    """(address, tier) of each labelled address of the address train split, trimmed as the address corpus is."""
    return [("".join(t for _, t in comps), 1 if any(label in FINE_PARTS for label, _ in comps) else 2)
            for comps in address_components(raw) if comps]


def hospital_names(raw: str) -> list[str]:
    """Every second distinct institution name of the hospital list (file order), kept when it holds a health word
    and ends in a facility word once a bracketed campus is set aside; the other half is held back."""
    data = json.loads(raw)
    distinct = dict.fromkeys(h["name"].strip() for p in data["provinceList"] for c in p["cityList"]
                             for h in c["hospitalList"])
    return [n for n in list(distinct)[::2]
            if _FACILITY_END.search(_BRACKETED.sub("", n)) and _HEALTH_WORD.search(n)]


# Sentences a history writes about relatives, contacts, addresses, earlier stays: {r} relation, {n} name,
# {c} contact, {a} address, {h} hospital.
RELATIVE_LINES = ("{r}{n}陪同入院，联系电话：{c}。", "病史由{r}{n}代诉，可靠。", "家属{n}（{r}）电话{c}。",
                  "已向患者{r}{n}交代病情及风险，{n}表示理解并签字。", "家属电话：{c}。", "患者{r}{n}签字同意手术。",
                  "与家属{n}沟通病情，联系方式：{c}。", "{r}{n}，手机{c}，", "紧急联系人：{n}（{r}），{c}。")
ADDRESS_LINES = ("患者家住{a}，", "现居住于{a}。", "户籍地址：{a}。", "家属住址：{a}，")
HOSPITAL_LINES = ("曾于{h}就诊，", "{k}月前于{h}住院治疗，", "外院（{h}）检查提示异常，", "转诊自{h}。")
SIGNATURE_CUES = ("医师签名：", "记录者：", "主治医师：", "书写者：")


class ContextWriter:
    """Places values into one real note at a time (edits at clause ends, cues and starred hospitals)."""

    def __init__(self, names, addresses, hospitals, seed: int):
        self.s = Synth(seed)
        self.rng = self.s.rng
        self.names, self.addresses, self.hospitals = names, addresses, hospitals

    # -- values --------------------------------------------------------------------------------------
    def name(self, b: NoteBuilder) -> str:
        name = self.rng.choice(self.names)
        b.entity(name, "NAME")
        return name

    def hospital(self, b: NoteBuilder) -> None:
        b.entity(self.rng.choice(self.hospitals), "HOSPITAL")

    def address(self, b: NoteBuilder) -> None:
        address, tier = self.rng.choice(self.addresses)
        b.entity(address, "ADDRESS", tier)

    def fill(self, b: NoteBuilder, template: str, fields: dict) -> None:
        """A template's text with its {fields} written through their writers (each one a gold span)."""
        for piece in re.split(r"(\{\w+\})", template):
            if piece.startswith("{") and piece.endswith("}"):
                fields[piece[1:-1]](b)
            else:
                b.add(piece)

    # -- one note ------------------------------------------------------------------------------------
    def write(self, text: str, clinical: list[dict]) -> tuple[NoteBuilder, list[dict]]:
        r, b = self.rng, NoteBuilder()
        base = datetime(2014, 1, 1) + timedelta(minutes=r.randrange(0, 60 * 24 * 365 * 6))
        self.header(b, base)
        edits = self.body_edits(text, clinical)
        pos, moved = 0, []
        shifts = []   # (original position, new position) where each copied stretch starts
        for start, end, writer in edits:
            shifts.append((pos, b.length))
            b.add(text[pos:start])
            writer(b)
            pos = end
        shifts.append((pos, b.length))
        b.add(text[pos:])
        for m in clinical:
            orig, new = max(sh for sh in shifts if sh[0] <= m["start"])
            moved.append({**m, "start": m["start"] - orig + new, "end": m["end"] - orig + new})
        self.signature(b, base)
        return b, moved

    def header(self, b: NoteBuilder, base: datetime) -> None:
        r, s = self.rng, self.s
        b.add("姓名：")
        self.name(b)
        b.add(f"  性别：{r.choice('男女')}  年龄：{r.randrange(18, 90)}岁  科室：{r.choice(V.DEPARTMENTS)}  "
              f"床号：{r.randrange(1, 60)}床  住院号：")
        b.entity(s.fill(r.choice(V.HEADER_RECORD_FORMS["住院号"]), base.year), "RECORD_ID").add("\n")
        fields = []   # (cue, type, value) of the second header line
        if r.random() < 0.6:
            fields.append(("入院日期", "DATE", s.header_date(base, r.random() < 0.6)))
        document = s.document()
        if document:
            fields.append((document[1], "CERTIFICATE", document[2]))
        elif r.random() < 0.6:
            fields.append(("身份证号", "ID_NUMBER", s.id_number()))
        if r.random() < 0.7:
            fields.append((r.choice(["联系电话", "手机", "电话"]), "CONTACT", s.contact()))
        if r.random() < 0.2:
            fields.append(("医保卡号", "RECORD_ID", s.fill(r.choice(["{d12}", "{d4} {d4} {d4}", "{L}{d8}"]))))
        for i, (cue, entity_type, value) in enumerate(fields):
            b.add(("  " if i else "") + f"{cue}：").entity(value, entity_type)
        if fields:
            b.add("\n")
        if r.random() < 0.5:
            b.add(r.choice(["现住址：", "家庭住址：", "住址："]))
            self.address(b)
            b.add("\n")

    def body_edits(self, text: str, clinical: list[dict]) -> list[tuple[int, int, object]]:
        """(start, end, writer) edits of the real text, in order, none inside a labelled mention or another edit."""
        r = self.rng
        inside = [(m["start"], m["end"]) for m in clinical]

        def free(start: int, end: int) -> bool:   # an insertion (start == end) must not split a mention
            return not any(s < end and start < e if end > start else s < start < e for s, e in inside)

        edits = [(m.start(), m.end(), self.hospital) for m in _STARRED.finditer(text)]
        edits += [(m.start(), m.end(), self.hospital) for m in re.finditer(_OUTSIDE_HOSPITAL, text)
                  if r.random() < 0.3]
        cue = _PATIENT_CUE.search(text)
        if cue and r.random() < 0.5:
            edits.append((cue.end(), cue.end(), self.name))
        ends = [m.end() for m in re.finditer("。", text)]
        for at in r.sample(ends, min(len(ends), r.randrange(1, 4))):
            edits.append((at, at, self.history_line()))
        kept, last = [], -1
        for edit in sorted(edits, key=lambda e: (e[0], e[1])):
            if edit[0] >= last and free(edit[0], edit[1]):
                kept.append(edit)
                last = max(edit[1], edit[0] + 1)
        return kept

    def history_line(self):
        """A writer of one history sentence about relatives, an address, a stay, an accident or a refund."""
        r, s = self.rng, self.s
        fields = {"r": lambda b: b.add(r.choice(V.RELATIONS)), "n": self.name, "a": self.address,
                  "h": self.hospital, "k": lambda b: b.add(str(r.randrange(1, 13))),
                  "c": lambda b: b.entity(s.contact(), "CONTACT")}
        kind = r.random()
        if kind < 0.45:
            template = r.choice(RELATIVE_LINES)
        elif kind < 0.6:
            template = r.choice(ADDRESS_LINES)
        elif kind < 0.8:
            template = r.choice(HOSPITAL_LINES)
        elif kind < 0.9:
            before, after = r.choice(V.ACCIDENT_CONTEXTS).replace("{vehicle}", r.choice(V.VEHICLES)).split("{plate}")
            template = f"{r.randrange(1, 30)}天前{before}{{p}}{after}。"
            fields["p"] = lambda b: b.entity(s.plate() if r.random() < 0.85 else s.vin(), "VEHICLE")
        else:
            bank, bin_ = r.choice(V.BANK_CARDS)
            template = f"家属要求退费，开户银行：{bank}，{r.choice(V.ACCOUNT_CUES)}：{{x}}。"
            fields["x"] = lambda b: b.entity(s.bank_card(bin_), "ACCOUNT")
        return lambda b: self.fill(b, template, fields)

    def signature(self, b: NoteBuilder, base: datetime) -> None:
        r, s = self.rng, self.s
        if r.random() >= 0.9:
            return
        b.add("\n" + r.choice(SIGNATURE_CUES))
        self.name(b)
        if r.random() < 0.2:
            cue, template = r.choice(V.PRACTICE_CERTIFICATES)
            b.add(f"（{cue}：").entity(s.fill(template, base.year), "CERTIFICATE").add("）")
        if r.random() < 0.5:
            b.add("  上级医师：")
            self.name(b)
        b.add("  ").entity(s.date(base + timedelta(minutes=r.randrange(10, 600)), timed=r.random() < 0.8), "DATE")


def context_notes(cehr_raw: str, names: list[str], addresses: list[tuple[str, int]], hospitals: list[str],
                  seed: int = 2025) -> list[dict]:
    """The real-context gold notes: each cEHRNER note with values placed, its clinical mentions moved along."""
    writer = ContextWriter(names, addresses, hospitals, seed)
    notes = []
    for note in cehr_notes(cehr_raw, CORPUS):
        b, moved = writer.write(note["text"], note["clinical"])
        notes.append({**note, "text": b.text, "types": PLACED_TYPES, "spans": b.spans, "clinical": moved})
    return notes
