import hashlib
import json
import subprocess
import sys

import pytest

from deid.cli import EXIT_FAILED, main
from deid.spans import EntityType

TYPES = {t.value for t in EntityType}


def test_annotate_jsonl_contract(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    lines = [
        {"id": 1, "text": "患者张建国，手机13812345678，于北京协和医院就诊。HIV抗体阴性。"},
        {"id": "n2", "text": ""},
        {"id": 3, "text": None},
        "this is not json",
        {"id": 5, "text": "患者\ud800李四\x00，电话：０１０－６２３４５６７８"},
        [1, 2],
    ]
    src.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
                   encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["annotate", "--input", str(src), "--output", str(out)]) == EXIT_FAILED   # notes failed: the run did
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 6
    first = rows[0]
    assert first["id"] == 1 and set(first["masked"]) == {"1", "2", "3"}
    for s in first["spans"]:
        assert set(s) == {"start", "end", "text", "type", "tier", "detector", "score"}
        assert s["type"] in TYPES and s["tier"] in (1, 2, 3)
        assert lines[0]["text"][s["start"]:s["end"]] == s["text"]
    assert {s["type"] for s in first["spans"]} == {"NAME", "CONTACT", "HOSPITAL", "STD"}
    assert rows[1] == {"id": "n2", "spans": [], "masked": {"1": "", "2": "", "3": ""}}
    assert rows[2]["id"] == 3 and "error" in rows[2]
    assert rows[3]["id"] is None and rows[3]["line"] == 4 and "error" in rows[3]
    assert {s["type"] for s in rows[4]["spans"]} == {"NAME", "CONTACT"}
    assert "error" in rows[5]
    # Error messages never quote note text.
    assert "not json" not in rows[3]["error"]


def test_annotate_masks_values_with_format_characters_inside(tmp_path):
    """Zero-width and bidi characters inside a value: found as without them, masked with them."""
    note = "患者张\u200b三，电话138\u200d1234\u200e5678，身份证110105\u200b19491231002X。"
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": 1, "text": note}) + "\n", encoding="utf-8")
    assert main(["annotate", "--input", str(src), "--output", str(out)]) == 0
    row = json.loads(out.read_text(encoding="utf-8"))
    assert {s["type"] for s in row["spans"]} == {"NAME", "CONTACT", "ID_NUMBER"}
    assert all(note[s["start"]:s["end"]] == s["text"] for s in row["spans"])
    assert row["masked"]["3"] == "患者〔姓名〕，电话〔联系方式〕，身份证〔身份证号〕。"


def test_annotate_shifts_dates_per_person_as_the_job_does(tmp_path):
    """person_id (else the note's id) keys the shift, as in the job; a date without a year takes note_date's."""
    import os
    from datetime import date, timedelta

    from deid.masking import date_offset
    notes = [{"id": 1, "person_id": 42, "note_date": "2023-03-15", "text": "2023年3月15日入院，3月20日出院。"},
             {"id": 2, "person_id": 42, "note_date": "2023-04-01", "text": "2023-03-20复查。"},
             {"id": 3, "note_date": "2023-04-01", "text": "2023-03-20复查。"},
             {"id": 4, "note_date": "yesterday", "text": "x"}]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(n, ensure_ascii=False) + "\n" for n in notes), encoding="utf-8")
    assert main(["annotate", "--input", str(src), "--output", str(out)]) == EXIT_FAILED   # note 4's date
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    key = os.environ["DEID_SECRET"].encode()
    person, own = (date(2023, 3, 20) + timedelta(days=date_offset(key, k, 180)) for k in ("person:42", "note:3"))
    assert rows[0]["masked"]["1"] == (f"{(person - timedelta(days=5)).year}年{(person - timedelta(days=5)).month}月"
                                      f"{(person - timedelta(days=5)).day}日入院，{person.month}月{person.day}日出院。")
    assert rows[1]["masked"]["1"] == rows[1]["masked"]["2"] == f"{person:%Y-%m-%d}复查。"
    assert rows[2]["masked"]["1"] == f"{own:%Y-%m-%d}复查。"
    assert rows[0]["masked"]["3"] == "2023年入院，〔日期〕出院。"
    assert "note_date" in rows[3]["error"]


