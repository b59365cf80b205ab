"""Parsing LLM output back to source offsets, on adversarial outputs."""
import itertools

import pytest

from deid.llm.chunking import chunk, merge_found
from deid.llm.parse import parse_json, parse_markup
from deid.llm.prompts import load_prompts
from deid.spans import EntityType as T

SRC = "患者张建国，男，52岁，手机13812345678，于北京协和医院就诊。HIV抗体阴性。"


def placed(report):
    return [(f.text, f.entity_type, f.tier) for f in report.found]


def test_markup_exact_echo():
    out = ("患者<<张建国: 姓名>>，男，52岁，手机<<13812345678: 联系方式>>，于<<北京协和医院: 医院名称>>就诊。"
           "<<HIV: 性传播疾病: 3>>抗体阴性。")
    r = parse_markup(SRC, out)
    assert placed(r) == [("张建国", T.NAME, None), ("13812345678", T.CONTACT, None),
                         ("北京协和医院", T.HOSPITAL, None), ("HIV", T.STD, 3)]
    assert r.altered_chars == 0 and r.dropped == 0


def test_markup_survives_altered_echo():
    # The model dropped "男，", turned a full stop into a comma, added a space and used a full-width colon.
    out = ("```\n患者<<张建国：姓名>>，52岁，手机 <<13812345678: 联系方式>>，于<<北京协和医院: 医院名称>>就诊，"
           "HIV抗体阴性。\n```")
    r = parse_markup(SRC, out)
    assert [f.text for f in r.found] == ["张建国", "13812345678", "北京协和医院"]
    for f in r.found:
        assert SRC[f.start:f.end] == f.text
    assert r.altered_chars > 0


def test_markup_entity_the_model_rewrote_maps_to_the_source_text():
    out = "患者<<张健国: 姓名>>，男，52岁，手机13812345678，于北京协和医院就诊。HIV抗体阴性。"   # 建 -> 健
    (f,) = parse_markup(SRC, out).found
    assert f.text == "张建国"


def test_markup_unknown_label_and_invented_entity():
    out = SRC.replace("张建国", "<<张建国: 病人>>") + "<<李四: 姓名>>"
    r = parse_markup(SRC, out)
    assert r.unknown_type == 1 and r.dropped == 1 and r.found == []


def test_markup_empty_output_is_invalid():
    assert parse_markup(SRC, "   ").invalid


def test_markup_that_is_not_an_echo_of_the_note_is_invalid():
    assert parse_markup(SRC, "抱歉，我无法完成这个任务。").invalid
    half = SRC[: len(SRC) // 3].replace("张建国", "<<张建国: 姓名>>")     # cut short: most of the note unseen
    assert parse_markup(SRC, half).invalid


@pytest.mark.parametrize("output", [
    '[{"type": "姓名", "text": "张建国", "tier": 1, "left": "患者"}]',
    '好的，结果如下：\n```json\n[{"type": "姓名", "text": "张建国", "tier": 1, "left": "患者"}]\n```\n以上。',
    '[{"type": "姓名", "text": "张建国", "tier": 1, "left": "患者"}] 注：已完成',
    '{"entities": [{"type": "NAME", "text": "张建国", "tier": "1"}]}',
    '[{"type": "姓名", "text": "张建国", "tier": 1, "left": "患者"}, {"type": "联系方式", "text": "1381',
])
def test_json_survives_fences_prose_wrappers_and_truncation(output):
    r = parse_json(SRC, output)
    assert (r.found[0].text, r.found[0].entity_type, r.found[0].tier) == ("张建国", T.NAME, 1)
    assert not r.invalid


def test_json_counts_what_it_cannot_use():
    out = ('[{"type": "姓名", "text": "王五", "tier": 1}, {"type": "血型", "text": "A", "tier": 1},'
           ' {"type": "姓名"}, "junk", {"type": "医院名称", "text": "北京协和医院", "tier": 1}]')
    r = parse_json(SRC, out)
    assert [f.text for f in r.found] == ["北京协和医院"]
    assert (r.dropped, r.unknown_type) == (3, 1)


def test_json_context_picks_among_repeats():
    src = "主治医师：王海涛。家属诉患者夜间咳嗽，王海涛医师查看患者。"
    r = parse_json(src, '[{"type": "姓名", "text": "王海涛", "tier": 1, "left": "咳嗽，"},'
                        ' {"type": "姓名", "text": "王海涛", "tier": 1, "left": "医师："}]')
    assert sorted(f.start for f in r.found) == [5, 19]


def test_json_garbage_is_invalid_not_an_error():
    assert parse_json(SRC, "抱歉，我无法处理。").invalid
    assert parse_json(SRC, "[{oops").found == []


def test_chunks_cover_the_note_with_overlap_and_map_back():
    note = "".join(f"第{i}句，患者王海涛复查。" for i in range(300))
    chunks = chunk(note, max_chars=500, overlap=80)
    assert chunks[0].start == 0 and chunks[-1].end == len(note)
    assert all(c.end - c.start <= 500 for c in chunks)
    assert all(b.start < a.end for a, b in itertools.pairwise(chunks))          # they overlap
    per_chunk = [(c, parse_json(c.text, "[" + ",".join(
        f'{{"type": "姓名", "text": "王海涛", "left": "{c.text[m - 6:m]}"}}' for m in
        [i for i in range(len(c.text)) if c.text.startswith("王海涛", i)]) + "]").found) for c in chunks]
    merged = merge_found(per_chunk)
    assert len(merged) == 300 and all(note[f.start:f.end] == "王海涛" for f in merged)


def test_prompts_are_versioned_files_with_the_note_last():
    p = load_prompts("json")
    msgs = p.messages("患者张三", ["北京协和医院 (协和, PUMCH)"])
    assert msgs[0]["role"] == "system" and "张三" not in msgs[0]["content"]
    assert msgs[1]["content"].endswith("患者张三") and "PUMCH" in msgs[1]["content"]
    assert load_prompts("markup").version != p.version
    assert "<<" in load_prompts("markup").system


def test_json_triples_are_placed_in_the_order_the_model_lists_them():
    src = "主治医师：王海涛。家属诉患者夜间咳嗽，王海涛医师查看患者。王海涛签字。"
    r = parse_json(src, '[["NAME", "王海涛", 1], ["NAME", "王海涛", 1], ["NAME", "王海涛", 1]]')
    assert [f.start for f in r.found] == [5, 19, 29]
    # a repeat listed out of order still gets an occurrence of its own
    r = parse_json(src, '[["NAME", "王海涛", 1], ["CONTACT", "夜间", 1], ["NAME", "王海涛", 1]]')
    assert sorted(f.start for f in r.found if f.entity_type == T.NAME) == [5, 19]
    r = parse_json(SRC, '[["DATE", "13812345678", 1], ["NAME", "张建国", 1]]')
    assert [(f.text, f.start) for f in r.found] == [("13812345678", 14), ("张建国", 2)]


@pytest.mark.parametrize("output", [
    '[["NAME", "张建国", 1]]',
    '```json\n[["NAME", "张建国", 1], ["CONTACT", "1381',
    '["NAME", "张建国", 1]',
    '[["姓名", "张建国", "1"], ["NAME"]]',
])
def test_json_triples_survive_truncation_a_missing_list_and_labels(output):
    r = parse_json(SRC, output)
    assert placed(r)[0] == ("张建国", T.NAME, 1) and not r.invalid
