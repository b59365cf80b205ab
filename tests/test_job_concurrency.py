"""Two runs over the same output tables, on both engines: the second is refused while the first holds the run
lock, in the same process (a notebook) or in another (spark-submit); and rows that a run without a lock (an
object store) let another run duplicate are repaired by the next run."""
import os
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake
from test_job import ROOT, assert_exactly_once, engine, forget_tables, job, notes, spark, table, write_notes  # noqa: F401

from jobs.deid_notes import EXIT_BUSY, run
from udfs.delta import OUTPUT_LOCK, RunInProgress, claim_output


def wait_for_lock_holder(state, timeout=120.0) -> str:
    """The lock file's text once a run has taken it (it writes its run id after the lock is held)."""
    path = os.path.join(state, OUTPUT_LOCK)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if text.startswith("run "):
                return text
        time.sleep(0.05)
    raise AssertionError("the first run never took the run lock")


def test_a_run_beside_a_running_one_is_refused_and_writes_nothing(spark, engine, tmp_path, notes):
    write_notes(tmp_path, notes)
    first_cfg, second_cfg = job(tmp_path, engine=engine), job(tmp_path, engine=engine)
    result = {}
    first = threading.Thread(target=lambda: result.update(row=run(spark, first_cfg)))
    first.start()
    try:
        holder = wait_for_lock_holder(first_cfg.state)
        with pytest.raises(RunInProgress) as refused:
            run(spark, second_cfg)
    finally:
        first.join()
    row = result["row"]
    assert row["status"] == "succeeded" and row["notes_written"] == 40
    assert f"run {row['run_id']} " in holder and row["run_id"] in str(refused.value)
    assert str(first_cfg.output_root) in str(refused.value) and "\n" not in str(refused.value)
    runs = table(tmp_path, "deid_runs")
    assert runs.column("run_id").to_pylist() == [row["run_id"]]   # the refused run left no row
    assert_exactly_once(tmp_path, notes.column("note_id").to_pylist())
    # Once the first has ended, the lock is free: the next run finds every note landed.
    again = run(spark, second_cfg)
    assert (again["notes_unchanged"], again["notes_written"]) == (40, 0)


def test_spark_submit_beside_a_running_run_exits_for_a_retry(tmp_path, notes):
    """The job as a scheduler starts it, while another process holds the lock: exit status 75 (EX_TEMPFAIL), one
    error line naming the holder, no traceback, no table written. (spark-submit passes a Python driver's stderr
    to its own stdout.)"""
    write_notes(tmp_path, notes)
    out = tmp_path / "out"
    holder = claim_output(str(out / "_deid_state"), "20261201T000000-0123abcd", str(out))
    try:
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1",
               "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
        proc = subprocess.run(
            ["spark-submit", "--driver-java-options", f"-Dlog4j2.configurationFile=file:{ROOT}/conf/log4j2.properties",
             str(ROOT / "jobs" / "deid_notes.py"), "--input", str(tmp_path / "note"), "--output", str(out)],
            env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    finally:
        holder.close()
    said = proc.stdout + proc.stderr
    assert proc.returncode == EXIT_BUSY, said[-2000:]
    errors = [line for line in said.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "run 20261201T000000-0123abcd (pid" in errors[0], said[-2000:]
    assert "Traceback" not in said
    assert not (out / "deid_runs").exists() and not (out / "note_deid_l1").exists()


def test_rows_a_lockless_second_run_duplicated_are_repaired_by_the_next_run(spark, engine, tmp_path, notes):
    """Where the state folder has no locks, two runs can both append. A note held twice in one table, or held in
    as many rows as tables but not once in each, is not landed: the next run does it again and leaves one row."""
    write_notes(tmp_path, notes)
    run(spark, job(tmp_path, engine=engine))
    ids = notes.column("note_id").to_pylist()
    twice, lopsided = ids[:3], ids[3:5]
    l1 = table(tmp_path, "note_deid_l1")
    dup = l1.filter(pc.is_in(l1["note_id"], pa.array(twice + lopsided)))
    write_deltalake(str(tmp_path / "out" / "note_deid_l1"), dup, mode="append")
    # The lopsided notes: two rows in l1, one in l2, none in l3 (three rows in all, as many as tables).
    DeltaTable(str(tmp_path / "out" / "note_deid_l3")).delete(f"note_id in ({', '.join(map(str, lopsided))})")
    row = run(spark, job(tmp_path, engine=engine))
    assert (row["notes_written"], row["notes_unchanged"]) == (5, 35)
    assert_exactly_once(tmp_path, ids)
