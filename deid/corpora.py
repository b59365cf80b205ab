"""Converters from public real-text corpora to the gold JSONL that `deid eval` and `deid eval-real` read.

None of the data is in this repository: each corpus is read from `$DEID_REAL_DATA/<repository>/<path>` (a
clone or an export of the public repository named in SOURCES), checked against the SHA-256 recorded here, and
converted in memory. A gold note is `{"id", "corpus", "text", "spans", "types"}` plus, where the corpus can
show it, `parts` (address components below county level) and `clinical` (third-party clinical mentions, to
count certain false positives). `types` names the entity types the corpus labels exhaustively: recall and
precision are only reported for those.

Only the development splits are listed; the other splits of these corpora are held out and never read.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

REAL_DATA_ENV = "DEID_REAL_DATA"


@dataclass(frozen=True)
class Source:
    repo: str          # owner/name on GitHub
    path: str          # file inside the repository
    sha256: str        # of the file at the commit the figures were measured on

    def location(self, root: Path) -> Path:
        return root / self.repo.split("/")[1] / self.path


SOURCES = {
    "address_train": Source("leodotnet/neural-chinese-address-parsing", "data/train.txt",
                            "a2eab8e29c8d114a7bde9ea881355e38d79a08b0f190c4e253ce0e1068b3d1ac"),
    "address_dev": Source("leodotnet/neural-chinese-address-parsing", "data/dev.txt",
                          "8e3b1b56ab517ba4657a881e32eeca7ec839706fc858cbda554c0d107e98b354"),
    "cluener_train": Source("hemingkx/CLUENER2020", "BERT-CRF/data/clue/train.json",
                            "b7e9f0802e86943c8af76f8375ae5ed00f15703484092e81579f241db4d0664a"),
    "cehr_train": Source("alibaba-research/ChineseBLUE", "data/cEHRNER/train.json",
                         "6b7cf54ef45f4169e36eb05bfbb50673ab341f44d0d3d1c9d0a1de0d0c1ea648"),
    "cmedqa_train": Source("alibaba-research/ChineseBLUE", "data/cMedQANER/train.json",
                           "9f870d341433a921604fef9120a81a4f9b6027fee8acb13728610e033f0c09e1"),
    # The national clinical edition 2.0 (MIT, hint-lab); resources/dictionaries/icd10_sensitive.tsv is made from it.
    "icd_clinical2": Source("hint-lab/chinese-medical-kg", "data/国家临床版2.0疾病诊断编码（ICD-10）.xlsx",
                            "194d22bbb25bc94dd80c49f603fd59ccfd6f660bbb303a387d19dccbd44c48fb"),
    # Another edition (v6.01), not in any dictionary: the check that the rules generalize past one code table.
    "icd_v601": Source("yilane/rag-project-icd10", "data/ICD_10v601.csv",
                       "2b374f6b3982741d7d8bae680769d6bc2430a8e8fbfe7bb2c0407b5eaddbd663"),
    # Fever clinics and designated hospitals of 300+ cities, from the national population health data centre and
    # the local health commissions (MIT, hhui64; commit fd2a277792b9ff50fe8dd3e8e13c650b397dac1a): the hospital
    # names of the real-context set (deid.realcontext), which reads every second distinct name.
    "hospitals": Source("hhui64/wuhan2020map", "src/assets/json/data_20200211030250.json",
                        "37dd38df95362c0fc3a230a43d1dd5a97d176f50872432ba93bdc129a71c2efc"),
}


class SourceMismatch(ValueError):
    pass


def read_source(key: str, root: Path) -> bytes | None:
    """The file's bytes, None when it is not there; SourceMismatch when it is not the file we measured."""
    src = SOURCES[key]
    path = src.location(root)
    if not path.is_file():
        return None
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != src.sha256:
        raise SourceMismatch(f"{path}: SHA-256 {digest[:12]}... is not the recorded {src.sha256[:12]}... "
                             f"({src.repo} {src.path})")
    return data


def _span(text: str, start: int, end: int, entity_type: str, tier: int) -> dict:
    return {"start": start, "end": end, "type": entity_type, "tier": tier, "text": text[start:end]}


# -- addresses: BIO-labelled delivery addresses set in clinical sentences -----------------------------------
# Components below county level: a household can be found from these.
FINE_PARTS = frozenset({"devzone", "town", "community", "road", "subroad", "roadno", "subroadno", "poi", "subpoi",
                        "houseno", "cellno", "floorno", "roomno"})
_NOT_ADDRESS = frozenset({"person", "otherinfo", "assist", "redundant"})   # trimmed from either end

