"""The Spark job on a real local SparkSession and real Delta tables, on both engines: delta-rs, and native Delta
Lake with the pinned jars `make install` fetches into build/delta-jars (the session has them on its classpath)."""
import itertools
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError
from support import FAULTS, dead_url

from deid import io as dio
from deid.jobconfig import load_job_config
from deid.resources import resources_dir
from deid.synth.generator import generate
from deid.synth.omop import note_table
from jobs.deid_notes import FAIL_ENV, ReconciliationError, build_spark, run

ROOT = Path(__file__).resolve().parent.parent
MASKED = ["note_deid_l1", "note_deid_l2", "note_deid_l3"]
ENGINES = ["delta-rs", "native"]


@pytest.fixture(scope="module")
def spark():
    cfg = load_job_config(ROOT / "conf" / "local.yaml")
    cfg.spark_conf["spark.ui.enabled"] = "false"
    cfg.spark_conf["spark.driver.memory"] = "3g"   # one session for every job test of both engines
    session = build_spark(cfg)
    session.sparkContext.setLogLevel("ERROR")
    yield session


@pytest.fixture(autouse=True)
def forget_tables(request):
    """After each test, what the session holds of its tables goes: native Delta keeps every table's log state it
    has read (cached) for the session's life, and the tests make hundreds of tables in one session."""
    yield
    if "spark" in request.fixturenames:
        session = request.getfixturevalue("spark")
        session.catalog.clearCache()
        from udfs.delta import native_available
        if native_available(session):
            session._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()


@pytest.fixture(params=ENGINES)
def engine(request, spark):
    from udfs.delta import native_available
    if request.param == "native" and not native_available(spark):
        pytest.fail("Delta Lake's jars are not in build/delta-jars: `make install` fetches them (it needs mvn)")
    return request.param


def job(tmp_path, engine="delta-rs", **changes):
    cfg = load_job_config(ROOT / "conf" / "local.yaml")
    cfg.engine = engine
    cfg.input_table = str(tmp_path / "note")
    cfg.output_root = str(tmp_path / "out")
    cfg.staging = str(tmp_path / "out" / "_staging")
    cfg.state = str(tmp_path / "out" / "_deid_state")
    cfg.partitions = 2
    for k, v in changes.items():
        setattr(cfg, k, v)
    return cfg


def write_notes(tmp_path, table: pa.Table):
    write_deltalake(str(tmp_path / "note"), table, mode="overwrite", schema_mode="overwrite")


def table(tmp_path, name) -> pa.Table:
    from deid.query import table as read
    return read(tmp_path / "out" / name)


def last_operation(tmp_path, name) -> str:
    return DeltaTable(str(tmp_path / "out" / name)).history(1)[0]["operation"]


def versions(tmp_path):
    return {n: DeltaTable(str(tmp_path / "out" / n)).version() for n in ["note_phi_spans", *MASKED, "deid_quarantine"]}


def assert_exactly_once(tmp_path, note_ids):
    for name in MASKED:
        ids = table(tmp_path, name).column("note_id").to_pylist()
        assert sorted(ids) == sorted(note_ids), name


@pytest.fixture(scope="module")
def notes():
    return note_table(generate(40, 123))


