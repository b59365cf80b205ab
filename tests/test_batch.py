"""One Arrow batch through BatchProcessor: title and text analysed together, masked and reported separately."""
import time

import pyarrow as pa
import pytest

from deid.batch import BatchProcessor
from deid.config import load_config
from deid.pipeline import Note, NoteError, NoteTooLarge, Pipeline
from deid.spans import EntityType, Span, split_spans


def _batch(rows):
    return pa.RecordBatch.from_pylist(rows, schema=pa.schema(
        [("note_id", pa.int64()), ("note_title", pa.string()), ("note_text", pa.string())]))


def test_title_and_text_spans_keep_their_own_offsets():
    title, text = "张建国出院记录", "患者张建国，手机13812345678。"
    out = BatchProcessor(Pipeline(), keep_span_text=True).process(_batch([
        {"note_id": 1, "note_title": title, "note_text": text},
        {"note_id": 2, "note_title": None, "note_text": text}])).to_pylist()
    first, second = out
    assert first["status"] == second["status"] == "ok"
    for row in out:
        for s in row["spans"]:
            source = title if s["field"] == "note_title" else text
            assert source[s["span_start"]:s["span_end"]] == s["span_text"]
    assert {(s["field"], s["span_text"]) for s in first["spans"]} >= {
        ("note_title", "张建国"), ("note_text", "张建国"), ("note_text", "13812345678")}
    for k in (1, 2, 3):
        assert "张建国" not in first[f"masked_title_l{k}"] and "张建国" not in first[f"masked_text_l{k}"]
        assert second[f"masked_title_l{k}"] is None
    assert all(s["field"] == "note_text" for s in second["spans"])
    assert first["masked_count_l1"] == second["masked_count_l1"] + 1


def test_a_span_across_the_separator_is_cut_and_both_sides_kept():
    #            0123 4 5678
    joined = "出院张三\n李四住院"
    spans = [Span(2, 4, EntityType.NAME, "张三", 1, "pattern", 1.0),
             Span(3, 7, EntityType.NAME, "三\n李四", 1, "llm", 0.8),
             Span(5, 7, EntityType.NAME, "李四", 1, "pattern", 1.0)]
    left, right = split_spans(spans, 4, 5)
    assert [(s.start, s.end, s.text) for s in left] == [(2, 4, "张三"), (3, 4, "三")]
    assert [(s.start, s.end, s.text) for s in right] == [(0, 2, "李四"), (0, 2, "李四")]
    assert joined[5:7] == "李四"


def test_generalized_address_in_the_text_keeps_the_right_prefix_after_the_title():
    # Offsets shift by the title's length; the address's division prefixes must not.
    text = "现住河北省廊坊市广阳区福福街46号。"
    (row,) = BatchProcessor(Pipeline()).process(_batch([
        {"note_id": 1, "note_title": "入院记录", "note_text": text}])).to_pylist()
    assert row["masked_text_l1"] == "现住河北省廊坊市广阳区〔地址〕。"
    assert row["masked_text_l2"] == "现住河北省〔地址〕。"
    assert row["masked_text_l3"] == "现住〔地址〕。"


SLOW = "患者张建国，家住北京市朝阳区建国路88号，手机13812345678。" * 5_000   # about 3 s of detection
QUICK = "患者李秀英，电话13900001111。"


def _budgeted(seconds):
    return BatchProcessor(Pipeline(load_config(limits={"note_time_budget_s": seconds})))


def test_a_note_over_its_time_budget_is_quarantined_and_the_batch_goes_on():
    processor = _budgeted(0.05)
    processor.process(_batch([{"note_id": 0, "note_title": None, "note_text": QUICK}]))   # the worker's first note
    t0 = time.perf_counter()
    out = processor.process(_batch([{"note_id": 1, "note_title": None, "note_text": QUICK},
                                    {"note_id": 2, "note_title": "出院记录", "note_text": SLOW},
                                    {"note_id": 3, "note_title": None, "note_text": QUICK}])).to_pylist()
    assert time.perf_counter() - t0 < 1.5
    assert [r["status"] for r in out] == ["ok", "quarantined", "ok"]
    assert (out[1]["stage"], out[1]["error_class"]) == ("detect", "NoteTimeout")
    assert "张建国" not in out[1]["message"] and out[1]["masked_text_l3"] is None
    assert "李秀英" not in out[0]["masked_text_l3"]


def test_a_detector_stuck_in_a_loop_is_stopped_and_the_pipeline_still_works():
    processor = _budgeted(0.5)
    before = processor.process(_batch([{"note_id": 1, "note_title": "入院记录", "note_text": QUICK}])).to_pylist()
    components = processor.pipeline.components
    name, contact = next((n, c) for n, c in components if n == "contact")

    class Stuck:
        def detect(self, doc):
            while "卡住" in doc.text:     # a pure-Python loop that never ends
                pass
            return contact.detect(doc)
    components[[n for n, _ in components].index(name)] = (name, Stuck())
    out = processor.process(_batch([{"note_id": 2, "note_title": None, "note_text": "卡住" + QUICK},
                                    {"note_id": 1, "note_title": "入院记录", "note_text": QUICK}])).to_pylist()
    assert out[0]["error_class"] == "NoteTimeout" and out[1] == before[0]
    again = processor.process(_batch([{"note_id": 1, "note_title": "入院记录", "note_text": QUICK}]))
    assert again.to_pylist() == before


