"""Date shifting: one keyed offset per person, every interval kept, every date valid, every form kept."""
from collections import Counter
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deid.dates import read_date
from deid.masking import date_offset
from deid.spans import EntityType

CN = "〇一二三四五六七八九"


def cn_number(n: int) -> str:
    tens, ones = divmod(n, 10)
    return (("" if tens == 1 else CN[tens]) + "十" if tens else "") + (CN[ones] if ones else "")


# How a note may write a date (full dates only: a date without a day or year moves its whole month or year).
WRITERS = {
    "ymd": lambda d: f"{d.year}年{d.month}月{d.day}日",
    "ymd_pad": lambda d: f"{d.year}年{d.month:02d}月{d.day:02d}日",
    "ymd_sep": lambda d: f"{d.year}-{d.month:02d}-{d.day:02d}",
    "ymd_slash": lambda d: f"{d.year}/{d.month}/{d.day}",
    "ymd_dot": lambda d: f"{d.year}.{d.month}.{d.day}",
    "ymd_cn": lambda d: "".join(CN[int(c)] for c in str(d.year)) + f"年{cn_number(d.month)}月{cn_number(d.day)}日",
    "ymd_time": lambda d: f"{d.year}-{d.month:02d}-{d.day:02d} 08:30",
}
dates = st.dates(min_value=date(1950, 1, 1), max_value=date(2030, 12, 31))
forms = st.sampled_from(sorted(WRITERS))


def shifted_dates(pipeline, text, level, person_id, note_date):
    """The dates in the masked text at a level, read back (the masked note is analysed again)."""
    masked = pipeline.process(text, person_id=person_id, note_date=note_date).masked[level]
    spans = [s for s in pipeline.analyze(masked) if s.entity_type is EntityType.DATE]
    return [read_date(s.text) for s in spans]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(person=st.integers(1, 10**9), first=dates, gap=st.integers(-3000, 3000), forms=st.tuples(forms, forms),
       other_note=dates, level=st.sampled_from([1, 2]))
def test_intervals_are_kept_within_and_across_notes(pipeline, person, first, gap, forms, other_note, level):
    second = first + timedelta(days=gap)
    if not date(1950, 1, 1) <= second <= date(2030, 12, 31):
        return
    note = f"患者于{WRITERS[forms[0]](first)}入院，{WRITERS[forms[1]](second)}复查。"
    a, b = shifted_dates(pipeline, note, level, person, first)
    assert b.as_date(0) - a.as_date(0) == second - first
    # the same person's other note (another day, another note date): the same offset
    (c,) = shifted_dates(pipeline, f"随访：{WRITERS[forms[0]](first)}。", level, person, other_note)
    assert c.as_date(0) == a.as_date(0)
    # the written form is kept: the moved date reads back in the form it was written in
    for written, moved in zip((WRITERS[forms[0]](first), WRITERS[forms[1]](second)), (a, b), strict=True):
        original = read_date(written)
        assert moved.form == original.form and moved.groups.keys() == original.groups.keys()
        assert moved.groups.get("sep") == original.groups.get("sep") and moved.rest == original.rest


def test_shift_is_the_same_across_runs(pipeline):
    from deid.config import load_config
    from deid.pipeline import Pipeline
    note = "2023年3月15日入院，3月20日出院。"
    again = Pipeline(load_config())
    assert (again.process(note, person_id=7, note_date=date(2023, 3, 15)).masked
            == pipeline.process(note, person_id=7, note_date=date(2023, 3, 15)).masked)


def test_offsets_spread_over_persons_never_zero():
    offsets = [date_offset(b"test-key", f"person:{p}", 180) for p in range(1000)]
    assert 0 not in offsets and all(-180 <= o <= 180 for o in offsets)
    assert max(Counter(offsets).values()) <= 20   # no offset shared by more than 2% of 1,000 persons
    other_key = [date_offset(b"other-key", f"person:{p}", 180) for p in range(1000)]
    # the key, not the person id alone, decides
    assert sum(a != b for a, b in zip(offsets, other_key, strict=True)) > 950


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(person=st.integers(1, 10**6), month=st.integers(1, 12), day=st.integers(1, 31), year=st.integers(1990, 2030))
def test_no_shifted_date_is_invalid(pipeline, person, month, day, year):
    try:
        date(year, month, day)
    except ValueError:
        return
    for text in (f"{year}年{month}月{day}日", f"{month}月{day}日", f"{year}年{month}月"):
        masked = pipeline.process(f"于{text}就诊", person_id=person, note_date=date(year, 6, 1)).masked[1]
        (span,) = [s for s in pipeline.analyze(masked) if s.entity_type is EntityType.DATE]
        assert read_date(span.text) is not None, masked   # a real date (a 29 February only in a leap year)


def test_levels_shift_and_keep_the_year(pipeline):
    r = pipeline.process("2023年3月15日入院。", person_id=1, note_date=date(2023, 3, 15))
    assert r.masked[1] == r.masked[2] != "2023年3月15日入院。"
    assert r.masked[3] == "2023年入院。"
    assert pipeline.process("3月15日入院。", person_id=1).masked[3] == "〔日期〕入院。"


def test_paper_preset_finds_the_seven_types_only():
    from deid.config import load_config
    from deid.pipeline import Pipeline
    paper = Pipeline(load_config(policy_preset="paper"))
    r = paper.process("患者张建国，住院号：ZY001，2023年3月15日入院，93岁。")
    assert {s.entity_type for s in r.spans} == {EntityType.NAME}
    assert r.masked[3] == "患者〔姓名〕，住院号：ZY001，2023年3月15日入院，93岁。"
    assert paper.version != Pipeline(load_config()).version


def test_a_shifting_policy_refuses_to_start_without_a_key(monkeypatch):
    import pytest

    from deid.config import load_config
    from deid.masking import PolicyError
    from deid.pipeline import Pipeline
    monkeypatch.delenv("DEID_SECRET", raising=False)
    with pytest.raises(PolicyError, match="DEID_SECRET"):
        Pipeline(load_config())
    Pipeline(load_config(policy_preset="paper"))   # tags only: no key needed
