"""The real-context generator on a tiny cEHRNER-shaped sample written here (no $DEID_REAL_DATA needed)."""
import json

from deid import corpora, realcontext

CEHR = "\n".join(json.dumps(row, ensure_ascii=False) for row in [
    {"text": ",患者因“直肠癌”于****医院行根治术。术后予奥沙利铂化疗,外院复查未见复发。患者恢复好。",
     "mention_data": [{"mention": "直肠癌", "label": "疾病和诊断", "offset": "5"},
                      {"mention": "奥沙利铂", "label": "药物", "offset": "24"}]},
    {"text": "患者于*二院诊断“胃癌”,在**就诊。体积3*2cm。",
     "mention_data": [{"mention": "胃癌", "label": "疾病和诊断", "offset": "9"}]},
])
CLUENER = "\n".join(
    [json.dumps({"text": "held back", "label": {"name": {"不可读": [[0, 2]]}}}, ensure_ascii=False)] * 2000
    + [json.dumps({"text": "x", "label": {"name": {"沈东军": [[0, 2]], "Grubby": [[3, 8]], "杰森·瑞特曼": [[9, 14]]}}},
                  ensure_ascii=False)] * 1000
    + [json.dumps({"text": "training", "label": {"name": {"训练集": [[0, 2]]}}}, ensure_ascii=False)])
ADDRESSES = ("浙 B-prov\n江 I-prov\n省 I-prov\n朝 B-poi\n晖 I-poi\n五 I-poi\n区 I-poi\n\n"
             "文 B-road\n三 I-road\n路 I-road\n")
HOSPITALS = json.dumps({"provinceList": [{"cityList": [{"hospitalList": [
    {"name": n} for n in ["婺源县人民医院", "held back 1", "漳浦县旧镇中心卫生院", "held back 2",
                          "河北港口集团有限公司港口", "held back 3", "乐山职业技术学院"]]}]}]}, ensure_ascii=False)
RAW = {"cehr_train": CEHR, "cluener_train": CLUENER, "address_train": ADDRESSES, "hospitals": HOSPITALS}


def test_values_come_from_the_allowed_parts_of_each_source():
    assert realcontext.cluener_dev_names(CLUENER) == ["沈东军", "杰森·瑞特曼"]   # Latin handles are no record's name
    assert realcontext.train_addresses(ADDRESSES) == [("浙江省朝晖五区", 1), ("文三路", 1)]
    # every second distinct name, kept when it names a health facility
    assert realcontext.hospital_names(HOSPITALS) == ["婺源县人民医院", "漳浦县旧镇中心卫生院"]


def test_gold_offsets_point_at_the_placed_values_and_mentions_move_along():
    notes = corpora.real_context_notes(RAW, seed=7)
    assert len(notes) == 2
    placed = {"NAME": {"沈东军", "杰森·瑞特曼"}, "ADDRESS": {"浙江省朝晖五区", "文三路"},
              "HOSPITAL": {"婺源县人民医院", "漳浦县旧镇中心卫生院"}}
    for note in notes:
        assert note["types"] == realcontext.PLACED_TYPES
        for span in note["spans"]:
            assert note["text"][span["start"]:span["end"]] == span["text"]
            assert span["text"] in placed.get(span["type"], {span["text"]})
        assert "*" not in note["text"].replace("3*2", "")   # every starred hospital is replaced, the size is not
    assert [notes[0]["text"][m["start"]:m["end"]] for m in notes[0]["clinical"]] == ["直肠癌", "奥沙利铂"]
    assert [notes[1]["text"][m["start"]:m["end"]] for m in notes[1]["clinical"]] == ["胃癌"]
    assert notes[0]["text"].startswith("姓名：") and notes[0]["spans"][0]["type"] == "NAME"
    assert sum(s["type"] == "HOSPITAL" for s in notes[1]["spans"]) >= 2   # *二院 and 在**就诊


def test_the_set_is_reproducible_from_its_seed():
    assert corpora.real_context_notes(RAW, seed=7) == corpora.real_context_notes(RAW, seed=7)
    assert corpora.real_context_notes(RAW, seed=7) != corpora.real_context_notes(RAW, seed=8)


def test_eval_real_scores_the_set_beside_the_corpora(tmp_path, monkeypatch, capsys):
    import hashlib

    from deid.cli import main
    for key, raw in RAW.items():
        src = corpora.SOURCES[key]
        path = src.location(tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(raw, encoding="utf-8")
        monkeypatch.setitem(corpora.SOURCES, key, corpora.Source(src.repo, src.path,
                                                                 hashlib.sha256(raw.encode("utf-8")).hexdigest()))
    out_json = tmp_path / "scores.json"
    assert main(["eval-real", "--data", str(tmp_path), "--corpus", "real_context", "--json", str(out_json)]) == 0
    assert "real_context: 2 notes" in capsys.readouterr().out
    scores = json.loads(out_json.read_text())["corpora"]["real_context"]
    assert set(scores["per_type"]) >= {"NAME", "HOSPITAL", "RECORD_ID"}
    assert scores["per_type"]["RECORD_ID"]["masked"] == 1.0   # the header's 住院号
