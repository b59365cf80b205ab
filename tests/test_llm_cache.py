"""The LLM stage's answers kept across runs (deid.llm.cache, the job's deid_llm_answers table): keyed by what
decides an answer, holding no text, asked for once, and through the job on the real local model: a re-run after a
dictionary edit asks the model only the requests whose key changed, with the spans a run without the table gets."""
import hashlib
import os
import shutil
import threading

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from support import dead_url
from test_job import engine, forget_tables, job, spark, table, write_notes  # noqa: F401

from deid import io as dio
from deid.config import load_config
from deid.llm.cache import AnswerCache, KeptAnswer, request_key
from deid.llm.parse import parse_json
from deid.pipeline import Note, Pipeline, joined_note
from deid.resources import resources_dir
from deid.synth.generator import generate
from deid.synth.omop import note_table
from jobs.deid_notes import FAIL_ENV, run
from udfs.delta import SparkDelta, spark_schema

SECRET = b"answer-cache-test-key"
MESSAGES = [{"role": "system", "content": "标注"}, {"role": "user", "content": "患者张建国，手机13812345678。"}]
DECODING = {"model": "m", "max_tokens": 128, "temperature": 0.0, "format": "json"}


def test_the_key_changes_with_whatever_decides_the_answer_and_only_then():
    key = request_key(SECRET, DECODING, MESSAGES)
    assert key == request_key(SECRET, dict(reversed(DECODING.items())), [dict(m) for m in MESSAGES])
    other_text = [MESSAGES[0], {"role": "user", "content": "患者张建华，手机13812345678。"}]
    others = [request_key(SECRET, {**DECODING, "model": "m2"}, MESSAGES),
              request_key(SECRET, {**DECODING, "max_tokens": 256}, MESSAGES),
              request_key(SECRET, DECODING, other_text), request_key(b"another-key", DECODING, MESSAGES)]
    assert len({key, *others}) == 5
    # keyed: not the plain digest of what was sent, so the table cannot be matched against guessed notes
    assert key not in {hashlib.sha256(m["content"].encode()).hexdigest() for m in MESSAGES}


def test_a_kept_answer_holds_offsets_and_types_never_the_text():
    text = "患者张建国，手机13812345678，HIV抗体阳性。"
    report = parse_json(text, '[{"type": "NAME", "text": "张建国"}, {"type": "CONTACT", "text": "13812345678"},'
                              ' {"type": "STD", "text": "HIV", "tier": 1}, {"type": "NAME", "text": "李四"}]')
    kept = KeptAnswer.of(report, truncated=True)
    stored = kept.to_json()
    assert not any(phi in stored for phi in ("张建国", "13812345678", "HIV"))
    back = KeptAnswer.from_json(stored)
    assert back == kept and back.truncated and back.dropped == 1
    assert [(f.text, f.entity_type.value, f.tier) for f in back.report(text).found] == [
        ("张建国", "NAME", None), ("13812345678", "CONTACT", None), ("HIV", "STD", 1)]


def llm_pipeline(url: str, secret=SECRET, **llm) -> Pipeline:
    """The stage sends every chunk (routing: whole), so each of these short notes makes one request."""
    return Pipeline(load_config(llm={"enabled": True, "base_url": url, "retries": 0, "timeout_s": 5,
                                     "routing": "whole", **llm}), secret)


def test_a_request_the_cache_knows_is_not_sent():
    """The server is dead: a request sent fails. With every answer known, none fails, and the known answers' spans
    are the note's."""
    pipeline = llm_pipeline(dead_url())
    notes = [Note("患者王志强，男，52岁。"), Note("家属李秀英陪同。")]
    keys = pipeline.llm_request_keys(notes)
    assert [len(k) for k in keys] == [1, 1]
    cold = pipeline.process_notes(notes, llm_cache=pipeline.llm_cache())
    assert [r.llm_status for r in cold] == ["failed:connect"] * 2 and [r.llm_calls for r in cold] == [1, 1]
    start = joined_note(None, notes[0].text).index("王志强")      # offsets into the request's text
    known = {keys[0][0]: KeptAnswer(((start, start + 3, "NAME", 1),)).to_json(), keys[1][0]: KeptAnswer(()).to_json()}
    warm = pipeline.process_notes(notes, llm_cache=pipeline.llm_cache(known))
    assert [(r.llm_status, r.llm_calls, r.llm_cache_hits) for r in warm] == [("ok", 0, 1), ("ok", 0, 1)]
    assert [s.text for s in warm[0].spans["text"] if "llm" in s.sources] == ["王志强"]
    # without a secret nothing is keyed, so nothing is kept or looked up
    assert llm_pipeline(dead_url(), secret=None).llm_cache() is None