def test_first_run_writes_every_table(spark, engine, tmp_path, notes):
    write_notes(tmp_path, notes)
    row = run(spark, job(tmp_path, engine=engine))
    assert row["status"] == "succeeded" and row["engine"] == engine
    assert row["notes_read"] == row["notes_written"] == 40 and row["notes_quarantined"] == 0
    for name, schema in dio.TABLE_SCHEMAS.items():
        got = pa.schema(DeltaTable(str(tmp_path / "out" / name)).schema())
        assert got.names == schema.names, name
    assert_exactly_once(tmp_path, notes.column("note_id").to_pylist())
    spans = table(tmp_path, "note_phi_spans")
    assert spans.num_rows == row["spans_written"] > 200
    assert set(spans.column("pipeline_version").to_pylist()) == {row["pipeline_version"]}
    assert spans.column("span_text").null_count == spans.num_rows          # raw text only when asked
    # Nothing held these notes yet: the executors' files were committed as they are (no MERGE rewrite).
    assert {last_operation(tmp_path, n) for n in ["note_phi_spans", *MASKED]} == {"WRITE"}
    for name in ["note_phi_spans", *MASKED]:                 # what DESCRIBE DETAIL shows, on either engine
        meta = DeltaTable(str(tmp_path / "out" / name)).metadata()
        assert meta.description.startswith("deid: ") and meta.configuration["delta.enableChangeDataFeed"] == "true"
        assert meta.configuration["delta.deletedFileRetentionDuration"] == "interval 1 days", name
        fields = {f.name: f.metadata for f in DeltaTable(str(tmp_path / "out" / name)).schema().fields}
        assert fields["note_id"]["comment"] == dio.COLUMN_COMMENTS["note_id"], name
    l1, l3 = table(tmp_path, "note_deid_l1"), table(tmp_path, "note_deid_l3")
    assert sum(l3.column("masked_count").to_pylist()) > sum(l1.column("masked_count").to_pylist())
    originals = dict(zip(notes.column("note_id").to_pylist(), notes.column("note_text").to_pylist(), strict=True))
    for nid, text in zip(l3.column("note_id").to_pylist(), l3.column("note_text").to_pylist(), strict=True):
        assert "〔姓名〕" in text and text != originals[nid]

    # A second run adds only its deid_runs row.
    before = versions(tmp_path)
    again = run(spark, job(tmp_path, engine=engine))
    assert again["notes_unchanged"] == 40 and again["notes_written"] == 0
    assert versions(tmp_path) == before
    assert table(tmp_path, "deid_runs").num_rows == 2


def test_changed_note_is_reprocessed_and_replaced(spark, engine, tmp_path, notes):
    write_notes(tmp_path, notes)
    run(spark, job(tmp_path, engine=engine))
    spans_before = table(tmp_path, "note_phi_spans").num_rows
    texts = notes.column("note_text").to_pylist()
    target = notes.column("note_id")[5].as_py()
    texts[5] = texts[5] + "补充：家属王小明，电话13900001111。"
    write_notes(tmp_path, notes.set_column(notes.schema.get_field_index("note_text"), "note_text", pa.array(texts)))
    row = run(spark, job(tmp_path, engine=engine))
    assert (row["notes_written"], row["notes_unchanged"]) == (1, 39)
    assert {last_operation(tmp_path, n) for n in ["note_phi_spans", *MASKED]} == {"MERGE"}
    assert_exactly_once(tmp_path, notes.column("note_id").to_pylist())
    spans = table(tmp_path, "note_phi_spans")
    assert spans.num_rows == spans_before + 2
    l3 = {r["note_id"]: r["note_text"] for r in table(tmp_path, "note_deid_l3").to_pylist()}
    assert "王小明" not in l3[target] and "13900001111" not in l3[target]


def test_verify_fails_the_run_when_a_written_note_has_two_rows(spark, tmp_path, notes):
    """verify checks the notes the run wrote (not the whole table, which earlier runs checked)."""
    from jobs.deid_notes import JobRun
    write_notes(tmp_path, notes)
    run(spark, job(tmp_path))
    l2 = tmp_path / "out" / "note_deid_l2"
    row = table(tmp_path, "note_deid_l2").slice(3, 1)
    write_deltalake(str(l2), row, mode="append")       # what a MERGE that kept an old row would leave
    jr = JobRun(spark, job(tmp_path))
    jr.counts.todo = 1
    with pytest.raises(ReconciliationError, match="note_deid_l2 holds 1 notes twice"):
        jr.verify(spark.createDataFrame([(row.column("note_id")[0].as_py(),)], "note_id long"))
    jr.verify(spark.createDataFrame([(row.column("note_id")[0].as_py() + 10**9,)], "note_id long"))  # not ours


