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
    # exposure history, pubic lice, antenatal care, the abortion count of a G/P formula written in Chinese
    ("有冶游史", [("STD", "冶游史", 2)]),
    ("否认冶游史，否认不洁性交史", [("STD", "冶游史", 3), ("STD", "不洁性交史", 3)]),
    ("外阴可见阴虱", [("STD", "阴虱", 2)]),
    ("孕16周因先兆流产行保胎治疗",
     [("PREGNANCY", "孕16周", 2), ("PREGNANCY", "先兆流产", 2), ("PREGNANCY", "保胎", 2)]),
    ("孕期规律产检", [("PREGNANCY", "孕期", 2), ("PREGNANCY", "产检", 2)]),
    ("孕1产0，流1", [("PREGNANCY", "孕1产0，流1", 1)]),
    ("孕3产1流2", [("PREGNANCY", "孕3产1流2", 1)]),
    ("孕2产1(足1早0流1存1)", [("PREGNANCY", "孕2产1(足1早0流1存1)", 1)]),
    ("孕2产1(足1早0流0存1)", [("PREGNANCY", "孕2产1(足1早0流0存1)", 3)]),
    ("孕2产1，早产1次", [("PREGNANCY", "孕2产1", 3), ("PREGNANCY", "早产", 2)]),   # a fact of its own
    ("未婚未育", [("PREGNANCY", "未婚未育", 3)]),
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


@pytest.mark.parametrize("text, expected", [
    ("诊断：梅毒性心脏病。", ("STD", "梅毒性心脏病", 1)),
    ("淋球菌性尿道炎", ("STD", "淋球菌性尿道炎", 1)),
    ("病毒性肝炎乙型丁型急性无黄疸型", ("STD", "病毒性肝炎乙型丁型急性无黄疸型", 3)),
    ("乙型丙型肝炎重叠感染", ("STD", "乙型丙型肝炎重叠感染", 3)),
    ("慢性乙型病毒性肝炎，伴有δ因子", ("STD", "慢性乙型病毒性肝炎，伴有δ因子", 3)),
    ("外阴疱疹", ("STD", "外阴疱疹", 2)),
    ("肛周皮肤疱疹", ("STD", "肛周皮肤疱疹", 2)),
    ("女性衣原体性盆腔炎", ("STD", "女性衣原体性盆腔炎", 2)),
    ("未特指的滴虫病", ("STD", "未特指的滴虫病", 2)),
    ("其他特指的主要为性传播的疾病", ("STD", "其他特指的主要为性传播的疾病", 2)),
    ("医疗性流产，完全性或未特指的，并发栓塞", ("PREGNANCY", "医疗性流产，完全性或未特指的，并发栓塞", 1)),
    ("输卵管壶腹部妊娠破裂", ("PREGNANCY", "输卵管壶腹部妊娠破裂", 2)),
    ("受孕的未特指的异常产物", ("PREGNANCY", "受孕的未特指的异常产物", 2)),
    ("妊娠合并梅毒", ("PREGNANCY", "妊娠合并梅毒", 1)),       # the syphilis inside makes it tier 1
    ("担心对方有口腔尖锐湿疣", ("STD", "尖锐湿疣", 2)),
    ("感染hpv33，", ("STD", "hpv33", 2)),
    ("输卵管阻塞性不孕怎么治", ("PREGNANCY", "输卵管阻塞性不孕", 3)),
    ("做微管可视无痛人流", ("PREGNANCY", "微管可视无痛人流", 1)),
    ("孕前检查有哪些", ("PREGNANCY", "孕前检查", 2)),
    ("乙肝两对半结果", ("STD", "乙肝两对半", 3)),
])
def test_whole_disease_mention(analyze, text, expected):
    assert expected in facts(analyze, text)


@pytest.mark.parametrize("text, expected", [
    ("患者有梅毒病史", [("STD", "梅毒", 1)]),                   # 病史 is not part of the disease
    ("2015年行剖宫产术", [("PREGNANCY", "剖宫产术", 2)]),
    ("梅毒的治疗", [("STD", "梅毒", 1)]),
    ("肺炎支原体感染", []), ("肺炎衣原体感染", []), ("带状疱疹", []), ("口唇疱疹", []), ("肠滴虫病", []),
])
def test_mention_does_not_run_on(analyze, text, expected):
    assert facts(analyze, text) == expected


def test_official_vocabulary_rows_are_typed_and_tiered():
    from deid import resources
    rows = {r["term"]: r for r in resources.load("dictionaries/icd10_sensitive.tsv").rows()}
    assert rows["稽留流产"]["type"] == "PREGNANCY" and rows["稽留流产"]["tier"] == "1"
    assert rows["异位妊娠"]["tier"] == "2"
    assert rows["一期梅毒"]["type"] == "STD" and rows["一期梅毒"]["tier"] == "1"
    assert {r["type"] for r in rows.values()} == {"STD", "PREGNANCY"}


def test_official_names_with_full_width_punctuation_match(analyze):
    # the dictionary row holds '，'; the note is matched after normalization to ','
    assert ("PREGNANCY", "不完全性自然流产，并发栓塞", 1) in facts(analyze, "诊断：不完全性自然流产，并发栓塞")


@pytest.mark.parametrize("text", ["患者男，未婚，否认吸烟史", "婚育史：未婚"])
def test_unmarried_alone_is_no_pregnancy_fact(analyze, text):
    assert facts(analyze, text) == []
