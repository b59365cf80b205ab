"""Issue 18: a keyed note_digest, deterministic duplicates, rows without note_id, the per-note time budget,
stale staging folders and a rerun that commits nothing (real local SparkSession, real Delta tables)."""
import fcntl
import hashlib
import hmac
import os

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from test_job import MASKED, engine, forget_tables, job, notes, spark, table, versions, write_notes  # noqa: F401

from deid import io as dio
from jobs.deid_notes import JobRun, main, run
from udfs.delta import STAGING_LOCK

OUTPUTS = ["note_phi_spans", *MASKED, "deid_quarantine"]


def digests_in(tmp_path, name) -> dict:
    return {r["note_id"]: r["note_digest"] for r in table(tmp_path, name).to_pylist()}


def test_note_digest_is_an_hmac_keyed_by_deid_secret_in_spark_and_python(spark, tmp_path, notes, monkeypatch,
                                                                         capsys):
    key = "k" * 80                      # longer than SHA-256's block: the key is hashed first
    monkeypatch.setenv("DEID_SECRET", key)
    rows = notes.slice(0, 3).to_pylist()
    rows[1]["note_title"] = None
    rows[2]["note_text"] = ""
    write_notes(tmp_path, pa.Table.from_pylist(rows, schema=notes.schema))
    kept, _, _ = JobRun(spark, job(tmp_path)).read()
    got = {r["note_id"]: r["note_digest"] for r in kept.select("note_id", "note_digest").collect()}
    for r in rows:
        tagged = ["N" if v is None else "V" + v for v in (r["note_title"], r["note_text"])]
        message = "\x1f".join(tagged).encode("utf-8")
        want = hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
        assert got[r["note_id"]] == want == dio.note_digest(r["note_title"], r["note_text"], key.encode())
        assert want != hashlib.sha256(message).hexdigest()
    # The key's pads are literals of the query plan: explain (and so the Spark UI and event logs) redacts them.
    kept.explain("formatted")
    inner, outer = dio.hmac_pads(key.encode())
    plan = capsys.readouterr().out
    assert "sha2" in plan and inner.hex().upper() not in plan and outer.hex().upper() not in plan


def test_the_job_refuses_to_start_without_a_key(spark, tmp_path, notes, monkeypatch, capsys):
    monkeypatch.delenv("DEID_SECRET")
    write_notes(tmp_path, notes.slice(0, 2))
    assert main(["--input", str(tmp_path / "note"), "--output", str(tmp_path / "out")]) == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and "DEID_SECRET" in message and "secrets.token_hex(32)" in message
    with pytest.raises(dio.MissingSecret):
        run(spark, job(tmp_path))
    assert not (tmp_path / "out").exists()          # nothing written, not even a deid_runs row


def test_another_key_reprocesses_every_note_once_and_replaces_its_rows(spark, engine, tmp_path, notes, monkeypatch):
    twelve = notes.slice(0, 12)
    write_notes(tmp_path, twelve)
    monkeypatch.setenv("DEID_SECRET", "key-a")
    run(spark, job(tmp_path, engine=engine))
    spans_before = table(tmp_path, "note_phi_spans").num_rows
    monkeypatch.setenv("DEID_SECRET", "key-b")
    row = run(spark, job(tmp_path, engine=engine))
    assert (row["notes_written"], row["notes_unchanged"]) == (12, 0)
    texts = {r["note_id"]: (r["note_title"], r["note_text"]) for r in twelve.to_pylist()}
    for name in ["note_phi_spans", *MASKED]:
        rows = table(tmp_path, name).to_pylist()
        assert {r["note_digest"] for r in rows} == {dio.note_digest(*texts[i], b"key-b") for i in texts}, name
    for name in MASKED:
        assert sorted(table(tmp_path, name).column("note_id").to_pylist()) == sorted(texts), name
    assert table(tmp_path, "note_phi_spans").num_rows == spans_before


def test_a_repeated_note_id_keeps_one_row_by_time_then_digest_for_null_times_too(spark, engine, tmp_path, notes):
    base = notes.slice(0, 6).to_pylist()
    rows = list(base)
    for r in base[:4]:                  # a null note_datetime loses to any time
        rows.append({**r, "note_text": r["note_text"] + "（旧稿）", "note_datetime": None})
    both_null = [{**base[4], "note_datetime": None}, {**base[4], "note_text": "重复记录", "note_datetime": None}]
    rows = [r for r in rows if r["note_id"] != base[4]["note_id"]] + both_null
    write_notes(tmp_path, pa.Table.from_pylist(rows, schema=notes.schema))
    row = run(spark, job(tmp_path, engine=engine))
    assert (row["notes_read"], row["notes_written"], row["notes_quarantined"]) == (11, 6, 5)
    digest = {id(r): dio.note_digest(r["note_title"], r["note_text"]) for r in rows}
    winner = {base[i]["note_id"]: digest[id(base[i])] for i in (0, 1, 2, 3, 5)}
    winner[base[4]["note_id"]] = max(digest[id(r)] for r in both_null)
    for name in MASKED:
        assert digests_in(tmp_path, name) == winner, name
        assert table(tmp_path, name).num_rows == 6, name
    quarantined = sorted((q["note_id"], q["note_digest"], q["error_class"])
                         for q in table(tmp_path, "deid_quarantine").to_pylist())
    losers = sorted((r["note_id"], digest[id(r)], "DuplicateNoteId") for r in rows
                    if winner[r["note_id"]] != digest[id(r)])
    assert quarantined == losers