def test_output_files_hold_note_id_ranges_so_a_recent_change_rewrites_one_file(spark, engine, tmp_path, notes):
    write_notes(tmp_path, notes)
    run(spark, job(tmp_path, engine=engine, notes_per_task=10))            # 40 notes -> 4 tasks, 4 files per table
    for name in ["note_phi_spans", *MASKED]:
        ranges = sorted((f.column("note_id")[0].as_py(), f.column("note_id")[-1].as_py()) for f in
                        (pq.read_table(u, columns=["note_id"]).sort_by("note_id")
                         for u in DeltaTable(str(tmp_path / "out" / name)).file_uris()))
        assert len(ranges) == 4, name
        assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges)), (name, ranges)
    texts = notes.column("note_text").to_pylist()
    texts[-1] += "补充：病情稳定。"                            # the newest note changes
    write_notes(tmp_path, notes.set_column(notes.schema.get_field_index("note_text"), "note_text", pa.array(texts)))
    before = versions(tmp_path)
    run(spark, job(tmp_path, engine=engine, notes_per_task=10))
    for name in ["note_phi_spans", *MASKED]:
        dt = DeltaTable(str(tmp_path / "out" / name))
        assert dt.version() == before[name] + 1
        metrics = dt.history(1)[0]["operationMetrics"]
        # The appended files carry note_id statistics, so the MERGE did not even read the other three.
        if engine == "native":   # Delta Lake's MERGE metrics do not count the files skipped in the scan
            assert int(metrics["numTargetFilesRemoved"]) == 1, name
        else:
            assert metrics["num_target_files_removed"] == 1, name
            assert (metrics["num_target_files_scanned"], metrics["num_target_files_skipped_during_scan"]) == (1, 3)


def test_optimize_compacts_small_files_without_changing_rows(spark, engine, tmp_path, notes):
    write_notes(tmp_path, notes.slice(0, 20))
    run(spark, job(tmp_path, engine=engine, notes_per_task=5))             # 4 files per table
    write_notes(tmp_path, notes)
    run(spark, job(tmp_path, engine=engine, notes_per_task=5))             # appends 4 more
    before = {n: (len(DeltaTable(str(tmp_path / "out" / n)).file_uris()),
                  table(tmp_path, n).sort_by("note_id").to_pylist()) for n in ["note_phi_spans", *MASKED]}
    row = run(spark, job(tmp_path, engine=engine, optimize=True))
    assert row["notes_written"] == 0
    for name, (files, rows) in before.items():
        assert files == 8 and len(DeltaTable(str(tmp_path / "out" / name)).file_uris()) == 1, name
        assert last_operation(tmp_path, name) == "OPTIMIZE"
        got = table(tmp_path, name).sort_by("note_id").to_pylist()
        assert sorted(map(repr, got)) == sorted(map(repr, rows)), name


def test_full_refresh_and_limit(spark, engine, tmp_path, notes):
    write_notes(tmp_path, notes)
    assert run(spark, job(tmp_path, engine=engine, limit=10))["notes_read"] == 10
    row = run(spark, job(tmp_path, engine=engine, full_refresh=True))
    assert row["notes_written"] == 40
    assert_exactly_once(tmp_path, notes.column("note_id").to_pylist())


def test_bad_notes_are_quarantined_or_written_never_leaked(spark, engine, tmp_path, notes):
    base = notes.slice(0, 8).to_pylist()
    big = "患者张建国，手机13812345678。" + "心电图示窦性心律。" * 80_000          # about 2 MB of UTF-8
    rows = [
        {**base[0], "note_text": None},
        {**base[1], "note_text": ""},
        {**base[2], "note_text": big},
        {**base[3], "note_text": "患者李秀英\x00\x07，<p>电话：０１０－６２３４５６７８</p>"},
        {**base[4]},
        {**base[4], "note_text": "重复的note_id，较早的记录",
         "note_datetime": base[4]["note_datetime"].replace(year=2001)},
        {**base[5], "note_text": "X" * 10},
        {**base[6]},
    ]
    t = pa.Table.from_pylist(rows, schema=notes.schema)
    # Note base[6] gets bytes that are not UTF-8 (a lone surrogate from a bad decode upstream).
    texts = t.column("note_text").cast(pa.binary()).to_pylist()
    texts[7] = b"\xed\xa0\x80" + "患者王五".encode()
    t = t.set_column(t.schema.get_field_index("note_text"), "note_text", pa.array(texts, pa.binary()).view(pa.string()))
    write_notes(tmp_path, t)
    cfg = job(tmp_path, engine=engine)
    row = run(spark, cfg)
    assert row["notes_read"] == 8
    assert (row["notes_written"], row["notes_quarantined"]) == (6, 2)
    q = table(tmp_path, "deid_quarantine").to_pylist()
    reasons = {r["error_class"] for r in q}
    assert reasons == {"DuplicateNoteId", "InvalidEncoding"}
    for r in q:
        assert "患者" not in r["message"] and "王五" not in r["message"]
    l3 = {r["note_id"]: r["note_text"] for r in table(tmp_path, "note_deid_l3").to_pylist()}
    assert base[6]["note_id"] not in l3                                      # quarantined: in no masked table
    assert l3[base[0]["note_id"]] is None and l3[base[1]["note_id"]] == ""
    assert "张建国" not in l3[base[2]["note_id"]] and len(l3[base[2]["note_id"]]) > 700_000
    assert "李秀英" not in l3[base[3]["note_id"]] and "６２３４５６７８" not in l3[base[3]["note_id"]]
    assert "<p>" in l3[base[3]["note_id"]]
    assert l3[base[4]["note_id"]] != "重复的note_id，较早的记录"            # the latest row of a repeated id wins
    # Rerun: the duplicate and the bad note are quarantined again, not twice.
    run(spark, cfg)
    assert len(table(tmp_path, "deid_quarantine").to_pylist()) == 2


