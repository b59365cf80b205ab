from deid.merge import merge
from deid.spans import EntityType as T
from deid.spans import Span


def span(s, e, t, tier=1, det="pattern", score=0.9):
    return Span(s, e, t, "x" * (e - s), tier, det, score)


def test_longest_wins_and_keeps_agreement():
    a = span(0, 4, T.PREGNANCY, 1, "dictionary")
    b = span(0, 6, T.PREGNANCY, 1, "pattern")
    out = merge([a, b])
    assert [(s.start, s.end) for s in out] == [(0, 6)]
    assert out[0].sources == {"dictionary", "pattern"}


def test_container_of_other_type_wins():
    hospital = span(0, 6, T.HOSPITAL)
    place = span(0, 2, T.ADDRESS, 2)
    out = merge([place, hospital])
    assert [s.entity_type for s in out] == [T.HOSPITAL]


def test_equal_length_uses_type_priority_then_score():
    out = merge([span(0, 4, T.NAME, score=0.99), span(0, 4, T.HOSPITAL, score=0.5)])
    assert out[0].entity_type is T.HOSPITAL


def test_merging_never_lowers_protection():
    wide = span(0, 10, T.STD, tier=3)
    inner = span(2, 5, T.STD, tier=1)
    out = merge([wide, inner])
    assert len(out) == 1 and out[0].tier == 1


def test_result_is_sorted_and_disjoint():
    spans = [span(5, 8, T.NAME), span(0, 3, T.CONTACT), span(7, 12, T.ADDRESS, 2), span(20, 22, T.NAME)]
    out = merge(spans)
    assert all(a.end <= b.start for a, b in zip(out, out[1:], strict=False))


def test_tier_rules_for_the_ensemble():
    detector = span(0, 4, T.STD, tier=3, det="dictionary")     # e.g. a negative screening result
    llm = span(0, 4, T.STD, tier=1, det="llm")
    assert merge([detector, llm])[0].tier == 3                                    # detectors_first (default)
    assert merge([detector, llm], tier_rule="protective")[0].tier == 1
    assert merge([detector, llm], tier_rule="llm_first")[0].tier == 1
    only_llm = span(10, 14, T.ADDRESS, tier=2, det="llm")
    assert merge([only_llm], tier_rule="detectors_first")[0].tier == 2
    assert merge([detector, llm], tier_rule="detectors_first")[0].sources == {"dictionary", "llm"}


def test_detector_spans_win_conflicts_with_llm_spans_and_llm_fills_gaps():
    address = Span(0, 6, T.ADDRESS, "北京市海淀区", 2, "dictionary", 0.95)
    wrong = Span(0, 8, T.HOSPITAL, "北京市海淀区医院", 1, "llm", 0.8)
    gap = Span(20, 23, T.NAME, "张建国", 1, "llm", 0.8)
    out = merge([address, wrong, gap])
    assert [(s.entity_type, s.start, s.end) for s in out] == [(T.ADDRESS, 0, 6), (T.NAME, 20, 23)]


def test_same_type_llm_span_widens_a_detector_span():
    det = Span(0, 6, T.ADDRESS, "北京市海淀区", 1, "dictionary", 0.95)
    llm = Span(3, 10, T.ADDRESS, "海淀区中关村路", 1, "llm", 0.8)
    (out,) = merge([det, llm])
    assert (out.start, out.end, out.text) == (0, 10, "北京市海淀区中关村路") and out.sources == {"dictionary", "llm"}


def test_a_losing_detector_span_keeps_what_no_winner_covers():
    text = "浣纱路356号_杭州市第一人民医院"
    hospital_at = text.index("杭州")
    address = Span(0, len(text) - 2, T.ADDRESS, text[:-2], 1, "pattern", 0.85)
    hospital = Span(hospital_at, len(text), T.HOSPITAL, text[hospital_at:], 1, "pattern", 0.9)
    out = merge([address, hospital])
    assert [(s.entity_type, s.text) for s in out] == [(T.ADDRESS, text[:-2]), (T.HOSPITAL, "医院")]
    one_char = Span(len(text) - 3, len(text) - 1, T.NAME, text[-3:-1], 1, "ner", 0.7)   # 民医: 1 char left
    assert [s.entity_type for s in merge([address, one_char])] == [T.ADDRESS]
    llm = Span(hospital_at, len(text), T.HOSPITAL, text[hospital_at:], 1, "llm", 0.8)  # a losing LLM span is dropped
    assert [s.entity_type for s in merge([address, llm])] == [T.ADDRESS]
