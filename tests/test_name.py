import pytest

from deid.synth import vocab


def names(analyze, text):
    return [t for typ, t, _ in analyze(text) if typ == "NAME"]


@pytest.mark.parametrize("text, expected", [
    ("患者张建国，男，52岁。", ["张建国"]),
    ("姓名：司马光  性别：男", ["司马光"]),
    ("家属李秀英（配偶）陪同。", ["李秀英"]),
    ("已向家属赵国交代病情。", ["赵国"]),
    ("其女张丽电话：13812345678", ["张丽"]),
    ("由王五主任查房，指示：继续治疗。", ["王五"]),
    ("今日陈然副主任医师查房。", ["陈然"]),
    ("参加人员：王五、赵六、欧阳娜娜", ["王五", "赵六", "欧阳娜娜"]),
    ("记录者：刘洋", ["刘洋"]),
    ("患者萧晶因胸痛入院。萧晶诉夜间加重。", ["萧晶", "萧晶"]),
    ("医师签名：傅志华  2023-05-12", ["傅志华"]),
])
def test_names_with_context(analyze, text, expected):
    assert names(analyze, text) == expected


@pytest.mark.parametrize("text", [
    "患者高血压病史10年，高脂血症5年。",
    "患者诉白细胞偏低，白蛋白32g/L。",
    "予华法林抗凝，阿司匹林100mg qd。",
    "常规心电图示窦性心律，方案不变。",
    "患者于2020年在我院心内科就诊。",
    "石膏固定良好，黄疸较前消退。",
    "严重贫血，程度较前加重，余无特殊。",
])
def test_clinical_words_are_not_names(analyze, text):
    assert names(analyze, text) == []


def test_name_false_positive_rate_on_clinical_lexicon(analyze):
    """Drug names, departments, symptoms, diagnoses and operations in sentences: no names."""
    words = vocab.DRUGS + vocab.DEPARTMENTS + vocab.SYMPTOMS + vocab.DIAGNOSES + vocab.OPERATIONS + vocab.CLINICAL_LEXICON
    sentences = [f"予{w}治疗。" for w in words] + [f"患者{w}，" for w in words] + [f"{w}。" for w in words]
    false = [s for s in sentences if names(analyze, s)]
    assert len(false) / len(sentences) <= 0.01, false