def test_oversize_note_is_quarantined(spark, tmp_path, notes):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "pipeline.yaml").write_text((ROOT / "conf" / "pipeline.yaml").read_text().replace("2000000", "5000"))
    shutil.copy(ROOT / "conf" / "policies.yaml", conf / "policies.yaml")
    rows = notes.slice(0, 3).to_pylist()
    rows[0]["note_text"] = "患者张建国。" * 2000
    write_notes(tmp_path, pa.Table.from_pylist(rows, schema=notes.schema))
    row = run(spark, job(tmp_path, pipeline_config=conf / "pipeline.yaml"))
    assert (row["notes_written"], row["notes_quarantined"]) == (2, 1)
    (q,) = table(tmp_path, "deid_quarantine").to_pylist()
    assert q["error_class"] == "NoteTooLarge" and q["stage"] == "validate" and "张建国" not in q["message"]


@pytest.mark.parametrize("boundary", ["detect", "note_phi_spans", "masked_l1", "masked_l2", "masked_l3", "quarantine"])
def test_killed_job_reruns_to_exactly_once(spark, engine, tmp_path, notes, monkeypatch, boundary):
    rows = notes.slice(0, 12).to_pylist()
    rows.append({**rows[0], "note_text": "较早的重复记录",
                 "note_datetime": rows[0]["note_datetime"].replace(year=2000)})
    write_notes(tmp_path, pa.Table.from_pylist(rows, schema=notes.schema))
    monkeypatch.setenv(FAIL_ENV, boundary)
    with pytest.raises(RuntimeError, match=boundary):
        run(spark, job(tmp_path, engine=engine))
    monkeypatch.delenv(FAIL_ENV)
    row = run(spark, job(tmp_path, engine=engine))
    assert row["status"] == "succeeded"
    ids = [r["note_id"] for r in rows[:12]]
    assert_exactly_once(tmp_path, ids)
    spans = table(tmp_path, "note_phi_spans").to_pylist()
    keys = [(s["note_id"], s["field"], s["span_start"]) for s in spans]
    assert len(keys) == len(set(keys))
    assert len(table(tmp_path, "deid_quarantine").to_pylist()) == 1
    statuses = sorted(r["status"] for r in table(tmp_path, "deid_runs").to_pylist())
    assert statuses == ["failed", "succeeded"]
    # And a clean third run has nothing left to do.
    assert run(spark, job(tmp_path, engine=engine))["notes_unchanged"] == 12