def test_the_time_budget_does_not_change_the_pipeline_version():
    assert load_config(limits={"note_time_budget_s": 5}).digest == load_config().digest


def test_dates_shift_per_person_in_the_text_and_in_the_row():
    """The job's path: person_id keys the shift (a note without one is its own person), the row's note_date and
    note_datetime move with the text, and level 3 keeps the year alone."""
    import os
    from datetime import date, datetime, timedelta

    from deid.masking import date_offset
    schema = pa.schema([("note_id", pa.int64()), ("person_id", pa.int64()), ("note_date", pa.date32()),
                        ("note_datetime", pa.timestamp("us")), ("note_title", pa.string()), ("note_text", pa.string())])
    day, at = date(2023, 3, 15), datetime(2023, 3, 15, 9, 30)
    rows = [{"note_id": 1, "person_id": 7, "note_date": day, "note_datetime": at, "note_title": "出院记录",
             "note_text": "2023-03-15入院，3月20日出院。"},
            {"note_id": 2, "person_id": 7, "note_date": date(2023, 4, 1), "note_datetime": None, "note_title": None,
             "note_text": "2023-03-20复查。"},
            {"note_id": 3, "person_id": None, "note_date": day, "note_datetime": None, "note_title": None,
             "note_text": "2023-03-20复查。"}]
    out = BatchProcessor(Pipeline()).process(pa.RecordBatch.from_pylist(rows, schema=schema)).to_pylist()
    key = os.environ["DEID_SECRET"].encode()
    person, own = (timedelta(days=date_offset(key, k, 180)) for k in ("person:7", "note:3"))
    first, second, third = out
    assert first["masked_text_l1"] == f"{day + person:%Y-%m-%d}入院，{(date(2023, 3, 20) + person).month}月" \
                                      f"{(date(2023, 3, 20) + person).day}日出院。"
    assert second["masked_text_l2"] == f"{date(2023, 3, 20) + person:%Y-%m-%d}复查。"
    assert third["masked_text_l1"] == f"{date(2023, 3, 20) + own:%Y-%m-%d}复查。"
    assert (first["masked_note_date_l1"], first["masked_note_datetime_l2"]) == (day + person, at + person)
    assert (first["masked_note_date_l3"], first["masked_note_datetime_l3"]) == (date(2023, 1, 1), datetime(2023, 1, 1))
    assert first["masked_text_l3"] == "2023年入院，〔日期〕出院。" and second["masked_note_datetime_l1"] is None


def test_format_characters_inside_values_are_masked_in_the_jobs_path():
    text = "患者张\u200b三，电话138\u200d1234\u200e5678，邮箱li\u00adsi@example.com。"
    rows = [{"note_id": 1, "note_title": None, "note_text": text}]
    out = BatchProcessor(Pipeline()).process(_batch(rows)).to_pylist()
    assert out[0]["masked_text_l3"] == "患者〔姓名〕，电话〔联系方式〕，邮箱〔联系方式〕。"


def test_the_job_and_the_command_line_take_one_path():
    """A NOTE row without a title comes out of the job's batches as Pipeline.process (deid annotate, the notebook
    API) gives it: both go through Pipeline.process_notes."""
    from datetime import date

    from deid.spans import NoteContext
    pipeline = Pipeline()
    text = "患者张建国，2023年3月15日入住杭州市第一人民医院，现住杭州市西湖区文三路100号，手机13812345678。"
    schema = pa.schema([("note_id", pa.int64()), ("person_id", pa.int64()), ("note_date", pa.date32()),
                        ("note_title", pa.string()), ("note_text", pa.string())])
    row = {"note_id": 5, "person_id": 42, "note_date": date(2023, 3, 15), "note_title": None, "note_text": text}
    (out,) = BatchProcessor(pipeline, keep_span_text=True).process(pa.RecordBatch.from_pylist([row], schema=schema)
                                                                   ).to_pylist()
    result = pipeline.process(text, person_id=42, note_id=5, note_date=date(2023, 3, 15))
    assert [(s["span_start"], s["span_end"], s["entity_type"]) for s in out["spans"]] == [
        (s.start, s.end, s.entity_type.value) for s in result.spans]
    for k in (1, 2, 3):
        assert out[f"masked_text_l{k}"] == result.masked[k]
        assert out[f"masked_count_l{k}"] == result.masked_count[k]
    assert out["masked_text_l1"] != text and "张建国" not in out["masked_text_l1"]
    (note,) = pipeline.process_notes([Note(text, None, NoteContext(42, 5, date(2023, 3, 15)))])
    assert note.spans["text"] == result.spans and note.spans["title"] == []


def test_a_note_that_fails_is_isolated_and_a_single_note_raises_its_error():
    pipeline = Pipeline(load_config(limits={"max_chars": 40}))
    long = "患者张建国" * 10
    ok, refused, bad_type = pipeline.process_notes([Note("患者李秀英，电话13900001111。", "出院记录"), Note(long),
                                                    Note(123)])
    assert ok.failure is None and "李秀英" not in ok.masked["text"][3] and ok.masked["title"][1] == "出院记录"
    assert (refused.failure.stage, refused.failure.error_class) == ("validate", "NoteTooLarge")
    assert "张建国" not in refused.failure.message and refused.masked == {}
    assert bad_type.failure.message == "note text must be a string, not int"
    with pytest.raises(NoteTooLarge):
        pipeline.process(long)
    with pytest.raises(NoteError, match="string"):
        pipeline.process(None)