def test_rows_without_note_id_are_quarantined_and_counted(spark, engine, tmp_path, notes):
    rows = notes.slice(0, 5).to_pylist()
    orphans = [{**rows[0], "note_id": None}, {**rows[1], "note_id": None, "note_text": "患者王小明，无编号"}]
    write_notes(tmp_path, pa.Table.from_pylist(rows + orphans, schema=notes.schema))
    row = run(spark, job(tmp_path, engine=engine))
    assert row["status"] == "succeeded"
    assert (row["notes_read"], row["notes_written"], row["notes_quarantined"]) == (7, 5, 2)
    q = table(tmp_path, "deid_quarantine").to_pylist()
    assert sorted(r["note_digest"] for r in q) == sorted(dio.note_digest(o["note_title"], o["note_text"])
                                                         for o in orphans)
    for r in q:
        assert r["note_id"] is None and (r["stage"], r["error_class"]) == ("input", "NullNoteId")
        assert "2" in r["message"] and "王小明" not in r["message"] and "患者" not in r["message"]
    before = versions(tmp_path)
    again = run(spark, job(tmp_path, engine=engine))                # the same rows: nothing to replace
    assert again["notes_quarantined"] == 2 and versions(tmp_path) == before
    write_notes(tmp_path, pa.Table.from_pylist(rows + orphans[:1], schema=notes.schema))
    assert run(spark, job(tmp_path, engine=engine))["notes_quarantined"] == 1
    (left,) = table(tmp_path, "deid_quarantine").to_pylist()     # replaced, not added to
    assert left["note_digest"] == dio.note_digest(orphans[0]["note_title"], orphans[0]["note_text"])
    write_notes(tmp_path, pa.Table.from_pylist(rows, schema=notes.schema))
    run(spark, job(tmp_path, engine=engine))
    assert table(tmp_path, "deid_quarantine").num_rows == 0


def test_a_note_over_its_time_budget_is_quarantined_and_the_others_written(spark, tmp_path, notes):
    rows = notes.slice(0, 4).to_pylist()
    rows[1]["note_text"] = "患者张建国，家住北京市朝阳区建国路88号，手机13812345678。" * 20_000  # about 10 s
    write_notes(tmp_path, pa.Table.from_pylist(rows, schema=notes.schema))
    row = run(spark, job(tmp_path, pipeline_overrides={"limits": {"note_time_budget_s": 1}}))
    assert (row["notes_written"], row["notes_quarantined"]) == (3, 1)
    (q,) = table(tmp_path, "deid_quarantine").to_pylist()
    assert (q["note_id"], q["stage"], q["error_class"]) == (rows[1]["note_id"], "detect", "NoteTimeout")
    assert "张建国" not in q["message"]
    assert sorted(table(tmp_path, "note_deid_l3").column("note_id").to_pylist()) == sorted(
        r["note_id"] for i, r in enumerate(rows) if i != 1)


def test_stale_staging_folders_are_removed_and_a_running_one_kept(spark, tmp_path, notes):
    write_notes(tmp_path, notes.slice(0, 3))
    cfg = job(tmp_path)
    staging = tmp_path / "out" / "_staging"
    killed, old, live = (staging / f"20250101T00000{i}-0000000{i}" for i in range(3))
    for folder in (killed, old, live):
        (folder / "results").mkdir(parents=True)
        (folder / "results" / "part-0.parquet").write_bytes(b"masked text")
    (killed / STAGING_LOCK).touch()     # its process died: nobody holds the lock
    (live / STAGING_LOCK).touch()       # a run still going, in another process
    with open(live / STAGING_LOCK) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert run(spark, cfg)["status"] == "succeeded"
    assert sorted(os.listdir(staging)) == sorted([live.name, STAGING_LOCK])


def test_a_rerun_of_the_same_input_commits_only_its_runs_row(spark, engine, tmp_path, notes):
    rows = notes.slice(0, 6).to_pylist()
    rows.append({**rows[0], "note_text": "较早的重复记录",
                 "note_datetime": rows[0]["note_datetime"].replace(year=2000)})
    rows.append({**rows[1], "note_id": None})
    t = pa.Table.from_pylist(rows, schema=notes.schema)
    texts = t.column("note_text").cast(pa.binary()).to_pylist()
    texts[2] = b"\xed\xa0\x80" + "患者王五".encode()           # not UTF-8: quarantined as InvalidEncoding
    write_notes(tmp_path, t.set_column(t.schema.get_field_index("note_text"), "note_text",
                                       pa.array(texts, pa.binary()).view(pa.string())))
    first = run(spark, job(tmp_path, engine=engine))
    assert (first["notes_written"], first["notes_quarantined"]) == (5, 3)
    before = versions(tmp_path)
    again = run(spark, job(tmp_path, engine=engine))
    assert (again["notes_written"], again["notes_unchanged"], again["notes_quarantined"]) == (0, 5, 3)
    assert versions(tmp_path) == before
    assert DeltaTable(str(tmp_path / "out" / "deid_runs")).count() == 2