def test_affected_only_reprocessing_after_dictionary_edit(spark, engine, tmp_path, notes, monkeypatch):
    res = tmp_path / "resources"
    shutil.copytree(resources_dir(), res)
    monkeypatch.setenv("DEID_RESOURCES", str(res))
    rows = notes.slice(0, 20).to_pylist()
    mentions = [2, 7, 11]
    for i in mentions:
        rows[i]["note_text"] += "既往曾于仁心堂就诊。"
    write_notes(tmp_path, pa.Table.from_pylist(rows, schema=notes.schema))
    first = run(spark, job(tmp_path, engine=engine))
    before = {r["note_id"]: r["note_text"] for r in table(tmp_path, "note_deid_l3").to_pylist()}
    assert all("仁心堂" in before[rows[i]["note_id"]] for i in mentions)     # not yet a known hospital
    with open(res / "dictionaries" / "hospitals.tsv", "a", encoding="utf-8") as f:
        f.write("仁心堂中医医院\t北京\t仁心堂\t\n")
    row = run(spark, job(tmp_path, engine=engine, reprocess="affected"))
    assert row["pipeline_version"] != first["pipeline_version"]
    assert (row["notes_written"], row["notes_moved"], row["notes_unchanged"]) == (3, 17, 0)
    for name in ["note_phi_spans", *MASKED]:
        assert set(table(tmp_path, name).column("pipeline_version").to_pylist()) == {row["pipeline_version"]}, name
    l3 = {r["note_id"]: r["note_text"] for r in table(tmp_path, "note_deid_l3").to_pylist()}
    assert all("仁心堂" not in l3[rows[i]["note_id"]] for i in mentions)
    rerun_ids = {s["note_id"] for s in table(tmp_path, "note_phi_spans").to_pylist() if s["run_id"] == row["run_id"]}
    assert rerun_ids == {rows[i]["note_id"] for i in mentions}
    assert run(spark, job(tmp_path, engine=engine, reprocess="affected"))["notes_unchanged"] == 20


def test_missing_column_is_named_and_run_marked_failed(spark, engine, tmp_path, notes):
    write_notes(tmp_path, notes.drop(["note_text"]))   # a required column; the others are optional
    with pytest.raises(dio.SchemaError, match="no note_text column"):
        run(spark, job(tmp_path, engine=engine))
    (r,) = table(tmp_path, "deid_runs").to_pylist()
    assert r["status"] == "failed" and "note_text" in r["message"]


def test_outputs_read_back_without_spark(spark, engine, tmp_path, notes):
    from deid.query import duckdb
    write_notes(tmp_path, notes)
    run(spark, job(tmp_path, engine=engine))
    path = tmp_path / "out" / "note_deid_l3"
    n = duckdb().sql(f"SELECT count(*) FROM delta_scan('{path}')").fetchone()[0]
    assert n == DeltaTable(str(path)).count() == 40
    by_type = dict(duckdb().sql(f"SELECT entity_type, count(*) FROM delta_scan('{tmp_path / 'out' / 'note_phi_spans'}')"
                                " GROUP BY 1").fetchall())
    assert set(by_type) >= {"NAME", "ID_NUMBER", "CONTACT", "HOSPITAL", "ADDRESS", "STD", "PREGNANCY", "DATE",
                            "RECORD_ID"}


