"""Issue 23: the job reads a NOTE table as Delta, a catalog table, Parquet, CSV (UTF-8 or GB18030) or JSON Lines, with
only note_id and note_text required and a column mapping for other names; every form writes the same outputs as the
Delta table of the same rows (real local SparkSession and real tables, both Delta engines; spark-submit for the
Parquet extract)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake
from test_job import ROOT, engine, forget_tables, job, notes, spark  # noqa: F401 - fixtures

from deid import io as dio

OUTPUTS = ["note_phi_spans", "note_deid_l1", "note_deid_l2", "note_deid_l3", "deid_quarantine"]
EXTRACT = ["note_id", "person_id", "note_date", "note_title", "note_text"]   # what a hospital extract holds
COUNTS = ["status", "notes_read", "notes_written", "notes_unchanged", "notes_quarantined", "spans_written",
          "pipeline_version"]


@pytest.fixture(scope="module")
def extract(notes):
    return notes.slice(0, 12).select(EXTRACT)


def outputs(out: Path) -> dict:
    """Every output table's rows without what differs from run to run (run_id, quarantine time)."""
    from deid.query import table as read
    got = {}
    for name in OUTPUTS:
        rows = read(out / name).drop_columns(["run_id"]).to_pylist()
        got[name] = sorted(repr({k: v for k, v in r.items() if k != "quarantined_at"}) for r in rows)
    return got


def table(tmp_path, name) -> pa.Table:
    from deid.query import table as read
    return read(tmp_path / name)


def run_on(spark, tmp_path, name, engine="delta-rs", **changes):
    from jobs.deid_notes import run
    cfg = job(tmp_path, engine=engine, **changes)
    cfg.output_root = str(tmp_path / name)
    cfg.staging, cfg.state = str(tmp_path / name / "_staging"), str(tmp_path / name / "_deid_state")
    row = run(spark, cfg)
    return row, outputs(tmp_path / name)


def write_csv(path: Path, rows: list[dict], encoding: str, rename: dict | None = None) -> None:
    rename = rename or {}
    with open(path, "w", encoding=encoding, newline="") as f:
        out = csv.DictWriter(f, [rename.get(c, c) for c in rows[0]])
        out.writeheader()
        out.writerows({rename.get(k, k): v for k, v in r.items()} for r in rows)


def test_every_input_format_writes_what_the_delta_table_writes(spark, engine, tmp_path, extract):
    """A 5-column extract as a Delta table, a Parquet file, a GB18030 CSV with other column names, a folder of JSON
    Lines files and a catalog table: the same rows in every output table; absent NOTE columns are null."""
    write_deltalake(str(tmp_path / "note"), extract)
    want_row, want = run_on(spark, tmp_path, "from-delta", engine)
    assert want_row["status"] == "succeeded" and want_row["notes_written"] == 12
    assert want_row["input_version"] == 0
    l3 = table(tmp_path, "from-delta/note_deid_l3").to_pylist()
    assert {r["person_id"] for r in l3} == set(extract.column("person_id").to_pylist())          # carried
    assert all(r["provider_id"] is None and r["note_datetime"] is None for r in l3)               # absent: null
    assert all("〔姓名〕" in r["note_text"] for r in l3)

    pq.write_table(extract, tmp_path / "notes.parquet")
    rows = extract.to_pylist()
    rename = {"note_id": "NOTE_ID", "note_text": "body", "person_id": "patient"}
    write_csv(tmp_path / "notes.csv", rows, "gb18030", rename)
    (tmp_path / "jsonl").mkdir()
    for part in (0, 1):
        with open(tmp_path / "jsonl" / f"part-{part}.jsonl", "w", encoding="utf-8") as f:
            for r in rows[part::2]:
                f.write(json.dumps({**r, "note_date": r["note_date"].isoformat()}, ensure_ascii=False) + "\n")
    spark.createDataFrame(extract.to_pandas()).createOrReplaceTempView("hospital_notes")
    sources = {
        "parquet": dict(input_table=str(tmp_path / "notes.parquet")),
        "csv": dict(input_table=str(tmp_path / "notes.csv"), input_encoding="gb18030",
                    input_columns={"note_id": "NOTE_ID", "note_text": "body", "person_id": "patient"}),
        "jsonl": dict(input_table=str(tmp_path / "jsonl")),
        "table": dict(input_table="hospital_notes"),
    }
    for fmt, where in sources.items():
        row, got = run_on(spark, tmp_path, f"from-{fmt}", engine, **where)
        assert row["status"] == "succeeded" and row["input_version"] is None, fmt
        assert {k: row[k] for k in COUNTS} == {k: want_row[k] for k in COUNTS}, fmt
        assert got == want, fmt