def test_a_note_process_notes_refuses_asks_nothing():
    """A title that is not a string, a note over the size limit: refused by process_notes, so no request keys."""
    pipeline = llm_pipeline(dead_url())
    notes = [Note("家属李秀英陪同。", 42), Note("患" * (pipeline.config.max_chars + 1)), Note("家属李秀英陪同。")]
    results = pipeline.process_notes(notes, llm_cache=pipeline.llm_cache())
    assert [r.failure.stage if r.failure else None for r in results] == ["validate", "validate", None]
    assert [len(k) for k in pipeline.llm_request_keys(notes)] == [0, 0, 1]


def test_the_same_request_twice_in_a_batch_is_sent_once():
    pipeline = llm_pipeline(dead_url())
    cache = pipeline.llm_cache()
    results = pipeline.process_notes([Note("患者王志强，男，52岁。")] * 3, llm_cache=cache)
    assert [r.llm_calls for r in results] == [1, 0, 0]
    assert not cache.learnt          # a failed request is never kept


def notes_with(texts: list[str]) -> pa.Table:
    table_ = note_table(generate(len(texts), 5))
    return table_.set_column(table_.schema.get_field_index("note_text"), "note_text", pa.array(texts, pa.string()))


# Routed (the default): the first two notes hold what the detectors leave to the model, the third does not.
TEXTS = ["患者张建国，男，52岁，于仁心堂就诊。", "家属李秀英陪同，住北京市东城区。", "患者王志强，孕2产1。"]


def answers(tmp_path) -> list[dict]:
    return table(tmp_path, "deid_llm_answers").to_pylist()


def request_keys(notes: pa.Table, llm: dict) -> list[list[str]]:
    """What the job will ask, per note, as the driver sees it (the resources $DEID_RESOURCES names)."""
    pipeline = Pipeline(load_config(**llm), os.environ["DEID_SECRET"].encode())
    return pipeline.llm_request_keys([Note(r["note_text"], r["note_title"]) for r in notes.to_pylist()])


def test_a_rerun_after_a_dictionary_edit_asks_only_what_changed(spark, tmp_path, served, monkeypatch):
    res = tmp_path / "resources"
    shutil.copytree(resources_dir(), res)
    monkeypatch.setenv("DEID_RESOURCES", str(res))
    notes = notes_with(TEXTS)
    write_notes(tmp_path, notes)
    llm = {"llm": {"enabled": True, "base_url": served, "timeout_s": 120, "retries": 1, "max_tokens": 128}}
    before = {k for keys in request_keys(notes, llm) for k in keys}
    assert before
    first = run(spark, job(tmp_path, pipeline_overrides=llm))
    assert (first["notes_written"], first["llm_cache_hits"], first["llm_calls"]) == (3, 0, len(before))
    kept = answers(tmp_path)
    assert {a["key"] for a in kept} == before and {a["run_id"] for a in kept} == {first["run_id"]}
    for a in kept:      # the table holds keys and offsets: no text, no unkeyed digest of any note
        assert not any(word in a["answer"] for word in ("张建国", "李秀英", "王志强", "仁心堂"))
        assert a["key"] not in {hashlib.sha256(t.encode()).hexdigest() for t in TEXTS}

    with open(res / "dictionaries" / "hospitals.tsv", "a", encoding="utf-8") as f:
        f.write("仁心堂中医医院\t北京\t仁心堂\t\n")
    after = [k for keys in request_keys(notes, llm) for k in keys]
    changed = set(after) - before
    second = run(spark, job(tmp_path, pipeline_overrides=llm))
    assert second["pipeline_version"] != first["pipeline_version"] and second["notes_written"] == 3
    assert second["llm_calls"] == len(changed) and second["llm_cache_hits"] == sum(k in before for k in after)
    assert second["llm_cache_hits"] >= 1          # the edit reaches some notes' requests, not every one
    assert len(answers(tmp_path)) == len(before) + len(changed)

    # The same spans as a run that keeps nothing (the model asked again for every request).
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copytree(tmp_path / "note", fresh / "note")
    third = run(spark, job(fresh, pipeline_overrides=llm, llm_cache=False))
    assert third["llm_calls"] == len(set(after)) and not (fresh / "out" / "deid_llm_answers").exists()

    def spans(root):
        return sorted((s["note_id"], s["field"], s["span_start"], s["span_end"], s["entity_type"], s["tier"],
                       s["detector"]) for s in table(root, "note_phi_spans").to_pylist())
    assert spans(tmp_path) == spans(fresh)