def annotated(tmp_path, *args) -> list[dict]:
    out = tmp_path / "out.jsonl"
    assert main(["annotate", *args, "--output", str(out)]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_annotate_a_text_file_is_one_note_named_by_its_stem(tmp_path):
    (tmp_path / "admission-7.txt").write_text("患者张建国，男\n手机13812345678\n", encoding="utf-8")
    [row] = annotated(tmp_path, "--input", str(tmp_path / "admission-7.txt"))
    assert row["id"] == "admission-7" and {s["type"] for s in row["spans"]} == {"NAME", "CONTACT"}


def test_annotate_a_folder_reads_each_text_file_in_name_order(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    for name, text in (("b", "电话13812345678"), ("a", "患者张建国，男"), ("c", "")):
        (notes / f"{name}.txt").write_text(text, encoding="utf-8")
    (notes / "readme.md").write_text("not a note", encoding="utf-8")
    rows = annotated(tmp_path, "--input", str(notes))
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert rows[1]["masked"]["3"] == "电话〔联系方式〕" and rows[2]["spans"] == []


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_annotate_a_csv_with_the_job_column_names(tmp_path, encoding):
    src = tmp_path / "notes.csv"
    text = "患者张建国，男，\n2023年3月15日入院"   # a comma and a line break inside the quoted field
    src.write_bytes(("note_id,person_id,note_date,note_text\n"
                     f'1,42,2023-03-15,"{text}"\n2,,,电话13812345678\n').encode(encoding))
    rows = annotated(tmp_path, "--input", str(src), "--encoding", encoding)
    assert [r["id"] for r in rows] == ["1", "2"]
    assert {s["type"] for s in rows[0]["spans"]} == {"NAME", "DATE"}
    assert all(text[s["start"]:s["end"]] == s["text"] for s in rows[0]["spans"])
    assert rows[1]["masked"]["3"] == "电话〔联系方式〕"


def test_annotate_text_pretty_prints(capsys):
    assert main(["annotate", "--text", "患者张建国，男"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["spans"][0]["type"] == "NAME" and out["masked"]["3"] == "患者〔姓名〕，男"


def test_synth_is_byte_for_byte_reproducible(tmp_path):
    digests = []
    for run in ("a", "b"):
        assert main(["synth", "--n", "40", "--seed", "5", "--out", str(tmp_path / run)]) == 0
        digests.append({f: hashlib.sha256((tmp_path / run / f).read_bytes()).hexdigest()
                        for f in ("notes.jsonl", "notes.parquet")})
    assert digests[0] == digests[1]
    assert main(["synth", "--n", "40", "--seed", "6", "--out", str(tmp_path / "c")]) == 0
    assert hashlib.sha256((tmp_path / "c" / "notes.jsonl").read_bytes()).hexdigest() != digests[0]["notes.jsonl"]


def test_synth_covers_every_note_type_and_entity(tmp_path):
    import pyarrow.parquet as pq
    main(["synth", "--n", "120", "--seed", "3", "--out", str(tmp_path)])
    notes = [json.loads(line) for line in (tmp_path / "notes.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len({n["note_type"] for n in notes}) == 13
    spans = [s for n in notes for s in n["spans"]]
    assert {s["type"] for s in spans} == TYPES
    assert {(s["type"], s["tier"]) for s in spans} >= {("ADDRESS", 1), ("ADDRESS", 2), ("STD", 1), ("STD", 2),
                                                       ("STD", 3), ("PREGNANCY", 1), ("PREGNANCY", 2), ("PREGNANCY", 3)}
    for n in notes:
        for s in n["spans"]:
            assert n["text"][s["start"]:s["end"]] == s["text"]
    table = pq.read_table(tmp_path / "notes.parquet")
    assert table.num_rows == 120 and "note_text" in table.column_names and "person_id" in table.column_names


def test_eval_prints_tables(tmp_path, capsys):
    main(["synth", "--n", "30", "--seed", "9", "--out", str(tmp_path)])
    capsys.readouterr()
    assert main(["eval", "--gold", str(tmp_path / "notes.jsonl"), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "Table 1" in out and "Table 2" in out and "level 3" in out
    scores = json.loads((tmp_path / "s.json").read_text())
    assert set(scores["per_type"]) == TYPES


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "deid.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "deid" in out.stdout


def test_summary_says_how_each_type_is_masked_per_level():
    from deid.cli import _masking_table
    header, date, record, address = _masking_table(["DATE", "RECORD_ID", "ADDRESS"], None)
    assert date.split() == ["DATE", "shift", "±180", "days", "shift", "±180", "days", "year"]
    assert record.split() == ["RECORD_ID", "tag", "tag", "tag"]
    assert address.split() == ["ADDRESS", "generalize", "to", "county", "generalize", "to", "province", "tag"]
    assert _masking_table(["DATE"], "paper")[1].split() == ["DATE", "tag", "tag", "tag"]