def test_other_column_names_map_to_the_note_columns_and_the_rest_are_carried(spark, tmp_path, notes):
    """input.columns maps a differently named column; NOTE columns present under their own name (in any case) are
    carried through; columns beyond NOTE's are not read."""
    source = notes.slice(0, 6)
    renamed = source.rename_columns([{"note_text": "BODY", "visit_occurrence_id": "VISIT_OCCURRENCE_ID",
                                      "note_id": "NOTE_ID"}.get(c, c) for c in source.column_names])
    write_deltalake(str(tmp_path / "note"), renamed.append_column("ward", pa.array(["7B"] * 6)))
    row, _ = run_on(spark, tmp_path, "out", input_columns={"note_text": "BODY"})
    assert row["notes_written"] == 6
    l1 = {r["note_id"]: r for r in table(tmp_path, "out/note_deid_l1").to_pylist()}
    assert set(l1) == set(source.column("note_id").to_pylist())
    for r in source.to_pylist():
        assert l1[r["note_id"]]["visit_occurrence_id"] == r["visit_occurrence_id"]
        assert l1[r["note_id"]]["note_source_value"] == r["note_source_value"]
    assert "ward" not in table(tmp_path, "out/note_deid_l1").column_names


def test_a_missing_column_is_named_with_the_mapping_that_fixes_it(spark, tmp_path, extract):
    """Where only Spark can tell the columns (JSON Lines), the run fails naming the column and the setting."""
    (tmp_path / "notes.jsonl").write_text("".join(json.dumps({"note_id": r["note_id"], "text": r["note_text"]},
                                                             ensure_ascii=False) + "\n" for r in extract.to_pylist()),
                                          encoding="utf-8")
    with pytest.raises(dio.SchemaError, match=r"no note_text column.*input: \{columns: \{note_text: "):
        run_on(spark, tmp_path, "out", input_table=str(tmp_path / "notes.jsonl"))
    (r,) = table(tmp_path, "out/deid_runs").to_pylist()
    assert r["status"] == "failed" and "note_text" in r["message"]
    row, _ = run_on(spark, tmp_path, "out", input_table=str(tmp_path / "notes.jsonl"),
                    input_columns={"note_text": "text"})
    assert row["notes_written"] == 12


def test_values_that_are_not_of_their_column_s_type(spark, tmp_path, extract):
    """A CSV note_id that is not an integer is quarantined like a null one; a person_id or date that does not
    parse is null (the note then shifts as its own person)."""
    rows = [{**r, "note_date": r["note_date"].isoformat()} for r in extract.slice(0, 4).to_pylist()]
    rows[1]["note_id"] = "N-0002"
    rows[2]["person_id"], rows[2]["note_date"] = "unknown", "2023-02-30"
    write_csv(tmp_path / "notes.csv", rows, "utf-8")
    row, _ = run_on(spark, tmp_path, "out", input_table=str(tmp_path / "notes.csv"))
    assert (row["notes_read"], row["notes_written"], row["notes_quarantined"]) == (4, 3, 1)
    (q,) = table(tmp_path, "out/deid_quarantine").to_pylist()
    assert q["error_class"] == "NullNoteId" and "not an integer" in q["message"]
    l1 = {r["note_id"]: r for r in table(tmp_path, "out/note_deid_l1").to_pylist()}
    assert l1[rows[2]["note_id"]]["person_id"] is None and l1[rows[2]["note_id"]]["note_date"] is None


def test_the_format_is_told_by_the_path(tmp_path, extract):
    write_deltalake(str(tmp_path / "delta"), extract)
    pq.write_table(extract, tmp_path / "a.parquet")
    (tmp_path / "csvs").mkdir()
    (tmp_path / "csvs" / "part-1.csv").write_text("note_id,note_text\n1,x\n", encoding="utf-8")
    (tmp_path / "csvs" / "_SUCCESS").write_text("")
    (tmp_path / "notes.jsonl.gz").write_bytes(b"")
    assert dio.input_format(str(tmp_path / "delta")) == "delta"
    assert dio.input_format(str(tmp_path / "a.parquet")) == "parquet"
    assert dio.input_format(str(tmp_path / "csvs")) == "csv"
    assert dio.input_format(str(tmp_path / "notes.jsonl.gz")) == "jsonl"
    assert dio.input_format("omop.note") == "table"
    assert dio.input_format("s3://bucket/omop/note") == "delta" and dio.input_format("s3://b/x.csv") == "csv"
    assert dio.input_format("/warehouse/note", local_fs=False) == "delta"   # a cluster's file system, not ours
    assert dio.input_format(str(tmp_path / "a.parquet"), "csv") == "csv"   # --input-format wins
    (tmp_path / "csvs" / "more.parquet").write_bytes(b"")
    with pytest.raises(dio.InputError, match="cannot tell the format.*csv, parquet.*--input-format"):
        dio.input_format(str(tmp_path / "csvs"))
    with pytest.raises(dio.InputError, match="does not exist"):
        dio.input_format(str(tmp_path / "missing.parquet"))