# Sentences a clinician writes around an address; `cue` says whether an address cue introduces it.
ADDRESS_TEMPLATES = (
    ("现住{a}，", True), ("家住{a}，3天前出现发热。", True), ("户籍地址：{a}。", True), ("联系地址：{a}", True),
    ("患者，男，56岁，{a}人，因胸痛2小时入院。", True), ("住址：{a}；联系电话见病案首页。", True),
    ("患者平素居住于{a}，否认疫区接触史。", True), ("出生于{a}，久居本地。", True),
    ("患者于今日下午在{a}附近被电动车撞伤。", False), ("{a}", False), ("救护车从{a}接回，", False),
)


def _bio_sentences(text: str):
    sent = []
    for line in text.splitlines():
        if not line.strip():
            if sent:
                yield sent
            sent = []
            continue
        token, label = line.rsplit(" ", 1)
        sent.append((token, label))
    if sent:
        yield sent


def _components(sent) -> list[tuple[str, str]]:
    """(label, text) per component, labels lower-cased."""
    parts: list[list[str]] = []
    for token, label in sent:
        tag, _, name = label.partition("-")
        if tag == "B" or not parts or parts[-1][0] != name.lower():
            parts.append([name.lower(), token])
        else:
            parts[-1][1] += token
    return [(label, text) for label, text in parts]


def address_components(raw: str) -> list[list[tuple[str, str]]]:
    """The (label, text) components of each labelled address of the BIO file, what is no address trimmed from
    either end (a sentence left with none gives an empty list)."""
    out = []
    for sent in _bio_sentences(raw):
        comps = _components(sent)
        while comps and comps[0][0] in _NOT_ADDRESS:
            comps.pop(0)
        while comps and comps[-1][0] in _NOT_ADDRESS:
            comps.pop()
        out.append(comps)
    return out


def address_notes(raw: str, corpus: str, seed: int = 2025) -> list[dict]:
    rng = random.Random(seed)
    notes = []
    for i, comps in enumerate(address_components(raw)):
        if not comps:
            continue
        template, cue = ADDRESS_TEMPLATES[rng.randrange(len(ADDRESS_TEMPLATES))]
        address = "".join(t for _, t in comps)
        head = template.index("{a}")
        text = template.replace("{a}", address)
        parts, pos = [], head
        for label, t in comps:
            if label in FINE_PARTS:
                parts.append({"start": pos, "end": pos + len(t), "label": label, "text": t})
            pos += len(t)
        tier = 1 if parts else 2
        notes.append({"id": f"{corpus}-{i}", "corpus": corpus, "text": text, "cue": cue, "types": ["ADDRESS"],
                      "spans": [_span(text, head, head + len(address), "ADDRESS", tier)], "parts": parts})
    return notes


def _json_rows(raw: str):
    """(line number, object) of each non-empty line of a JSON-lines file."""
    for i, line in enumerate(raw.splitlines()):
        if line.strip():
            yield i, json.loads(line)


def _mention(text: str, mention: dict) -> tuple[int, int] | None:
    """(start, end) of a ChineseBLUE mention, None when its offset does not point at its text."""
    start = int(mention["offset"])
    end = start + len(mention["mention"])
    return (start, end) if text[start:end] == mention["mention"] else None


# -- CLUENER: names in free prose (news, finance, games) ---------------------------------------------------
def cluener_notes(raw: str, corpus: str) -> list[dict]:
    notes = []
    for i, row in _json_rows(raw):
        text = row["text"]
        spans = []
        for _surface, offsets in row.get("label", {}).get("name", {}).items():
            for start, last in offsets:
                spans.append(_span(text, start, last + 1, "NAME", 1))
        notes.append({"id": f"{corpus}-{i}", "corpus": corpus, "text": text, "types": ["NAME"],
                      "spans": sorted(spans, key=lambda s: s["start"])})
    return notes


# -- cEHRNER: real de-identified EMR text with clinical mentions ------------------------------------------
def cehr_notes(raw: str, corpus: str) -> list[dict]:
    """No PHI is labelled (the text is de-identified); its clinical mentions show certain false positives."""
    notes = []
    for i, row in _json_rows(raw):
        text = row["text"]
        clinical = [{"start": at[0], "end": at[1], "label": m["label"]}
                    for m in row["mention_data"] if (at := _mention(text, m))]
        notes.append({"id": f"{corpus}-{i}", "corpus": corpus, "text": text, "types": [], "spans": [],
                      "clinical": clinical})
    return notes


