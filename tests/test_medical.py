import pytest


def facts(analyze, text):
    return [(t, x, tier) for t, x, tier in analyze(text) if t in ("STD", "PREGNANCY")]


@pytest.mark.parametrize("text, expected", [
    ("TPPA阳性，RPR 1:8", [("STD", "TPPA", 1), ("STD", "RPR", 1)]),
    ("诊断：艾滋病", [("STD", "艾滋病", 1)]),
    ("解脲支原体阳性", [("STD", "解脲支原体", 2)]),
    ("HPV16阳性，尖锐湿疣", [("STD", "HPV16", 2), ("STD", "尖锐湿疣", 2)]),
    ("乙肝表面抗原阳性", [("STD", "乙肝表面抗原", 3)]),
    ("慢性乙型病毒性肝炎", [("STD", "慢性乙型病毒性肝炎", 3)]),
    ("G3P1A1", [("PREGNANCY", "G3P1A1", 1)]),
    ("G2P1", [("PREGNANCY", "G2P1", 3)]),
    ("孕2产1", [("PREGNANCY", "孕2产1", 3)]),
    ("人工流产2次", [("PREGNANCY", "人工流产2次", 1)]),
    ("孕12+3周", [("PREGNANCY", "孕12+3周", 2)]),
    ("2015年行剖宫产术", [("PREGNANCY", "剖宫产术", 2)]),
    ("已婚已育，育有1子1女", [("PREGNANCY", "已婚已育", 3), ("PREGNANCY", "育有1子1女", 3)]),
    ("LMP：2023-01-02", [("PREGNANCY", "LMP", 3)]),
    ("患者诉小产一次", [("PREGNANCY", "小产一次", 1)]),
])
def test_terms_and_tiers(analyze, text, expected):
    assert facts(analyze, text) == expected


@pytest.mark.parametrize("text, term", [
    ("HIV抗体阴性", "HIV"),
    ("梅毒螺旋体抗体(-)", "梅毒螺旋体"),
    ("否认肝炎、结核、性病史", "性病"),
    ("TRUST 未检出", "TRUST"),
    ("感染筛查：HIV(-)，TPPA阴性", "TPPA"),
])
def test_negative_screening_is_found_with_tier_3(analyze, text, term):
    hits = [f for f in facts(analyze, text) if f[1] == term]
    assert hits and all(tier == 3 for _, _, tier in hits)


@pytest.mark.parametrize("text", [
    "带状疱疹后遗神经痛", "CT示肺部结节", "TPO抗体阴性", "HP阳性病史", "结核菌素试验阳性", "自述有HIV阳性病史",
])
def test_hard_negatives(analyze, text):
    assert all(x != "性病" for _, x, _ in facts(analyze, text))
    if "HIV" not in text:
        assert facts(analyze, text) == []
