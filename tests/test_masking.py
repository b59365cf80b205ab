import pytest

from deid.config import DEFAULT_CONFIG
from deid.masking import Masker, PolicyError, load_policies, surrogate
from deid.spans import EntityType as T

POLICIES = str(DEFAULT_CONFIG.parent / "policies.yaml")
NOTE = ("患者张建国，男，52岁，手机13812345678。现住址：北京市海淀区中关村大街27号。籍贯：河北省石家庄市。"
        "HIV抗体阴性，TPPA阳性，解脲支原体阳性，乙肝表面抗原阳性。已婚已育，G3P1A1。")


def test_levels_mask_by_tier(pipeline):
    spans = pipeline.analyze(NOTE)
    masked, counts = pipeline.mask(NOTE, spans)
    assert counts[1] < counts[2] < counts[3]
    l1, l2, l3 = masked[1], masked[2], masked[3]
    assert "张建国" not in l1 and "13812345678" not in l1 and "TPPA" not in l1
    assert "解脲支原体" in l1 and "乙肝表面抗原" in l1 and "已婚已育" in l1     # tier 2/3 kept at level 1
    assert "北京市海淀区〔地址〕" in l1                                          # generalize keeps the county
    assert "河北省石家庄市" in l1                                                # tier-2 address kept at level 1
    assert "解脲支原体" not in l2 and "河北省〔地址〕" in l2 and "北京市〔地址〕" in l2
    assert "乙肝表面抗原" not in l3 and "已婚已育" not in l3 and "HIV" not in l3 and "〔地址〕" in l3
    assert "北京市" not in l3


def test_text_outside_spans_is_unchanged(pipeline):
    spans = pipeline.analyze(NOTE)
    masked, _ = pipeline.mask(NOTE, spans)
    for level, text in masked.items():
        kept = [s for s in spans if s.tier > level]
        # Rebuild the original from the masked text is impossible, but every gap between masked spans survives.
        pos = 0
        for s in sorted((s for s in spans if s.tier <= level), key=lambda s: s.start):
            gap = NOTE[pos:s.start]
            assert gap in text
            pos = s.end
        assert NOTE[pos:] in text and kept is not None


def test_operators(tmp_path, pipeline):
    spans = pipeline.analyze("患者张建国，手机13812345678。")
    policy = tmp_path / "p.yaml"
    policy.write_text("default_operator: redact\nlevels:\n  1: {operators: {NAME: mask_chars}}\n"
                      "  2: {operators: {CONTACT: tag}}\n  3: {}\n")
    m = Masker(load_policies(str(policy)))
    assert m.mask("患者张建国，手机13812345678。", spans, 1).text == "患者***，手机。"
    assert m.mask("患者张建国，手机13812345678。", spans, 2).text == "患者，手机〔联系方式〕。"


def test_surrogate_needs_a_key(tmp_path, monkeypatch):
    policy = tmp_path / "p.yaml"
    policy.write_text("levels:\n  1: {operators: {NAME: surrogate}}\n  2: {}\n  3: {}\n")
    monkeypatch.delenv("DEID_SECRET", raising=False)
    with pytest.raises(PolicyError, match="DEID_SECRET"):
        Masker(load_policies(str(policy)))
    monkeypatch.setenv("DEID_SECRET", "test-key")
    Masker(load_policies(str(policy)))


def test_surrogate_is_consistent_and_keyed():
    a1 = surrogate(b"k1", T.NAME, "张建国")
    assert a1 == surrogate(b"k1", T.NAME, "张建国") != "张建国"
    assert surrogate(b"k2", T.NAME, "张建国") != a1
    # Formatting of the same phone number does not change its surrogate.
    assert surrogate(b"k1", T.CONTACT, "138 1234 5678") == surrogate(b"k1", T.CONTACT, "１３８-1234-5678")
    fake_id = surrogate(b"k1", T.ID_NUMBER, "11010519491231002X")
    assert len(fake_id) == 18 and fake_id.startswith("000000")


def test_surrogate_consistent_across_notes(tmp_path, monkeypatch):
    monkeypatch.setenv("DEID_SECRET", "k")
    policy = tmp_path / "p.yaml"
    policy.write_text("levels:\n  1: {operators: {NAME: surrogate}}\n  2: {}\n  3: {}\n")
    from deid.config import load_config
    from deid.pipeline import Pipeline
    p = Pipeline(load_config(policies=str(policy)))
    first = p.process("患者张建国，男。").masked[1]
    second = p.process("主治医师：王海涛。家属诉患者张建国夜间咳嗽。").masked[1]
    fake = first[2:5]
    assert fake != "张建国" and fake in second


@pytest.mark.parametrize("body, message", [
    ("levels:\n  1: {}\n  2: {}\n", "levels 1, 2 and 3"),
    ("levels:\n  1: {operators: {NAME: shred}}\n  2: {}\n  3: {}\n", "unknown operator"),
    ("levels:\n  1: {operators: {PHONE: tag}}\n  2: {}\n  3: {}\n", "unknown entity type"),
    ("levels:\n  1: {operators: {NAME: generalize}}\n  2: {}\n  3: {}\n", "ADDRESS only"),
])
def test_policy_validation(tmp_path, body, message):
    policy = tmp_path / "p.yaml"
    policy.write_text(body)
    with pytest.raises(PolicyError, match=message):
        load_policies(str(policy))
