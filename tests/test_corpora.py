"""Converters from the public corpora's formats and the real-text scores, on small inputs written here."""
import hashlib
import io
import json
import zipfile

import pytest

from deid import corpora
from deid.evaluate import RealScores
from deid.spans import EntityType, make_span

ADDRESS_BIO = """浙 B-prov
江 I-prov
省 I-prov
杭 B-city
州 I-city
市 I-city
朝 B-poi
晖 I-poi
五 I-poi
区 I-poi
40 B-houseno
- B-redundant
5 B-cellno
- B-redundant
594 B-roomno
电 B-redundant
联 I-redundant

文 B-road
三 I-road
路 I-road
"""


def test_address_converter_sets_the_address_in_a_sentence_with_its_fine_parts():
    notes = corpora.address_notes(ADDRESS_BIO, "addr", seed=1)
    assert len(notes) == 2
    first = notes[0]
    gold, = first["spans"]
    assert gold["text"] == "浙江省杭州市朝晖五区40-5-594"          # the trailing 电联 is not address
    assert first["text"][gold["start"]:gold["end"]] == gold["text"] and gold["tier"] == 1
    assert [p["text"] for p in first["parts"]] == ["朝晖五区", "40", "5", "594"]
    assert all(first["text"][p["start"]:p["end"]] == p["text"] for p in first["parts"])
    assert notes[1]["spans"][0]["text"] == "文三路" and notes[1]["spans"][0]["tier"] == 1


def test_cluener_offsets_are_inclusive_in_the_source():
    line = json.dumps({"text": "总裁沈东军认为",
                       "label": {"name": {"沈东军": [[2, 4]]}, "position": {"总裁": [[0, 1]]}}},
                      ensure_ascii=False)
    note, = corpora.cluener_notes(line, "c")
    assert note["spans"] == [{"start": 2, "end": 5, "type": "NAME", "tier": 1, "text": "沈东军"}]
    assert note["types"] == ["NAME"]


def test_cehr_converter_keeps_clinical_mentions():
    line = json.dumps({"text": "予奥沙利铂(艾恒)化疗",
                       "mention_data": [{"mention": "奥沙利铂", "label": "药物", "offset": "1"}]},
                      ensure_ascii=False)
    note, = corpora.cehr_notes(line, "e")
    assert note["spans"] == [] and note["clinical"] == [{"start": 1, "end": 5, "label": "药物"}]


@pytest.mark.parametrize("mention, expected", [
    ("尖锐湿疣", ("STD", 2)), ("梅毒", ("STD", 1)), ("乙肝大三阳", ("STD", 3)), ("性病", ("STD", 2)),
    ("无痛人流", ("PREGNANCY", 1)), ("宫外孕", ("PREGNANCY", 2)), ("不孕症", ("PREGNANCY", 3)),
    ("带状疱疹", None), ("慢性病", None), ("孕酮", None), ("性病科", None), ("感冒", None),
])
def test_patient_question_mentions_are_classified_by_concept(mention, expected):
    assert corpora.classify_mention(mention) == expected


def test_cmedqa_mentions_with_wrong_offsets_are_skipped():
    line = json.dumps({"text": "得了尖锐湿疣怎么办", "mention_data": [
        {"mention": "尖锐湿疣", "type": "disease", "offset": "2"},
        {"mention": "感冒", "type": "disease", "offset": "0"}]}, ensure_ascii=False)
    note, = corpora.cmedqa_notes(line, "q")
    assert [s["text"] for s in note["spans"]] == ["尖锐湿疣"] and note["clinical"] == []


@pytest.mark.parametrize("code, name, expected", [
    ("A51.001", "一期梅毒", ("STD", 1)), ("A56.002", "衣原体性宫颈炎", ("STD", 2)),
    ("B18.100", "慢性乙型病毒性肝炎", ("STD", 3)), ("B20.100", "HIV病", ("STD", 1)),
    ("O02.100", "稽留流产", ("PREGNANCY", 1)), ("O03.900", "自然流产", ("PREGNANCY", 1)),
    ("O08.100", "流产后出血", ("PREGNANCY", 1)), ("O08.106", "异位妊娠后过度出血", ("PREGNANCY", 2)),
    ("O00.100", "输卵管妊娠", ("PREGNANCY", 2)), ("O80.000", "单胎顺产", ("PREGNANCY", 2)), ("J18.900", "肺炎", None),
])
def test_official_entity_by_chapter(code, name, expected):
    assert corpora.official_entity(code, name) == expected


def _xlsx(rows) -> bytes:
    strings = [v for row in rows for v in row]
    shared = "".join(f"<si><t>{s}</t></si>" for s in strings)
    cells, k = [], 0
    for r, row in enumerate(rows, 1):
        cs = []
        for c, _ in enumerate(row):
            cs.append(f'<c r="{"AB"[c]}{r}" t="s"><v>{k}</v></c>')
            k += 1
        cells.append(f'<row r="{r}">{"".join(cs)}</row>')
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("xl/sharedStrings.xml", f"<sst {ns}>{shared}</sst>")
        z.writestr("xl/worksheets/sheet1.xml", f"<worksheet {ns}><sheetData>{''.join(cells)}</sheetData></worksheet>")
    return buf.getvalue()


