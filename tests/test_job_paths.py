"""Output locations as a user types them: relative to the working directory, on both engines (Delta's table
builder and SQL take a relative path for a table name, so the native engine qualifies it)."""
from deltalake import DeltaTable
from test_job import assert_exactly_once, engine, forget_tables, job, notes, spark, write_notes  # noqa: F401

from jobs.deid_notes import run


def test_a_first_run_into_a_relative_output_folder(spark, engine, tmp_path, notes, monkeypatch):
    write_notes(tmp_path, notes)
    monkeypatch.chdir(tmp_path)
    cfg = job(tmp_path, engine=engine, output_root="out", staging="out/_staging", state="out/_deid_state")
    row = run(spark, cfg)
    assert row["status"] == "succeeded" and row["notes_written"] == 40
    assert_exactly_once(tmp_path, notes.column("note_id").to_pylist())
    assert DeltaTable(str(tmp_path / "out" / "deid_runs")).metadata().description.startswith("deid: ")
    # A second run finds the tables (and brings their properties up to date through the same qualified name).
    assert run(spark, cfg)["notes_unchanged"] == 40