def readme_query_examples() -> list[str]:
    """The shell lines of README.md's query examples (between the query-examples markers)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- query-examples -->", 1)[1].split("<!-- /query-examples -->", 1)[0]
    return [line for line in block.splitlines() if line.startswith((".venv/bin/python", "PATH="))]


def test_readers_exit_cleanly_in_fresh_processes(spark, tmp_path, notes):
    """deltalake's own Arrow readers abort at interpreter exit in about half of fresh processes (issue 11); every
    README example and a plain read of every output table must exit 0, 20 times out of 20 (spark-submit twice:
    its JVM does not touch the path that aborts and takes 20 s a start)."""
    import subprocess
    import sys
    write_notes(tmp_path, notes)
    run(spark, job(tmp_path))
    out = tmp_path / "out"
    read_all = (".venv/bin/python -c \"from deid.query import table; "
                f"print(sum(table('{out}/' + n).num_rows for n in {sorted(dio.TABLE_SCHEMAS)!r}))\"")
    examples = readme_query_examples()
    assert len(examples) == 3, examples
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "SPARK_LOCAL_IP": "127.0.0.1"}
    for command in [read_all, *examples]:
        command = command.replace("--root data", f"--root {out}").replace("'data/", f"'{out}/")
        if command.startswith(".venv/bin/python"):   # the interpreter running the tests, wherever its venv is
            command = sys.executable + command[len(".venv/bin/python"):]
        for attempt in range(2 if "spark-submit" in command else 20):
            done = subprocess.run(command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, (command, attempt, done.returncode, done.stderr[-2000:])
            assert "terminate called" not in done.stderr


@pytest.mark.parametrize("first,then", [("delta-rs", "native"), ("native", "delta-rs")])
def test_one_engine_continues_the_other_engines_tables(spark, tmp_path, notes, first, then):
    """Either engine reads and MERGEs into tables the other wrote (same format, same MERGE), and a day-2 change
    written by the second lands exactly once."""
    write_notes(tmp_path, notes)
    assert run(spark, job(tmp_path, engine=first))["engine"] == first
    texts = notes.column("note_text").to_pylist()
    texts[3] += "补充：家属王小明，电话13900001111。"
    write_notes(tmp_path, notes.set_column(notes.schema.get_field_index("note_text"), "note_text", pa.array(texts)))
    row = run(spark, job(tmp_path, engine=then))
    assert row["engine"] == then and (row["notes_written"], row["notes_unchanged"]) == (1, 39)
    assert_exactly_once(tmp_path, notes.column("note_id").to_pylist())
    assert run(spark, job(tmp_path, engine=first))["notes_unchanged"] == 40
    l3 = {r["note_id"]: r["note_text"] for r in table(tmp_path, "note_deid_l3").to_pylist()}
    assert "王小明" not in l3[notes.column("note_id")[3].as_py()]


def test_change_feed_gives_downstream_readers_only_the_remasked_notes(spark, engine, tmp_path, notes):
    write_notes(tmp_path, notes)
    run(spark, job(tmp_path, engine=engine))
    start = DeltaTable(str(tmp_path / "out" / "note_deid_l3")).version() + 1
    texts = notes.column("note_text").to_pylist()
    texts[7] += "补充：病情稳定。"
    write_notes(tmp_path, notes.set_column(notes.schema.get_field_index("note_text"), "note_text", pa.array(texts)))
    run(spark, job(tmp_path, engine=engine))
    changes = pa.table(DeltaTable(str(tmp_path / "out" / "note_deid_l3")).load_cdf(starting_version=start).read_all())
    inserted = [r["note_id"] for r in changes.to_pylist() if r["_change_type"] == "insert"]
    assert inserted == [notes.column("note_id")[7].as_py()]


def test_vacuum_after_a_remask_leaves_the_superseded_text_in_no_file(spark, engine, tmp_path, notes, monkeypatch):
    """A dictionary edit re-masks a name that had leaked; with --vacuum past the retention (0 hours here) the old
    masked text is in no file of the table, the change feed's files included, and time travel to it fails."""
    leak = "仁心堂"
    rows = notes.slice(0, 6).to_pylist()
    rows[2]["note_text"] += f"既往曾于{leak}就诊。"
    write_notes(tmp_path, pa.Table.from_pylist(rows, schema=notes.schema))
    res = tmp_path / "resources"
    shutil.copytree(resources_dir(), res)
    monkeypatch.setenv("DEID_RESOURCES", str(res))
    retention = dio.Retention(deleted_files="interval 0 hours", log="interval 0 hours")
    run(spark, job(tmp_path, engine=engine, retention=retention))
    path = tmp_path / "out" / "note_deid_l3"
    leaked_version = DeltaTable(str(path)).version()
    assert leak in "".join(table(tmp_path, "note_deid_l3").column("note_text").to_pylist())
    with open(res / "dictionaries" / "hospitals.tsv", "a", encoding="utf-8") as f:
        f.write(f"{leak}中医医院\t北京\t{leak}\t\n")
    row = run(spark, job(tmp_path, engine=engine, retention=retention, reprocess="affected", vacuum=True))
    assert row["notes_written"] == 1
    assert leak not in "".join(table(tmp_path, "note_deid_l3").column("note_text").to_pylist())
    files = [f for f in path.rglob("*.parquet") if "_delta_log" not in f.parts]   # _change_data's included
    assert files and not [f for f in files
                          if leak in "".join(map(str, pq.read_table(f).column("note_text").to_pylist()))]
    with pytest.raises((DeltaError, OSError)):            # the version is gone from the log or its files are
        DeltaTable(str(path), version=leaked_version).to_pyarrow_table()


def test_sql_helper_queries_outputs(spark, tmp_path, notes, capsys):
    from jobs.sql import main as sql_main
    write_notes(tmp_path, notes)
    run(spark, job(tmp_path))
    assert sql_main(["--root", str(tmp_path / "out"),
                     "SELECT count(*) AS n FROM note_deid_l3 JOIN note_deid_l1 USING (note_id)"]) == 0
    assert "40" in capsys.readouterr().out


