"""Every entity type reaches the LLM stage: the prompts name it, the JSON schema allows it, the parser reads the
labels a model writes for it, and the prompts' own few-shot examples parse as tagged."""
import json
import re

import pytest

from deid import resources
from deid.llm.parse import ENTITY_SCHEMA, entity_type, parse_json, parse_markup
from deid.llm.prompts import TIER_PROMPT, load_prompts
from deid.spans import FIXED_TIER, LABELS_ZH
from deid.spans import EntityType as T

MARKER = re.compile(r"<<(.+?): [^<>]+>>")


@pytest.mark.parametrize("label, expected", [
    ("日期", T.DATE), ("时间", T.DATE), ("出生日期", T.DATE),
    ("年龄", T.AGE),
    ("住院号", T.RECORD_ID), ("病历号", T.RECORD_ID), ("病案号", T.RECORD_ID), ("门诊号", T.RECORD_ID),
    ("银行卡号", T.ACCOUNT), ("账号", T.ACCOUNT),
    ("证件号", T.CERTIFICATE), ("护照号", T.CERTIFICATE),
    ("车牌号", T.VEHICLE), ("车辆", T.VEHICLE), ("车辆标识", T.VEHICLE),
    ("工作单位", T.WORKPLACE), ("单位", T.WORKPLACE),
    ("IP", T.CONTACT), ("ip", T.CONTACT), ("IP地址", T.CONTACT), ("网址", T.CONTACT), ("URL", T.CONTACT),
    ("record id", T.RECORD_ID), ("Record-ID", T.RECORD_ID), (" certificate ", T.CERTIFICATE),
])
def test_labels_a_model_writes_name_their_type(label, expected):
    assert entity_type(label) is expected


def test_every_type_is_read_by_its_chinese_label_and_its_english_value():
    for t in T:
        assert entity_type(LABELS_ZH[t]) is t and entity_type(t.value) is t and entity_type(t.value.lower()) is t
    assert entity_type("血型") is None


def test_markup_reads_new_labels_chinese_and_english():
    src = "住院号：ZY2023051701，护照E12345678，2023年5月17日入院。"
    out = "住院号：<<ZY2023051701: 住院号>>，护照<<E12345678: CERTIFICATE>>，<<2023年5月17日: 日期>>入院。"
    assert [(f.text, f.entity_type) for f in parse_markup(src, out).found] == [
        ("ZY2023051701", T.RECORD_ID), ("E12345678", T.CERTIFICATE), ("2023年5月17日", T.DATE)]


def test_schema_enum_is_the_entity_types():
    assert ENTITY_SCHEMA["items"]["prefixItems"][0]["enum"] == [t.value for t in T]


def test_tagging_prompts_name_every_type():
    markup, json_ = load_prompts("markup"), load_prompts("json")
    tier = resources.load(TIER_PROMPT).content
    for t in T:
        assert t.label_zh in markup.system and t.label_zh in tier
        assert t.value in json_.system      # the JSON prompt writes the schema's English values
    rendered = json_.messages("住院号：ZY01。", [])
    assert "RECORD_ID" in rendered[0]["content"] and rendered[1]["content"].endswith("住院号：ZY01。")


def examples(text: str) -> list[tuple[str, str]]:
    """(input, output) of each few-shot example in a prompt."""
    return re.findall(r"(?:原文|病历|输入)：(.+)\n输出：(.+)", text)


def test_few_shot_examples_parse_as_tagged_with_fixed_tiers():
    tagged, sources = set(), []
    for source, output in examples(load_prompts("markup").system):
        report = parse_markup(source, output)
        assert not report.unknown_type and not report.dropped and not report.altered_chars
        tagged |= {(f.entity_type, f.text) for f in report.found}
        sources.append((source, report.found))
    for source, output in examples(load_prompts("json").system):
        report = parse_json(source, output)
        assert len(report.found) == len(json.loads(output)) and not report.unknown_type and not report.dropped
        assert all(f.tier == FIXED_TIER[f.entity_type] for f in report.found if f.entity_type in FIXED_TIER)
        tagged |= {(f.entity_type, f.text) for f in report.found}
        sources.append((source, report.found))
    for marked, output in examples(resources.load(TIER_PROMPT).content):
        report = parse_markup(MARKER.sub(r"\1", marked), output)
        assert report.found and not report.unknown_type
        assert all(f.tier == FIXED_TIER[f.entity_type] for f in report.found if f.entity_type in FIXED_TIER)
    assert {(T.DATE, "2023年5月17日"), (T.RECORD_ID, "ZY2023051701"), (T.AGE, "91岁")} <= tagged
    # a relative time, a dose and an age under 90 are shown and left untagged
    for untagged in ("术后第3天", "0.25g", "52岁"):
        shown = [(s, found) for s, found in sources if untagged in s]
        assert shown and all(untagged not in f.text for _, found in shown for f in found)
