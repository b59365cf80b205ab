"""spark-submit jobs/deid_notes.py --config conf/local.yaml [--input T] [--output DIR] [--policies 1,2,3]
                                   [--limit N] [--full-refresh] [--reprocess version|affected]

Reads an OMOP NOTE Delta table, finds, tiers and masks PHI with the deid pipeline, and writes the Delta
tables note_phi_spans, note_deid_l1..l3, deid_quarantine and deid_runs. Incremental and idempotent: a note is
processed when it is new, changed, or carries another pipeline_version; each table gets one commit per run
that replaces all rows of the processed notes, so a retried or killed run never duplicates a row.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:   # spark-submit runs this file directly; make deid and udfs importable
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("deid.job")
FAIL_ENV = "DEID_FAIL_AFTER"   # tests: stop the job on purpose after a named write boundary


class ReconciliationError(RuntimeError):
    pass


@dataclass
class JobConfig:
    path: Path
    master: str | None
    app_name: str
    spark_conf: dict
    input_table: str
    output_root: str
    tables: dict
    staging: str
    state: str
    engine: str
    pipeline_config: Path
    policies: list[int]
    keep_span_text: bool
    secret_env: str
    partitions: int
    reprocess: str
    full_refresh: bool = False
    limit: int | None = None
    verify: bool = True

    def location(self, name: str) -> str:
        if "/" in name or not self.output_root:
            return name
        return os.path.join(self.output_root, name)


def load_job_config(path: str, args=None) -> JobConfig:
    path = Path(path)
    doc = yaml.safe_load(path.read_text()) or {}
    spark, out, pipe, job = doc.get("spark", {}), doc.get("output", {}), doc.get("pipeline", {}), doc.get("job", {})
    tables = out.get("tables", {})
    cfg = JobConfig(
        path=path, master=spark.get("master"), app_name=spark.get("app_name", "deid-notes"),
        spark_conf={k: str(v) for k, v in (spark.get("conf") or {}).items()},
        input_table=doc.get("input", {}).get("table", "data/omop/note"),
        output_root=out.get("root", ""),
        tables={"spans": tables.get("spans", "note_phi_spans"),
                "masked": {int(k): v for k, v in (tables.get("masked") or {1: "note_deid_l1", 2: "note_deid_l2",
                                                                          3: "note_deid_l3"}).items()},
                "runs": tables.get("runs", "deid_runs"), "quarantine": tables.get("quarantine", "deid_quarantine")},
        staging=out.get("staging", "data/_staging"), state=out.get("state", ""),
        engine=doc.get("delta", {}).get("engine", "auto"),
        pipeline_config=(path.parent / pipe.get("config", "pipeline.yaml")),
        policies=[int(p) for p in pipe.get("policies", [1, 2, 3])],
        keep_span_text=bool(pipe.get("keep_span_text", False)), secret_env=pipe.get("secret_env", "DEID_SECRET"),
        partitions=int(job.get("partitions", 4)), reprocess=job.get("reprocess", "version"),
        verify=bool(job.get("verify", True)),
    )
    if args is not None:
        if args.input:
            cfg.input_table = args.input
        if args.output:
            cfg.output_root = args.output
            cfg.staging = os.path.join(args.output, "_staging")
        if args.policies:
            cfg.policies = [int(p) for p in args.policies.split(",")]
        cfg.limit = args.limit
        cfg.full_refresh = args.full_refresh
        if args.reprocess:
            cfg.reprocess = args.reprocess
    bad = [p for p in cfg.policies if p not in cfg.tables["masked"]]
    if bad:
        raise SystemExit(f"error: no masked table configured for policy level(s) {bad}")
    if not cfg.state:
        cfg.state = os.path.join(cfg.output_root or ".", "_deid_state")
    return cfg


def build_spark(cfg: JobConfig):
    from pyspark.sql import SparkSession
    builder = SparkSession.builder.appName(cfg.app_name)
    if cfg.master:
        builder = builder.master(cfg.master)
        if cfg.master.startswith("local"):
            # Local mode: Python workers must run this interpreter (the one with deid installed).
            os.environ["PYSPARK_PYTHON"] = sys.executable
            os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    for k, v in cfg.spark_conf.items():
        builder = builder.config(k, v)
    if cfg.engine == "native":
        builder = (builder.config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
                   .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"))
    return builder.getOrCreate()


@dataclass
class Counts:
    read: int = 0
    duplicates: int = 0
    todo: int = 0
    unchanged: int = 0
    moved: int = 0
    written: int = 0
    quarantined: int = 0
    spans: int = 0
    extra: dict = field(default_factory=dict)


def _fail_point(name: str) -> None:
    if os.environ.get(FAIL_ENV) == name:
        raise RuntimeError(f"stopped on purpose after {name} ({FAIL_ENV})")


def _stage(name: str, n: int, t0: float) -> None:
    dt = max(time.perf_counter() - t0, 1e-9)
    log.info("stage %-12s %8d notes  %7.1f s  %8.1f notes/s", name, n, dt, n / dt)


def run(spark, cfg: JobConfig) -> dict:
    """The whole job on an existing SparkSession; returns the deid_runs row."""
    import pyarrow as pa
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from deid import io as dio
    from deid.config import load_config
    from deid.pipeline import Pipeline
    from deid.resources import bundle as resource_bundle, combine_digests, dictionary_terms, digest_bytes, materialize
    from udfs.deid_udf import affected_function, make_bundle, partition_function
    from udfs.delta import SparkDelta, choose_engine

    started = datetime.now(timezone.utc)
    run_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    secret = os.environ.get(cfg.secret_env, "").encode() or None
    pconf = load_config(cfg.pipeline_config)
    pipeline = Pipeline(pconf, secret)   # fails here, before any write, on a bad config or a missing key
    version = pipeline.version
    policies_bytes = Path(pconf.policies_path).read_bytes()
    files = resource_bundle()
    dictionary_version = combine_digests({k: digest_bytes(v) for k, v in files.items()})
    engine = choose_engine(spark, cfg.engine)
    io = SparkDelta(spark, engine, os.path.join(cfg.staging, run_id))
    loc = {"spans": cfg.location(cfg.tables["spans"]), "runs": cfg.location(cfg.tables["runs"]),
           "quarantine": cfg.location(cfg.tables["quarantine"]),
           **{k: cfg.location(cfg.tables["masked"][k]) for k in cfg.policies}}
    log.info("run %s: engine %s, pipeline %s, input %s", run_id, engine, version, cfg.input_table)

    counts = Counts()
    input_version = io.version(cfg.input_table)
    run_row = dict(run_id=run_id, started_at=started, finished_at=None, status="running", engine=engine,
                   input_table=cfg.input_table, input_version=input_version, notes_read=0, notes_written=0,
                   notes_unchanged=0, notes_quarantined=0, notes_moved=0, spans_written=0, pipeline_version=version,
                   config_digest=pconf.digest, dictionary_version=dictionary_version, prompt_version="none",
                   model="detectors", reprocess="full" if cfg.full_refresh else cfg.reprocess, message=None)

    def save_run(**changes):
        run_row.update(changes)
        io.upsert_run(loc["runs"], pa.Table.from_pylist([run_row], schema=dio.RUNS))

    save_run()
    try:
        _process(spark, cfg, io, loc, version, run_id, secret, pconf, policies_bytes, files, counts, F, Window, pa,
                 dio, make_bundle, partition_function, affected_function, dictionary_terms, run_row)
        total = counts.written + counts.unchanged + counts.moved + counts.quarantined
        if total != counts.read:
            raise ReconciliationError(f"read {counts.read} != written {counts.written} + unchanged {counts.unchanged}"
                                      f" + moved {counts.moved} + quarantined {counts.quarantined}")
        materialize(files, Path(cfg.state) / "resources" / dictionary_version) if "://" not in cfg.state else None
        save_run(status="succeeded", finished_at=datetime.now(timezone.utc), notes_read=counts.read,
                 notes_written=counts.written, notes_unchanged=counts.unchanged, notes_quarantined=counts.quarantined,
                 notes_moved=counts.moved, spans_written=counts.spans)
        log.info("run %s succeeded: read %d = written %d + unchanged %d + moved %d + quarantined %d; %d spans",
                 run_id, counts.read, counts.written, counts.unchanged, counts.moved, counts.quarantined, counts.spans)
    except Exception as exc:
        # The message is ours or an exception class name: never note text.
        message = str(exc) if isinstance(exc, (ReconciliationError, dio.SchemaError, RuntimeError)) else type(exc).__name__
        save_run(status="failed", finished_at=datetime.now(timezone.utc), notes_read=counts.read,
                 message=message[:500])
        raise
    finally:
        shutil.rmtree(os.path.join(cfg.staging, run_id), ignore_errors=True)
    return run_row


def _process(spark, cfg, io, loc, version, run_id, secret, pconf, policies_bytes, files, counts, F, Window, pa,
             dio, make_bundle, partition_function, affected_function, dictionary_terms, run_row):
    sc = spark.sparkContext
    t0 = time.perf_counter()
    sc.setJobDescription("deid: read NOTE")
    notes = io.read(cfg.input_table)
    from pyspark.sql.pandas.types import to_arrow_schema
    dio.check_note_schema(to_arrow_schema(notes.schema))
    notes = notes.select(*dio.NOTE_COLUMNS)
    if cfg.limit:
        notes = notes.orderBy("note_id").limit(cfg.limit)

    def tagged(col):
        return F.when(F.col(col).isNull(), F.lit("N")).otherwise(F.concat(F.lit("V"), F.col(col)))
    notes = notes.withColumn("note_digest", F.sha2(F.concat(tagged("note_title"), F.lit("\x1f"), tagged("note_text")), 256))
    # A note_id that repeats: the latest note_datetime wins (then the larger digest); the others are quarantined.
    rank = Window.partitionBy("note_id").orderBy(F.col("note_datetime").desc_nulls_last(), F.col("note_digest").desc())
    ranked = notes.withColumn("_rank", F.row_number().over(rank)).cache()
    notes = ranked.filter("_rank = 1").drop("_rank")
    duplicates = ranked.filter("_rank > 1").drop("_rank")
    counts.read = ranked.count()
    counts.duplicates = duplicates.count()
    _stage("read", counts.read, t0)

    # What already landed: in every configured masked table with the same digest and version.
    t0 = time.perf_counter()
    state = None
    for level in cfg.policies:
        part = io.read(loc[level], dio.MASKED).select("note_id", "note_digest", "pipeline_version")
        state = part if state is None else state.join(part, ["note_id", "note_digest", "pipeline_version"])
    if cfg.full_refresh:
        state = state.limit(0)
    current = state.filter(F.col("pipeline_version") == version).select("note_id", "note_digest")
    unchanged = notes.join(current, ["note_id", "note_digest"], "left_semi")
    todo = notes.join(current, ["note_id", "note_digest"], "left_anti")
    moved_from = None
    if cfg.reprocess == "affected" and not cfg.full_refresh:
        todo, moved_from = _affected(spark, cfg, io, loc, state, todo, version, files, counts, F, dictionary_terms,
                                     affected_function, run_row)
    todo = todo.cache()
    counts.unchanged = unchanged.count()
    counts.todo = todo.count()
    _stage("plan", counts.todo, t0)
    log.info("plan: %d to process, %d unchanged, %d to move version, %d duplicate ids",
             counts.todo, counts.unchanged, counts.moved, counts.duplicates)

    if counts.todo == 0 and counts.duplicates == 0 and not moved_from:
        log.info("nothing to write: every note already landed with pipeline %s", version)
        return

    # Detection: mapInArrow over partitions; executors stage the results as Parquet.
    t0 = time.perf_counter()
    sc.setJobDescription("deid: detect and mask")
    results_dir = os.path.join(io.staging, "results")
    bundle = sc.broadcast(make_bundle(pconf.raw, policies_bytes))
    from deid.batch import RESULT
    from udfs.delta import spark_schema
    fn = partition_function(bundle, cfg.secret_env, cfg.keep_span_text)
    (todo.select("note_id", "note_title", "note_text").repartition(max(1, cfg.partitions))
     .mapInArrow(fn, spark_schema(RESULT)).write.mode("overwrite").parquet(results_dir))
    results = spark.read.parquet(results_dir)
    ok = results.filter("status = 'ok'")
    bad = results.filter("status != 'ok'")
    counts.written = ok.count()
    counts.quarantined = bad.count() + counts.duplicates
    _stage("detect", counts.todo, t0)
    _fail_point("detect")

    meta = todo.drop("note_title", "note_text")
    stamp = {"pipeline_version": F.lit(version), "run_id": F.lit(run_id)}
    t0 = time.perf_counter()
    sc.setJobDescription("deid: write note_phi_spans")
    spans = (ok.select("note_id", F.explode("spans").alias("s")).select("note_id", "s.*")
             .join(meta.select("note_id", "person_id", "note_digest"), "note_id").withColumns(stamp))
    counts.spans = ok.select(F.sum(F.size("spans"))).first()[0] or 0
    io.replace_notes(loc["spans"], spans, todo, dio.SPANS, "spans")
    _stage("note_phi_spans", counts.todo, t0)
    _fail_point("note_phi_spans")

    for level in cfg.policies:
        t0 = time.perf_counter()
        sc.setJobDescription(f"deid: write masked level {level}")
        masked = (meta.join(ok.select("note_id", F.col(f"masked_title_l{level}").alias("note_title"),
                                      F.col(f"masked_text_l{level}").alias("note_text"),
                                      F.col(f"masked_count_l{level}").alias("masked_count")), "note_id")
                  .withColumns(stamp))
        io.replace_notes(loc[level], masked, todo, dio.MASKED, f"masked_l{level}")
        _stage(f"masked_l{level}", counts.written, t0)
        _fail_point(f"masked_l{level}")

    t0 = time.perf_counter()
    sc.setJobDescription("deid: write deid_quarantine")
    failed = (bad.select("note_id", "stage", "error_class", "message")
              .join(meta.select("note_id", "person_id", "note_digest"), "note_id"))
    dup_rows = duplicates.select("note_id", "person_id", "note_digest", F.lit("input").alias("stage"),
                                 F.lit("DuplicateNoteId").alias("error_class"),
                                 F.lit("note_id repeats in the input; the row with the latest note_datetime was "
                                       "processed").alias("message"))
    quarantine = failed.unionByName(dup_rows).withColumns({**stamp, "quarantined_at": F.current_timestamp()})
    io.replace_notes(loc["quarantine"], quarantine, todo.select("note_id").unionByName(duplicates.select("note_id")),
                     dio.QUARANTINE, "quarantine")
    _stage("quarantine", counts.quarantined, t0)
    _fail_point("quarantine")

    if moved_from:
        t0 = time.perf_counter()
        for name in ["spans", *cfg.policies]:
            io.move_version(loc[name], moved_from, version)
        _stage("move_version", counts.moved, t0)
        _fail_point("move_version")

    if cfg.verify:
        for level in cfg.policies:
            table = io.read(loc[level])
            n, distinct = table.count(), table.select("note_id").distinct().count()
            if n != distinct:
                raise ReconciliationError(f"{cfg.tables['masked'][level]} holds {n - distinct} duplicate note rows")


def _affected(spark, cfg, io, loc, state, todo, version, files, counts, F, dictionary_terms, affected_function, run_row):
    """--reprocess affected: when only dictionaries changed since the last successful run, re-run only the notes
    that contain a term added or removed; move the others to the new version without re-running them."""
    from deid import io as dio
    runs = io.read(loc["runs"], dio.RUNS).filter("status = 'succeeded'").orderBy(F.col("finished_at").desc())
    last = runs.first()
    if last is None or last["pipeline_version"] == version:
        return todo, None
    old_dir = Path(cfg.state) / "resources" / last["dictionary_version"]
    same_rest = last["config_digest"] == run_row["config_digest"]
    if not old_dir.exists() or not same_rest:
        log.info("reprocess affected: previous run's dictionaries or config not comparable; re-running all")
        return todo, None
    old_files = {str(p.relative_to(old_dir)): p.read_bytes() for p in old_dir.rglob("*") if p.is_file()}
    changed_files = {k for k in set(old_files) | set(files) if old_files.get(k) != files.get(k)}
    if any(not k.startswith("dictionaries/") for k in changed_files):
        log.info("reprocess affected: non-dictionary resources changed (%s); re-running all", sorted(changed_files))
        return todo, None
    terms = dictionary_terms(old_files) ^ dictionary_terms(files)
    old_version = last["pipeline_version"]
    at_old = state.filter(F.col("pipeline_version") == old_version).select("note_id", "note_digest")
    candidates = todo.join(at_old, ["note_id", "note_digest"], "left_semi")
    hit = spark.sparkContext.broadcast(sorted(terms))
    affected = (candidates.select("note_id", "note_title", "note_text")
                .mapInArrow(affected_function(hit), "note_id long"))
    move = candidates.join(affected, "note_id", "left_anti")
    counts.moved = move.count()
    log.info("reprocess affected: %d terms changed; %d notes contain one, %d move to the new version",
             len(terms), candidates.count() - counts.moved, counts.moved)
    return todo.join(move.select("note_id"), "note_id", "left_anti"), old_version


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "conf" / "local.yaml"))
    ap.add_argument("--input", help="NOTE table (path or catalog name)")
    ap.add_argument("--output", help="output root folder (local mode)")
    ap.add_argument("--policies", help="policy levels to write, e.g. 1,2,3")
    ap.add_argument("--limit", type=int, help="process at most N notes (by note_id)")
    ap.add_argument("--full-refresh", action="store_true", help="process every note, whatever already landed")
    ap.add_argument("--reprocess", choices=["version", "affected"],
                    help="version: every note at another pipeline_version; affected: only notes holding a changed "
                         "dictionary term")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    cfg = load_job_config(args.config, args)
    spark = build_spark(cfg)
    spark.sparkContext.setLogLevel("WARN")
    row = run(spark, cfg)
    print(f"run {row['run_id']} {row['status']}: read {row['notes_read']}, written {row['notes_written']}, "
          f"unchanged {row['notes_unchanged']}, moved {row['notes_moved']}, quarantined {row['notes_quarantined']}, "
          f"spans {row['spans_written']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