def test_llm_down_falls_back_and_is_picked_up_next_run(spark, tmp_path, notes):
    dead = dead_url()
    write_notes(tmp_path, notes.slice(0, 5))
    # every chunk sent (routing: whole), so every note asks the dead server; routed, a note the detectors settle
    # asks nothing and cannot fail
    llm = {"llm": {"enabled": True, "base_url": dead, "retries": 0, "timeout_s": 2, "routing": "whole"}}
    row = run(spark, job(tmp_path, pipeline_overrides=llm))
    assert row["notes_written"] == 5 and row["notes_llm_fallback"] == 5 and row["model"].startswith("detectors+")
    l3 = table(tmp_path, "note_deid_l3").to_pylist()
    assert {r["pipeline_version"] for r in l3} == {row["pipeline_version"] + dio.FALLBACK_SUFFIX}
    assert all("〔姓名〕" in r["note_text"] for r in l3)                     # masked by the detectors
    spans = table(tmp_path, "note_phi_spans").to_pylist()
    assert {s["llm_status"] for s in spans} == {"failed:connect"}
    again = run(spark, job(tmp_path, pipeline_overrides=llm))
    assert again["notes_written"] == 5 and again["notes_unchanged"] == 0    # fallback notes are re-run
    quarantined = run(spark, job(tmp_path, pipeline_overrides={"llm": {**llm["llm"], "on_failure": "quarantine"}}))
    assert quarantined["notes_quarantined"] == 5 and quarantined["notes_written"] == 0
    assert table(tmp_path, "note_deid_l3").num_rows == 0                      # fail closed: removed, never unmasked
    assert {q["error_class"] for q in table(tmp_path, "deid_quarantine").to_pylist()} == {"LlmUnavailable"}


def test_llm_stage_through_the_real_server_with_faults(spark, tmp_path, notes, served):
    """The real Serve app and model behind the job: healthy notes get LLM spans; a 500, a timeout and a
    malformed answer each fall back to the detectors; every note is written, none unmasked."""
    texts = ["患者张建国，男，52岁，手机13812345678，于北京协和医院就诊。",
             "家属李秀英陪同，联系电话010-65296114，现住北京市东城区东单北大街1号。",
             "患者王志强，HIV抗体阳性。" + FAULTS["error"],
             "患者赵丽华，孕2产1，人工流产1次。" + FAULTS["delay"],
             "患者孙明，电话13912345678。" + FAULTS["malformed"]]
    phi = ["张建国", "13812345678", "李秀英", "010-65296114", "东单北大街1号", "王志强", "赵丽华", "孙明",
           "13912345678"]
    five = notes.slice(0, 5)
    write_notes(tmp_path, five.set_column(five.schema.get_field_index("note_text"), "note_text",
                                          pa.array(texts, pa.string())))
    # every chunk, as the faults need a request whatever routing would send
    llm = {"llm": {"enabled": True, "routing": "whole", "base_url": served, "timeout_s": 90, "retries": 0,
                   "max_tokens": 128}}   # 90 s: two healthy notes wait in turn for one llama.cpp on a busy machine
    row = run(spark, job(tmp_path, pipeline_overrides=llm))
    assert row["notes_written"] == 5 and row["notes_quarantined"] == 0 and row["notes_llm_fallback"] == 3
    assert row["prompt_tokens"] > 2 * 300 and row["completion_tokens"] > 0     # the two answered notes
    ids = five.column("note_id").to_pylist()
    status = {}
    for s in table(tmp_path, "note_phi_spans").to_pylist():
        if s["field"] == "note_text":
            status.setdefault(s["note_id"], set()).add(s["llm_status"])
    answered = {"ok", "truncated"}            # "truncated": the small model used up max_tokens
    assert status[ids[0]] <= answered and status[ids[1]] <= answered
    assert [status[i] for i in ids[2:]] == [{"failed:http_500"}, {"failed:timeout"}, {"failed:unparseable"}]
    for name in MASKED:
        for r in table(tmp_path, name).to_pylist():
            assert not any(p in r["note_text"] for p in phi), name
    assert_exactly_once(tmp_path, ids)
    # Quarantine instead: the three fallback notes run again, fail again and leave the masked tables; the
    # two answered notes are unchanged. Every note is accounted for, and the quarantine says why without PHI.
    llm["llm"].update(on_failure="quarantine", timeout_s=5)
    again = run(spark, job(tmp_path, pipeline_overrides=llm))
    assert (again["notes_unchanged"], again["notes_quarantined"], again["notes_written"]) == (2, 3, 0)
    assert_exactly_once(tmp_path, ids[:2])
    quarantine = table(tmp_path, "deid_quarantine").to_pylist()
    assert sorted(q["note_id"] for q in quarantine) == sorted(ids[2:])
    for q in quarantine:
        assert q["error_class"] == "LlmUnavailable" and not any(p in str(q) for p in phi)