def test_icd_tables_in_both_formats():
    xlsx = _xlsx([["疾病诊断编码", "疾病诊断名称"], ["A51.001", "一期梅毒"],
                  ["B20.100", "人类免疫缺陷病毒\\[HIV\\]病"]])
    assert corpora.icd_entries("icd_clinical2", xlsx) == [("A51.001", "一期梅毒"),
                                                          ("B20.100", "人类免疫缺陷病毒[HIV]病")]
    csv = "\ufeffcode,disease\nA51.0,一期梅毒\nJ18,肺炎\n".encode("utf-8")
    notes = corpora.icd_notes(csv, "icd_v601")
    assert [n["spans"][0]["text"] for n in notes] == ["一期梅毒"]        # chapters outside the measure are left out


def test_sources_are_checked_by_digest(tmp_path, monkeypatch):
    src = corpora.Source("owner/repo", "data/x.txt", hashlib.sha256(b"right").hexdigest())
    monkeypatch.setitem(corpora.SOURCES, "x", src)
    assert corpora.read_source("x", tmp_path) is None
    path = tmp_path / "repo" / "data" / "x.txt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"wrong")
    with pytest.raises(corpora.SourceMismatch):
        corpora.read_source("x", tmp_path)
    path.write_bytes(b"right")
    assert corpora.read_source("x", tmp_path) == b"right"


def test_eval_real_without_data_says_where_to_put_it(tmp_path, capsys, monkeypatch):
    from deid.cli import main
    monkeypatch.delenv(corpora.REAL_DATA_ENV, raising=False)
    assert main(["eval-real"]) == 0
    out = capsys.readouterr().out
    assert "DEID_REAL_DATA" in out and "neural-chinese-address-parsing/data/train.txt" in out
    assert main(["eval-real", "--data", str(tmp_path)]) == 0
    assert "none of the corpora" in capsys.readouterr().out


def _span(text, start, end, etype, tier=1):
    return make_span(text, start, end, EntityType(etype), tier, "pattern", 0.9)


def test_real_scores_worked_example():
    text = "现住朝晖五区40-5-594，患者王五服用艾恒"
    note = {"id": 1, "text": text, "types": ["ADDRESS"],
            "spans": [{"start": 2, "end": 14, "type": "ADDRESS", "tier": 1, "text": text[2:14]}],
            "parts": [{"start": 2, "end": 6, "label": "poi"}, {"start": 6, "end": 8, "label": "houseno"},
                      {"start": 11, "end": 14, "label": "roomno"}],
            "clinical": [{"start": 21, "end": 23, "label": "药物"}]}
    spans = [_span(text, 2, 11, "ADDRESS"), _span(text, 17, 19, "NAME"), _span(text, 21, 23, "NAME")]
    assert [s.text for s in spans] == ["朝晖五区40-5-", "王五", "艾恒"]
    sc = RealScores("t")
    sc.add(note, spans, {1: [(6, 11)], 2: [(2, 11)], 3: [(2, 11), (17, 19), (21, 23)]})
    d = sc.to_dict()
    address = d["per_type"]["ADDRESS"]
    assert address["exact"] == 0 and address["overlap"] == 1 and address["whole"] == 1   # 9 of 12 characters
    assert address["touched"] == 1 and address["precision"] == 1
    assert address["masked"] == 0   # the room is left at level 3
    assert d["below_county_parts"]["masked_l1"] == pytest.approx(1 / 3)   # only the house number
    assert d["below_county_parts"]["masked_l3"] == pytest.approx(2 / 3)   # the room is left
    assert d["certain_fp_per_1000_notes"] == 1000 and d["certain_fp_by_type"] == {"NAME": 1}
    assert d["masked_chars_l3"] == pytest.approx(13 / len(text))
    assert d["spans_per_100_notes"] == {"ADDRESS": 100, "NAME": 200}


def test_icd_dictionary_is_made_from_the_clinical_edition(tmp_path, monkeypatch):
    from deid.cli import main
    from deid.resources import TextResource
    xlsx = _xlsx([["疾病诊断编码", "疾病诊断名称"], ["A51.001", "一期梅毒"], ["O03.900", "自然流产"],
                  ["J18.900", "肺炎"]])
    src = corpora.SOURCES["icd_clinical2"]
    monkeypatch.setitem(corpora.SOURCES, "icd_clinical2",
                        corpora.Source(src.repo, src.path, hashlib.sha256(xlsx).hexdigest()))
    path = src.location(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(xlsx)
    out = tmp_path / "icd.tsv"
    assert main(["icd-dictionary", "--data", str(tmp_path), "--out", str(out)]) == 0
    rows = TextResource("icd", out.read_text(encoding="utf-8"), "").rows()
    assert [(r["term"], r["type"], r["tier"]) for r in rows] == [("一期梅毒", "STD", "1"),
                                                                 ("自然流产", "PREGNANCY", "1")]