# -- cMedQANER: patient questions; STD and pregnancy mentions among the labelled mentions ------------------
# What makes a labelled mention an STD or a pregnancy fact, by the paper's tiers. Written from the concepts
# (ICD-10 A50-A64, B15-B24, O00-O99 and the paper's marital/childbearing tier), not from deid's dictionaries.
_STD_CONCEPTS = (
    (re.compile(r"梅毒|杨梅疮|硬下疳|艾滋|HIV|人类免疫缺陷|淋病|淋球菌|淋菌|软下疳|性病性淋巴肉芽肿", re.I), 1),
    (re.compile(r"(?<!慢)性病(?!科)|性传播"), 2),
    (re.compile(r"尖锐湿疣|湿疣|HPV|乳头瘤病毒|衣原体|支原体|滴虫|生殖器疱疹|"
                r"(?:阴部|外阴|阴茎|龟头|肛周|肛门|生殖器)[^，。]{0,4}疱疹", re.I), 2),
    (re.compile(r"乙肝|乙型肝炎|乙型病毒性肝炎|丙肝|丙型肝炎|HBV|HCV|大三阳|小三阳", re.I), 3),
)
_PREGNANCY_CONCEPTS = (
    (re.compile(r"流产|人流|打胎|引产|胎停|堕胎"), 1),
    (re.compile(r"先兆流产"), 2),
    (re.compile(r"怀孕|妊娠|早孕|宫外孕|宫内孕|孕妇|孕期|孕前|孕早期|孕中期|孕晚期|孕囊|剖腹产|剖宫产|顺产|分娩|葡萄胎|产后|"
                r"早产|坐月子|产检|试管婴儿|受孕"), 2),
    (re.compile(r"不孕|不育|避孕|节育|结扎|上环|哺乳"), 3),
)
_NOT_STD_OR_PREGNANCY = re.compile(r"带状疱疹|疱疹性咽峡炎|口唇疱疹|嘴唇疱疹|孕酮|孕激素|性病科|避孕药")


def classify_mention(mention: str) -> tuple[str, int] | None:
    """(STD|PREGNANCY, tier) for a labelled mention, or None."""
    if _NOT_STD_OR_PREGNANCY.search(mention):
        return None
    for entity_type, concepts in (("STD", _STD_CONCEPTS), ("PREGNANCY", _PREGNANCY_CONCEPTS)):
        tiers = [tier for rx, tier in concepts if rx.search(mention)]
        if tiers:
            return entity_type, min(tiers)
    return None


def cmedqa_notes(raw: str, corpus: str) -> list[dict]:
    notes = []
    for i, row in _json_rows(raw):
        text = row["text"]
        spans, clinical = [], []
        for m in row["mention_data"]:
            at = _mention(text, m)
            if at is None:
                continue   # 82 mentions in the file have offsets that do not point at their text
            start, end = at
            kind = classify_mention(m["mention"])
            if kind:
                spans.append(_span(text, start, end, *kind))
            else:
                clinical.append({"start": start, "end": end, "label": m["type"]})
        notes.append({"id": f"{corpus}-{i}", "corpus": corpus, "text": text, "types": ["STD", "PREGNANCY"],
                      "spans": spans, "clinical": clinical})
    return notes


# -- the official vocabulary: ICD-10 diagnoses of the STD and pregnancy chapters -----------------------------
def official_entity(code: str, name: str) -> tuple[str, int] | None:
    """(STD|PREGNANCY, tier) for an ICD-10 code in the chapters the paper's tiers cover, else None.
    Syphilis, gonorrhoea, chancroid, donovanosis, HIV: 1; chlamydia, trichomonas, herpes, condyloma, other STDs: 2;
    viral hepatitis: 3. Abortion (O02.1 missed, O03-O07, and complications after one): 1; other pregnancy: 2."""
    c = code.strip().upper()[:3]
    if "A50" <= c <= "A54" or c in ("A57", "A58") or "B20" <= c <= "B24":
        return "STD", 1
    if "A55" <= c <= "A64":
        return "STD", 2
    if "B15" <= c <= "B19":
        return "STD", 3
    if c.startswith("O") and c[1:].isdigit():
        abortive = "O03" <= c <= "O07" or code.upper().startswith("O02.1") or (c == "O08" and "流产" in name)
        return "PREGNANCY", 1 if abortive else 2
    return None


def _xlsx_rows(data: bytes) -> list[list[str]]:
    """Cell values of the first sheet of an .xlsx (shared and inline strings), without a spreadsheet library."""
    import io
    import zipfile
    from xml.etree import ElementTree
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        shared = []
        if "xl/sharedStrings.xml" in z.namelist():
            root = ElementTree.fromstring(z.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter(f"{{{ns['m']}}}t")) for si in root.findall("m:si", ns)]
        sheet = ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml"))
    rows = []
    for row in sheet.iter(f"{{{ns['m']}}}row"):
        cells = []
        for c in row.findall("m:c", ns):
            v = c.find("m:v", ns)
            if c.get("t") == "s" and v is not None:
                cells.append(shared[int(v.text)])
            elif c.get("t") == "inlineStr":
                cells.append("".join(t.text or "" for t in c.iter(f"{{{ns['m']}}}t")))
            else:
                cells.append(v.text if v is not None else "")
        rows.append(cells)
    return rows


