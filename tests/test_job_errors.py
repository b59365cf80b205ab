"""Issue 23: the job's failures as a scheduler sees them, in subprocesses of the real job: a non-zero exit status
and one line on stderr that names the problem and the fix, no traceback unless --debug. The failures that can be
told before Spark starts are told before it starts (nothing is written, no JVM); two cases need Spark: a column
only Spark can see missing, and a run that leaves too many notes in quarantine (exit 3)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from deid.jobconfig import quarantine_exceeded
from deid.synth.generator import generate
from deid.synth.omop import note_table

ROOT = Path(__file__).resolve().parent.parent
JOB = str(ROOT / "jobs" / "deid_notes.py")
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "SPARK_LOCAL_IP": "127.0.0.1"}


@pytest.fixture(scope="module")
def notes():
    return note_table(generate(4, 321)).select(["note_id", "person_id", "note_date", "note_title", "note_text"])


def job(tmp_path, *args, command=(sys.executable,), env=None):
    done = subprocess.run([*command, JOB, "--output", str(tmp_path / "out"), *args], cwd=tmp_path,
                          env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout, done.stderr


def write_csv(path: Path, rows: list[dict], encoding: str = "utf-8") -> Path:
    with open(path, "w", encoding=encoding, newline="") as f:
        out = csv.DictWriter(f, list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    return path


def config(tmp_path, text: str) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(f"extends: {ROOT / 'conf' / 'local.yaml'}\n{text}", encoding="utf-8")
    return str(path)


def case(name, tmp_path, notes):
    """The arguments (and environment) of each failure that is told before Spark starts, and what its line says."""
    rows = [{**r, "note_date": r["note_date"].isoformat()} for r in notes.to_pylist()]
    if name == "unknown config key":
        return (["--config", config(tmp_path, "job:\n  partitons: 3\n")], {},
                "unknown key job.partitons; did you mean job.partitions?")
    if name == "bad config value":
        return (["--config", config(tmp_path, "delta:\n  engine: spark\n")], {},
                "delta.engine is 'spark'; give one of auto, native, delta-rs")
    if name == "config that does not exist":
        return ["--config", str(tmp_path / "nope.yaml")], {}, "nope.yaml does not exist; give --config"
    if name == "input that does not exist":
        return ["--input", str(tmp_path / "notes.parquet")], {}, "notes.parquet does not exist; check --input"
    if name == "folder of mixed files":
        (tmp_path / "in").mkdir()
        write_csv(tmp_path / "in" / "a.csv", rows)
        pq.write_table(notes, tmp_path / "in" / "b.parquet")
        return ["--input", str(tmp_path / "in")], {}, "cannot tell the format of input"
    if name == "not a parquet file":
        write_csv(tmp_path / "notes.parquet", rows)
        return (["--input", str(tmp_path / "notes.parquet")], {},
                "is not a Parquet file; check it, or give its format with --input-format")
    if name == "missing column":
        write_csv(tmp_path / "notes.csv", [{"id": r["note_id"], "text": r["note_text"]} for r in rows])
        return (["--input", str(tmp_path / "notes.csv")], {},
                "no note_id or note_text column; name the input's column(s) in the job config")
    if name == "delta table without the text":
        write_deltalake(str(tmp_path / "note"), notes.drop_columns(["note_text"]))
        return ["--input", str(tmp_path / "note")], {}, "no note_text column"
    if name == "mapped column missing":
        write_csv(tmp_path / "notes.csv", rows)
        mapped = config(tmp_path, "input:\n  columns: {note_text: body}\n")
        return ["--input", str(tmp_path / "notes.csv"), "--config", mapped], {}, "no column body (input.columns."
    if name == "wrong encoding":
        write_csv(tmp_path / "notes.csv", rows, encoding="gb18030")
        return ["--input", str(tmp_path / "notes.csv")], {}, "is not utf-8 text ("
    if name == "unknown encoding":
        write_csv(tmp_path / "notes.csv", rows)
        return ["--input", str(tmp_path / "notes.csv"), "--encoding", "klingon"], {}, "unknown encoding 'klingon'"
    if name == "missing key":
        pq.write_table(notes, tmp_path / "notes.parquet")
        return ["--input", str(tmp_path / "notes.parquet")], {"DEID_SECRET": ""}, "$DEID_SECRET is not set"
    if name == "unknown option":
        return ["--input-format", "xlsx"], {}, "argument --input-format: invalid choice: 'xlsx'"
    raise AssertionError(name)


BEFORE_SPARK = ["unknown config key", "bad config value", "config that does not exist", "input that does not exist",
                "folder of mixed files", "not a parquet file", "missing column", "delta table without the text",
                "mapped column missing",
                "wrong encoding", "unknown encoding", "missing key", "unknown option"]


@pytest.mark.parametrize("name", BEFORE_SPARK)
def test_a_failure_told_before_spark_is_one_line_and_exit_2(tmp_path, notes, name):
    args, env, says = case(name, tmp_path, notes)
    status, out, err = job(tmp_path, *args, env=env)
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and says in err, err
    assert "Traceback" not in err and not (tmp_path / "out").exists()   # nothing written: Spark never started
    assert not any(r["note_text"][:10] in err for r in notes.to_pylist())


def test_debug_adds_the_traceback(tmp_path, notes):
    args, env, says = case("missing column", tmp_path, notes)
    status, _, err = job(tmp_path, *args, "--debug", env=env)
    assert status == 2 and "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("error: ") and says in err.splitlines()[-1]


def test_a_column_only_spark_can_see_is_named_and_the_run_marked_failed(tmp_path, notes):
    """JSON Lines: its columns are those of all its lines, so Spark reads them; the run row records the failure."""
    (tmp_path / "notes.jsonl").write_text("".join(json.dumps({"note_id": r["note_id"], "body": r["note_text"]},
                                                             ensure_ascii=False) + "\n" for r in notes.to_pylist()),
                                          encoding="utf-8")
    status, _, err = job(tmp_path, "--input", "notes.jsonl", "--log-level", "warning")
    assert status == 2, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: the input has no note_text column") and "input: {columns: {note_text: " in last
    assert "Traceback" not in err and " INFO " not in err
    (run,) = DeltaTable(str(tmp_path / "out" / "deid_runs")).to_pyarrow_table().to_pylist()
    assert run["status"] == "failed" and "note_text" in run["message"]


def test_too_many_notes_in_quarantine_exit_3_through_spark_submit(tmp_path, notes):
    """A repeated note_id: one of its rows is quarantined, 1 of 5 rows read, over the default share of 1%. The run
    itself succeeded and reconciled (its row says so); --quiet leaves the summary and the error line alone."""
    rows = notes.to_pylist()
    repeated = {**rows[0], "note_text": "较早的重复记录"}
    pq.write_table(pa.Table.from_pylist([*rows, repeated], schema=notes.schema), tmp_path / "notes.parquet")
    status, out, err = job(tmp_path, "--input", "notes.parquet", "--quiet", command=("spark-submit",))
    assert status == 3, out[-3000:]
    # spark-submit merges the Python driver's stderr into its stdout: the summary, then the error line
    summary, last = out.strip().splitlines()[-2:]
    assert "succeeded: read 5, written 4" in summary
    assert last == ("error: 1 of 5 notes (20.0%) are in quarantine, over job.max_quarantine_share 1.0%; "
                    "deid_quarantine's error_class says why (fix the input, or raise job.max_quarantine_share)")
    assert "deid.job" not in out and "Traceback" not in out + err           # --quiet: no log lines of the job
    (run,) = DeltaTable(str(tmp_path / "out" / "deid_runs")).to_pyarrow_table().to_pylist()
    assert run["status"] == "succeeded" and run["notes_quarantined"] == 1


def test_the_quarantine_share_is_a_limit_not_a_target():
    row = {"notes_read": 200, "notes_quarantined": 2}
    assert quarantine_exceeded(row, 0.01) is None                       # exactly at the share: fine
    assert "3 of 200 notes (1.5%)" in quarantine_exceeded({**row, "notes_quarantined": 3}, 0.01)
    assert quarantine_exceeded({"notes_read": 0, "notes_quarantined": 0}, 0.0) is None
    assert quarantine_exceeded({**row, "notes_quarantined": 1}, 0.0) is not None