def test_the_parquet_extract_through_spark_submit_writes_what_the_delta_path_writes(spark, tmp_path, extract):
    """`spark-submit jobs/deid_notes.py --input notes.parquet --input-format parquet`, with a progress line every
    0.2 s during detection, against the in-process run over the same rows as a Delta table."""
    write_deltalake(str(tmp_path / "note"), extract)
    _, want = run_on(spark, tmp_path, "from-delta")
    pq.write_table(extract, tmp_path / "notes.parquet")
    config = tmp_path / "job.yaml"
    config.write_text(f"extends: {ROOT / 'conf' / 'local.yaml'}\njob: {{progress_interval_s: 0.2, partitions: 2}}\n"
                      f"spark: {{conf: {{spark.ui.enabled: 'false'}}}}\n", encoding="utf-8")
    out = tmp_path / "from-submit"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "SPARK_LOCAL_IP": "127.0.0.1"}
    done = subprocess.run(["spark-submit", str(ROOT / "jobs" / "deid_notes.py"), "--config", str(config),
                           "--input", "notes.parquet", "--input-format", "parquet", "--output", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "read 12, written 12" in done.stdout
    # spark-submit merges the Python driver's stderr, where the job logs, into its stdout
    progress = [line for line in done.stdout.splitlines() if "deid.job: detect: " in line]
    assert progress, done.stdout[-3000:]
    assert all(" of 12 notes done (" in line and (" notes/s, " in line or " s/note, " in line) and " left" in line
               for line in progress)
    assert not any(r["note_text"][:12] in done.stdout + done.stderr for r in extract.to_pylist())
    assert outputs(out) == want


def test_the_tasks_count_their_notes_into_the_progress_line(spark, caplog):
    """The detect stage's counter: each task adds the notes it returned; the progress line reads it."""
    import logging
    import time

    from jobs.deid_notes import Progress, counted
    done = spark.sparkContext.accumulator(0)
    rows = spark.range(0, 300, numPartitions=3).mapInArrow(counted(lambda batches: iter(batches), done), "id long")
    assert rows.count() == 300 and done.value == 300
    caplog.set_level(logging.INFO, logger="deid.job")
    with Progress(lambda: done.value, 1200, 0.05):
        time.sleep(0.3)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("detect: ")]
    assert lines and all(line.startswith("detect: 300 of 1200 notes done (25%), ") and " notes/s, about " in line
                         and line.endswith(" left") for line in lines), lines
    with Progress(lambda: 0, 10, 0.05):
        time.sleep(0.2)
    assert caplog.records[-1].getMessage().endswith("notes/s, time left not known yet")


def test_a_corrupt_file_in_a_folder_fails_the_run_as_an_input_error(spark, tmp_path, extract):
    """The check before Spark reads one footer; a bad file further on fails as Spark's task reads it, and the job's
    line says the input cannot be read (exit 2), with Spark's error condition and no note text."""
    from jobs.deid_notes import EXIT_USAGE, _failure
    (tmp_path / "in").mkdir()
    pq.write_table(extract, tmp_path / "in" / "part-0.parquet")
    (tmp_path / "in" / "part-1.parquet").write_bytes(b"PAR1" + "患者张三".encode() * 100 + b"PAR1")
    with pytest.raises(Exception) as failed:
        run_on(spark, tmp_path, "out", input_table=str(tmp_path / "in"))
    status, line = _failure(failed.value)
    assert status == EXIT_USAGE and line.startswith("a file of the input cannot be read (FAILED_READ_FILE"), line
    assert "张三" not in line


def test_an_input_spark_cannot_find_is_named_with_spark_s_condition(spark, tmp_path):
    """A catalog table that is not there: Spark's analysis error becomes the job's input error (exit 2)."""
    with pytest.raises(dio.InputError, match=r"cannot read input no_such_notes as table \(TABLE_OR_VIEW_NOT_FOUND\)"):
        run_on(spark, tmp_path, "out", input_table="no_such_notes")