@pytest.mark.parametrize("name", ["local.yaml", "local-llm.yaml", "cluster.yaml", "cluster-llm.yaml"])
def test_every_job_config_loads_with_its_pipeline(name):
    from deid.config import load_config
    cfg = load_job_config(ROOT / "conf" / name)
    pipeline = load_config(cfg.pipeline_config, **cfg.pipeline_overrides)
    assert pipeline.llm.enabled == name.endswith("-llm.yaml")
    if pipeline.llm.enabled:
        assert pipeline.llm.client.base_url.startswith("http")


def test_dates_shift_in_text_and_row_per_person_and_the_paper_preset_keeps_them(spark, tmp_path, notes):
    """Levels 1 and 2 shift every date of a person by one offset, the row's note_date and note_datetime too (so the
    row does not undo the text); level 3 keeps the year; the run records its policy preset. The paper preset finds
    the paper's seven types only, and a change of preset re-processes every note."""
    from datetime import date, timedelta

    from deid.masking import date_offset
    write_notes(tmp_path, notes)
    row = run(spark, job(tmp_path))
    assert row["policy_preset"] == "default"
    key = os.environ["DEID_SECRET"].encode()
    source = {r["note_id"]: r for r in notes.to_pylist()}
    for level, name in ((1, "note_deid_l1"), (2, "note_deid_l2"), (3, "note_deid_l3")):
        for r in table(tmp_path, name).to_pylist():
            original = source[r["note_id"]]
            if level < 3:
                moved = timedelta(days=date_offset(key, f"person:{original['person_id']}", 180))
                assert (r["note_date"], r["note_datetime"]) == (original["note_date"] + moved,
                                                                original["note_datetime"] + moved)
            else:
                assert r["note_date"] == date(original["note_date"].year, 1, 1)
    dates = [s for s in table(tmp_path, "note_phi_spans").to_pylist() if s["entity_type"] == "DATE"]
    assert len(dates) >= 40
    paper = run(spark, job(tmp_path, pipeline_overrides={"policy_preset": "paper"}))
    assert paper["policy_preset"] == "paper" and paper["notes_written"] == 40
    assert {s["entity_type"] for s in table(tmp_path, "note_phi_spans").to_pylist()} <= {
        "NAME", "ID_NUMBER", "CONTACT", "HOSPITAL", "ADDRESS", "STD", "PREGNANCY"}
    l3 = {r["note_id"]: r for r in table(tmp_path, "note_deid_l3").to_pylist()}
    assert all(l3[i]["note_date"] == source[i]["note_date"] for i in source)   # the paper masks no date


def test_an_upgrade_that_changes_a_rule_reprocesses_every_note(spark, tmp_path, notes, monkeypatch):
    """pipeline_version covers the deciding modules' source: a new detector rule re-masks notes already processed,
    even with --reprocess affected (which otherwise re-runs only notes holding a changed dictionary term)."""
    import deid.pipeline
    write_notes(tmp_path, notes)
    first = run(spark, job(tmp_path))
    changed = deid.pipeline.source_digest()[::-1]   # what another source of a detector would digest to
    monkeypatch.setattr(deid.pipeline, "source_digest", lambda: changed)
    row = run(spark, job(tmp_path, reprocess="affected"))
    assert row["pipeline_version"] != first["pipeline_version"]
    assert (row["notes_written"], row["notes_unchanged"], row["notes_moved"]) == (40, 0, 0)