def icd_entries(key: str, data: bytes) -> list[tuple[str, str]]:
    """(code, name) rows of an ICD-10 table: the clinical edition's .xlsx or the v6.01 CSV."""
    if key == "icd_clinical2":
        rows = _xlsx_rows(data)[1:]
    else:
        import csv
        import io
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))[1:]
    out = []
    for row in rows:
        if len(row) >= 2 and row[0].strip() and row[1].strip():
            out.append((row[0].strip(), re.sub(r"\\([\[\]])", r"\1", row[1].strip())))   # "\[HIV\]" -> "[HIV]"
    return out


# Sentences a diagnosis is written in.
DIAGNOSIS_TEMPLATES = ("诊断：{d}。", "既往{d}病史3年，规律随访。", "入院诊断：1.{d} 2.高血压病", "患者因{d}入院治疗。",
                       "出院诊断：{d}", "门诊以“{d}”收入院。")


# The chapters the official-vocabulary measure covers (O09-O99 are in the dictionary but not in this measure).
CORE_CHAPTERS = (("A50", "A64"), ("B15", "B24"), ("O00", "O08"))


def icd_notes(raw: bytes, corpus: str, seed: int = 2025) -> list[dict]:
    rng = random.Random(seed)
    notes = []
    for code, name in icd_entries(corpus, raw):
        kind = official_entity(code, name)
        if kind is None or not any(lo <= code[:3].upper() <= hi for lo, hi in CORE_CHAPTERS):
            continue
        template = DIAGNOSIS_TEMPLATES[rng.randrange(len(DIAGNOSIS_TEMPLATES))]
        head = template.index("{d}")
        text = template.replace("{d}", name)
        notes.append({"id": f"{corpus}-{code}", "corpus": corpus, "text": text, "types": ["STD", "PREGNANCY"],
                      "spans": [_span(text, head, head + len(name), *kind)]})
    return notes


CONVERTERS = {"address_train": address_notes, "address_dev": address_notes, "cluener_train": cluener_notes,
              "cehr_train": cehr_notes, "cmedqa_train": cmedqa_notes, "icd_clinical2": icd_notes, "icd_v601": icd_notes}


# The sources the real-context set (deid.realcontext) is made of; it is listed beside the corpora.
CONTEXT_SOURCES = ("cehr_train", "cluener_train", "address_train", "hospitals")
CORPORA = (*CONVERTERS, "real_context")


def load_corpora(root: Path, only: list[str] | None = None) -> dict[str, list[dict]]:
    """Every corpus found under root (or the ones named), converted; missing ones are left out."""
    out = {}
    for key in only or CORPORA:
        if key == "real_context":
            raws = {k: read_source(k, root) for k in CONTEXT_SOURCES}
            if all(raw is not None for raw in raws.values()):
                out[key] = real_context_notes({k: raw.decode("utf-8") for k, raw in raws.items()})
            continue
        raw = read_source(key, root)
        if raw is not None:
            out[key] = CONVERTERS[key](raw if key.startswith("icd_") else raw.decode("utf-8"), key)
    return out


def real_context_notes(raw: dict[str, str], seed: int = 2025) -> list[dict]:
    """The real-context set from its sources' text (CONTEXT_SOURCES)."""
    from deid import realcontext as rc
    return rc.context_notes(raw["cehr_train"], rc.cluener_dev_names(raw["cluener_train"]),
                            rc.train_addresses(raw["address_train"]), rc.hospital_names(raw["hospitals"]), seed)


def write_icd_dictionary(root: Path, out: Path) -> int:
    """resources/dictionaries/icd10_sensitive.tsv from the clinical edition 2.0: every diagnosis in the STD and
    pregnancy chapters with its type and tier (official_entity). Returns the number of rows."""
    src = SOURCES["icd_clinical2"]
    data = read_source("icd_clinical2", root)
    if data is None:
        raise FileNotFoundError(f"{src.location(root)} ({src.repo} {src.path})")
    rows = {}
    for code, name in icd_entries("icd_clinical2", data):
        kind = official_entity(code, name)
        if kind and name not in rows:
            rows[name] = (*kind, code)
    lines = ["# ICD-10 national clinical edition 2.0, chapters A50-A64, B15-B24 and O00-O99: one diagnosis a row,",
             f"# typed and tiered by deid.corpora.official_entity. Made by `deid icd-dictionary` from {src.repo}",
             f"# {src.path} (SHA-256 {src.sha256[:16]}...; MIT licence, Copyright (c) hint-lab).",
             "term\ttype\ttier\tcanonical"]
    lines += [f"{name}\t{t}\t{tier}\t{code}" for name, (t, tier, code) in sorted(rows.items(), key=lambda r: r[1][2])]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(rows)