def test_answers_kept_before_a_kill_serve_the_rerun(spark, engine, tmp_path, served, monkeypatch):
    """Killed after the answers are kept, before any note table: the rerun asks the model nothing."""
    write_notes(tmp_path, notes_with(TEXTS[:2]))     # each makes one request
    llm = {"llm": {"enabled": True, "base_url": served, "timeout_s": 120, "retries": 1, "max_tokens": 128}}
    monkeypatch.setenv(FAIL_ENV, "llm_keep")
    with pytest.raises(RuntimeError, match="stopped on purpose"):
        run(spark, job(tmp_path, engine=engine, pipeline_overrides=llm))
    assert len(answers(tmp_path)) == 2 and not (tmp_path / "out" / "note_deid_l1").exists()
    monkeypatch.delenv(FAIL_ENV)
    row = run(spark, job(tmp_path, engine=engine, pipeline_overrides=llm))
    assert (row["notes_written"], row["llm_calls"], row["llm_cache_hits"]) == (2, 0, 2)
    assert len(answers(tmp_path)) == 2


def test_two_runs_keeping_answers_in_one_table_at_once_both_land(spark, engine, tmp_path):
    """Two jobs over different outputs may share one answers table (tables.answers: a path): each keeps its
    answers with one blind append, and appends do not conflict."""
    location = str(tmp_path / "shared_answers")
    ios = [SparkDelta(spark, engine, str(tmp_path / f"staging{i}")) for i in range(2)]
    frames = [spark.createDataFrame([(f"k{i}-{n}", KeptAnswer(()).to_json(), "m", "p", f"run{i}", None)
                                     for n in range(50)], spark_schema(dio.ANSWERS)) for i in range(2)]
    ios[0].append(location, frames[0].limit(1), dio.ANSWERS, "llm_answers")   # the table exists: both append
    errors = []

    def keep(i):
        try:
            ios[i].append(location, frames[i], dio.ANSWERS, "llm_answers")
        except Exception as exc:  # noqa: BLE001 - the assertion below names it
            errors.append(exc)
    threads = [threading.Thread(target=keep, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    keys = ios[0].read(location, dio.ANSWERS).select("key").collect()
    assert len(keys) == 101 and len({r.key for r in keys}) == 100


def test_optimize_compacts_the_kept_answers_too(spark, engine, tmp_path):
    """Each run that asked the model adds one small file of answers; --optimize folds them like the note tables."""
    write_notes(tmp_path, notes_with(TEXTS[:1]))
    run(spark, job(tmp_path, engine=engine))
    location = str(tmp_path / "out" / "deid_llm_answers")
    io = SparkDelta(spark, engine, str(tmp_path / "staging"))
    for i in range(3):
        io.append(location, spark.createDataFrame([(f"k{i}", KeptAnswer(()).to_json(), "m", "p", f"run{i}", None)],
                                                  spark_schema(dio.ANSWERS)), dio.ANSWERS, "llm_answers")
    before = sorted(map(repr, answers(tmp_path)))
    assert len(DeltaTable(location).file_uris()) >= 3
    run(spark, job(tmp_path, engine=engine, optimize=True))
    assert len(DeltaTable(location).file_uris()) == 1
    assert DeltaTable(location).history(1)[0]["operation"] == "OPTIMIZE"
    assert sorted(map(repr, answers(tmp_path))) == before


def test_a_cache_from_the_environment_of_a_pipeline_without_llm_is_none():
    assert Pipeline(load_config(), SECRET).llm_cache() is None
    assert isinstance(llm_pipeline(dead_url()).llm_cache({"k": "v"}), AnswerCache)
