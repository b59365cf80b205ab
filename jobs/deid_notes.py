"""spark-submit jobs/deid_notes.py --config conf/local.yaml [--input T] [--input-format F] [--encoding E]
                                   [--output DIR] [--policies 1,2,3] [--policy-preset default|paper] [--limit N]
                                   [--full-refresh] [--reprocess version|affected] [--optimize] [--vacuum]
                                   [--log-level L] [--quiet] [--debug]

Exit status: 0 the run reconciled; 1 it failed; 2 the command line, config, input or key is wrong; 3 it left more
notes in quarantine than job.max_quarantine_share. A failure is one line on stderr (--debug: with the traceback).

Reads an OMOP NOTE table (Delta, a catalog table, Parquet, CSV or JSON Lines), finds, tiers and masks PHI with the
deid pipeline, and writes the Delta tables note_phi_spans, note_deid_l1..l3, deid_quarantine and deid_runs.
Incremental and idempotent: a note is processed when it is new, changed, or carries another pipeline_version; each
table gets one commit per run that replaces all rows of the processed notes, so a retried or killed run never
duplicates a row. A note quarantined for a cause in the note itself stays quarantined, unprocessed, until it or the
pipeline changes, so a run over the same input commits nothing but its deid_runs row (a note quarantined for a
cause that may pass, the LLM unavailable or the time budget overrun, is tried again on every run).

note_digest, in every masked table and the span table, is HMAC-SHA256 keyed by $DEID_SECRET (pipeline.secret_env)
of the note's title and text: an unkeyed hash of a short note would let anyone check guesses of its masked words
against it. The job does not start without the key. Tables written with the earlier plain SHA-256, or with
another key, hold digests no note matches: the next run processes every note once and its commits replace all
their rows (as for changed notes), so nothing is duplicated; a new key therefore costs one full run.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import shutil
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path

import pyarrow as pa
from pyspark.errors import AnalysisException
from pyspark.sql import Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_type
from pyspark.sql.types import StructType

from deid import io as dio
from deid.batch import CACHED_COLUMN, RESULT, TRANSIENT_ERRORS
from deid.config import load_config
from deid.exits import EXIT_BUSY, EXIT_FAILED, EXIT_OK, EXIT_QUARANTINE, EXIT_USAGE, report
from deid.jobconfig import JobConfig, load_job_config, quarantine_exceeded
from deid.pipeline import Pipeline, source_part
from deid.resources import Resources, combine_digests, data_dir, dictionary_terms, digest_bytes, materialize
from deid.resources import bundle as resource_bundle
from udfs.deid_udf import affected_function, make_bundle, partition_function, request_keys_function
from udfs.delta import (
    RunInProgress,
    SparkDelta,
    choose_engine,
    claim_output,
    claim_staging,
    jvm_has_delta,
    qualified,
    spark_schema,
)

log = logging.getLogger("deid.job")
FAIL_ENV = "DEID_FAIL_AFTER"   # tests: stop the job on purpose after a named write boundary
BROADCAST_TODO = 500_000       # notes to do, at most, matched back to their text by a broadcast (about 50 MB)
# Notes to do, at most, kept in memory with their text (detection, the commits and verify read them again); more
# would overflow the heap (400,000 did in 2 GiB), so a first load is read again instead, note_id alone after detection.
CACHE_TODO = 50_000
# The HMAC pads are binary literals of the read's query plan: Spark redacts them from explain, the UI and event logs.
REDACTION = "spark.sql.redaction.string.regex"
PADS = "0x[0-9A-F]{128}"


class ReconciliationError(RuntimeError):
    pass


LOG4J = data_dir("conf") / "log4j2.properties"   # Spark's own logging at WARN: the job logs its stages itself


def quiet_spark(builder, submitted: bool):
    """Spark's start-up INFO lines (about 50) off, as a plain `spark-submit` of this file runs it: spark.log.level
    applies as the context starts (spark-submit's JVM is already running); where this process starts the JVM, the
    JVM is also given LOG4J, which quiets the lines before the context too."""
    builder = builder.config("spark.log.level", "WARN")
    if submitted:
        return builder
    return builder.config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG4J.as_uri()}")


def _driver_has_delta() -> bool:
    """Under spark-submit: whether the running driver JVM has Delta Lake's classes (from --jars or --packages)."""
    from pyspark import SparkContext
    SparkContext._ensure_initialized()
    return jvm_has_delta(SparkContext._jvm)


def _in_terminal(submitted: bool) -> bool:
    """Whether Spark's console (the driver JVM's stderr) is a terminal. spark-submit gives this interpreter a pipe,
    so there the JVM is asked: it has a console when started from one without redirection."""
    if not submitted:
        return sys.stderr.isatty()
    from pyspark import SparkContext
    SparkContext._ensure_initialized()
    return SparkContext._jvm.java.lang.System.console() is not None


def build_spark(cfg: JobConfig, progress_bar: bool = False):
    """The job's session. `progress_bar`: Spark's console progress bar where its console is a terminal (a log file
    would fill with its redraws), unless the config sets spark.ui.showConsoleProgress itself."""
    from pyspark.sql import SparkSession
    builder = SparkSession.builder.appName(cfg.app_name)
    submitted = bool(os.environ.get("PYSPARK_GATEWAY_PORT"))   # spark-submit started this interpreter and its JVM
    if "spark.ui.showConsoleProgress" not in cfg.spark_conf:
        shown = progress_bar and _in_terminal(submitted)
        builder = builder.config("spark.ui.showConsoleProgress", str(shown).lower())
    if "spark.driver.extraJavaOptions" not in cfg.spark_conf:
        builder = quiet_spark(builder, submitted)
    master = cfg.master
    if submitted:
        from pyspark import SparkConf
        master = SparkConf().get("spark.master", None) or master   # spark-submit's --master wins over the config's
    elif master:
        builder = builder.master(master)
    if (master or "").startswith("local"):
        # Local mode: Python workers must run this interpreter (the one with deid installed).
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    for k, v in cfg.spark_conf.items():
        builder = builder.config(k, v)
    if os.environ.get(cfg.secret_env):
        # Executors read the HMAC key from their environment; Spark's UI redacts keys matching "secret".
        builder = builder.config(f"spark.executorEnv.{cfg.secret_env}", os.environ[cfg.secret_env])
    if submitted:
        # The driver JVM's classpath is fixed: the jars come with --jars
        # or --packages there (the Makefile gives build/delta-jars), or the cluster has them.
        native = cfg.engine == "native" or (cfg.engine == "auto" and _driver_has_delta())
    else:   # this process starts the JVM (python, pytest, a notebook): the fetched jars go on its classpath
        jars = sorted(cfg.delta_jars.glob("*.jar")) if cfg.delta_jars and cfg.engine != "delta-rs" else []
        if jars:
            listed = [j for j in cfg.spark_conf.get("spark.jars", "").split(",") if j]
            builder = builder.config("spark.jars", ",".join([*listed, *map(str, jars)]))
        native = cfg.engine == "native" or bool(jars)
    if native:
        builder = (builder.config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
                   .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"))
    return builder.getOrCreate()


@dataclass
class Counts:
    read: int = 0           # input rows
    duplicates: int = 0     # rows of a repeated note_id other than the one processed
    no_ids: int = 0         # rows without a note_id
    todo: int = 0
    unchanged: int = 0
    moved: int = 0
    written: int = 0
    quarantined: int = 0    # input rows in the quarantine after the run, put there by this run or an earlier one
    spans: int = 0


def _fail_point(name: str) -> None:
    if os.environ.get(FAIL_ENV) == name:
        raise RuntimeError(f"stopped on purpose after {name} ({FAIL_ENV})")


def _stage(name: str, n: int, t0: float) -> None:
    dt = max(time.perf_counter() - t0, 1e-9)
    rate = f"{n / dt:8.1f} notes/s" if n >= dt else f"{dt / n:8.1f} s/note" if n else ""
    log.info("stage %-12s %8d notes  %7.1f s  %s", name, n, dt, rate)


READ_FAILURES = ("FAILED_READ_FILE", "CANNOT_READ_FILE", "PATH_NOT_FOUND")   # Spark's conditions for a bad input
STANDARD_CHARSETS = ("utf-8", "ascii", "latin-1", "utf-16", "utf-16-be", "utf-16-le", "utf-32")   # Python's names


def _arrow_schema(schema: StructType) -> pa.Schema:
    """The input's columns with their Arrow types, for deid.io.note_columns (a type Arrow lacks reads as null)."""
    def arrow(data_type):
        try:
            return to_arrow_type(data_type)
        except Exception:  # noqa: BLE001 - pyspark raises its own error for types Arrow has no match for
            return pa.null()
    return pa.schema([pa.field(f.name, arrow(f.dataType)) for f in schema.fields])


def _spark_reason(exc: Exception) -> str:
    """Spark's error condition (e.g. PATH_NOT_FOUND), never its message, which may quote a row of the input. A JVM
    error that pyspark passes on unconverted (py4j's) carries it on an exception of its chain of causes."""
    condition = getattr(exc, "getCondition", None)
    if condition and condition():
        return condition()
    java = getattr(exc, "java_exception", None)
    for _ in range(10):
        if java is None:
            break
        try:
            if java.getCondition():   # a SparkThrowable
                return java.getCondition()
        except Exception:  # noqa: BLE001 - py4j's error for a Throwable without the method
            pass
        java = java.getCause()
    return type(exc).__name__


def read_notes(spark, io: SparkDelta, cfg: JobConfig):
    """The input as NOTE rows: its columns mapped to the NOTE columns (input.columns, else by name), each cast to
    its NOTE type (a value that does not cast is null), the NOTE columns it lacks null."""
    location, fmt, encoding = cfg.input_table, cfg.input_format, cfg.input_encoding
    if fmt in ("csv", "jsonl") and encoding not in STANDARD_CHARSETS:   # GB18030 is among Java's, not Spark's own
        spark.conf.set("spark.sql.legacy.javaCharsets", "true")
    try:
        if fmt == "delta":
            df = io.read(location)
        elif fmt == "table":
            df = spark.table(location)
        elif fmt == "parquet":
            df = spark.read.parquet(location)
        elif fmt == "csv":   # RFC 4180: quoted fields hold line breaks, a quote is doubled
            df = spark.read.csv(location, header=True, encoding=encoding, multiLine=True, escape='"',
                                mode="PERMISSIVE")
        else:   # JSON Lines; a line that is not JSON has null columns (and so no note_id: quarantined)
            df = spark.read.json(location, encoding=encoding, lineSep="\n", mode="PERMISSIVE")
    except Exception as exc:  # noqa: BLE001 - Spark's analysis and read errors, py4j's for the JVM's
        reason = _spark_reason(exc)
        if not (isinstance(exc, AnalysisException) or reason.startswith(READ_FAILURES)):
            raise   # not the input's fault (a JVM or classpath error, a Delta table only native Delta reads)
        raise dio.InputError(f"cannot read input {location} as {fmt} ({reason}); check it exists and "
                             "is readable, or give its format with --input-format " + "|".join(dio.INPUT_FORMATS)
                             ) from None
    found = dio.note_columns(_arrow_schema(df.schema), cfg.input_columns)
    spark_types = {f.name: f.dataType for f in spark_schema(pa.schema(list(dio.NOTE_SCHEMA.items()))).fields}
    return df.select([(F.col(f"`{found[name]}`").try_cast(spark_types[name]) if found[name]
                       else F.lit(None).cast(spark_types[name])).alias(name) for name in dio.NOTE_COLUMNS])


def keyed_digest(message, key: bytes):
    """HMAC-SHA256 (hex) of a string column in Spark SQL, without a UDF: sha2(K^opad || sha2(K^ipad || message))
    with the pads of deid.io.hmac_pads as literals; the same value as deid.io.note_digest."""
    inner, outer = dio.hmac_pads(key)
    inner_hash = F.unhex(F.sha2(F.concat(F.lit(inner), message.cast("binary")), 256))
    return F.sha2(F.concat(F.lit(outer), inner_hash), 256)


def counted(fn, accumulator):
    """fn for mapInArrow, adding the rows it returns to `accumulator` (Spark merges a task's count as it ends)."""
    def run(batches):
        for batch in fn(batches):
            accumulator.add(batch.num_rows)
            yield batch
    return run


class Progress:
    """While the block runs, a log line every `interval` seconds: notes done of the total, notes/s, time left.
    Counts only, never note text."""

    def __init__(self, done, total: int, interval: float):
        self.done, self.total, self.interval = done, total, interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._report, name="deid-progress", daemon=True)

    def __enter__(self):
        if self.interval > 0:
            self.t0 = time.perf_counter()
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()

    def _report(self) -> None:
        while not self.stopped.wait(self.interval):
            done, elapsed = self.done(), time.perf_counter() - self.t0
            rate = done / elapsed
            left = f"about {_duration((self.total - done) / rate)} left" if rate else "time left not known yet"
            speed = f"{rate:.1f} notes/s" if rate >= 1 or not rate else f"{1 / rate:.0f} s/note"   # the LLM's pace
            log.info("detect: %d of %d notes done (%.0f%%), %s, %s", done, self.total,
                     100 * done / max(self.total, 1), speed, left)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _llm_failed():
    """A result row whose LLM call failed: it was written from the detectors alone."""
    return F.coalesce(F.col("llm_status"), F.lit("")).startswith("failed")


def run(spark, cfg: JobConfig) -> dict:
    """The whole job on an existing SparkSession; returns the deid_runs row."""
    return JobRun(spark, cfg).execute()


class JobRun:
    """One run: read and plan, detect, write each table once, reconcile, record."""

    def __init__(self, spark, cfg: JobConfig):
        local = spark.sparkContext.master.startswith("local")   # local[N] and local-cluster share this file system
        if local:   # every path absolute before anything uses it (udfs.delta.qualified); catalog names stay
            cfg = dataclasses.replace(
                cfg, staging=qualified(cfg.staging), state=qualified(cfg.state),
                output_root=qualified(cfg.output_root) if cfg.output_root else "",
                input_table=qualified(cfg.input_table) if SparkDelta.is_path(cfg.input_table) else cfg.input_table)
        else:       # a relative path is the cluster file system's (its working directory), not this machine's
            cfg = dataclasses.replace(cfg)
        if cfg.input_format == "auto":   # main() told it before Spark started; a notebook's run tells it here
            cfg.input_format = dio.input_format(cfg.input_table, local_fs=local)
        self.spark, self.cfg = spark, cfg
        self.started = datetime.now(UTC)
        self.run_id = f"{self.started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self.secret = dio.secret_key(cfg.secret_env)
        redaction = spark.conf.get(REDACTION, None)
        if PADS not in (redaction or ""):
            spark.conf.set(REDACTION, f"{redaction}|{PADS}" if redaction else PADS)
        self.pconf = load_config(cfg.pipeline_config, **cfg.pipeline_overrides)
        # Built on the driver first so a bad config or a surrogate policy without a key fails before any write.
        resources = Resources.from_environment()
        driver_pipeline = Pipeline(self.pconf, self.secret, resources=resources)
        self.version = driver_pipeline.version
        llm = driver_pipeline.llm
        self.index_bytes = llm.index.to_bytes() if llm else None
        self.keep_answers = bool(llm) and cfg.llm_cache    # the secret is there: dio.secret_key raised otherwise
        self.files = resource_bundle(resources.root)
        self.dictionary_version = combine_digests({k: digest_bytes(v) for k, v in self.files.items()
                                                   if k.startswith("dictionaries/")})
        self.io = SparkDelta(spark, choose_engine(spark, cfg.engine), os.path.join(cfg.staging, self.run_id),
                             cfg.retention)
        self.loc = {**{name: cfg.location(cfg.tables[name]) for name in ("spans", "runs", "quarantine", "answers")},
                    **{k: cfg.location(cfg.tables["masked"][k]) for k in cfg.policies}}
        self.counts = Counts()
        self._cached = []
        self.row = dict(run_id=self.run_id, started_at=self.started, finished_at=None, status="running",
                        engine=self.io.engine, input_table=cfg.input_table, input_version=None, notes_read=0,
                        notes_written=0, notes_unchanged=0, notes_quarantined=0, notes_moved=0, spans_written=0,
                        pipeline_version=self.version, config_digest=self.pconf.digest,
                        dictionary_version=self.dictionary_version,
                        prompt_version=llm.prompts.version if llm else "none",
                        model=f"detectors+{self.pconf.llm.model}" if llm else "detectors",
                        notes_llm_fallback=0, prompt_tokens=0, completion_tokens=0, llm_cache_hits=0, llm_calls=0,
                        reprocess="full" if cfg.full_refresh else cfg.reprocess,
                        policy_preset=driver_pipeline.policies.preset, message=None)

    def input_version(self) -> int | None:
        """The Delta version read, where the input is a Delta table (a path, or a catalog table on native Delta)."""
        fmt = self.cfg.input_format
        if fmt == "delta" or (fmt == "table" and self.io.engine == "native"):
            try:
                return self.io.version(self.cfg.input_table)
            except Exception:  # noqa: BLE001 - a catalog table that is not Delta has no version; the read says more
                return None
        return None

    def cached(self, df):
        """df cached for this run only: execute() unpersists it at the end, so a long-lived session (a notebook, a
        shared cluster, the tests) does not fill the driver with every run's frames."""
        self._cached.append(df.cache())
        return df

    def save_run(self, **changes) -> None:
        self.row.update(changes)
        self.io.upsert_run(self.loc["runs"], pa.Table.from_pylist([self.row], schema=dio.RUNS))

    def execute(self) -> dict:
        c = self.counts
        # Before anything is written, not even this run's deid_runs row: one run at a time over these tables.
        output_lock = claim_output(self.cfg.state, self.run_id, self.cfg.output_root or self.loc["runs"])
        log.info("run %s: engine %s, pipeline %s, input %s", self.run_id, self.io.engine, self.version,
                 self.cfg.input_table)
        try:
            self.save_run(input_version=self.input_version())
        except BaseException:
            if output_lock:
                output_lock.close()
            raise
        staging_lock = claim_staging(self.cfg.staging, self.run_id)   # removes killed runs' staging folders
        try:
            notes, losers, no_ids = self.read()
            todo, moved_from, rewrite_no_ids = self.plan(notes, losers, no_ids)
            if c.todo or rewrite_no_ids or moved_from:
                results = self.detect(todo) if c.todo else None
                self.write(todo, losers, no_ids, results, rewrite_no_ids, moved_from)
            else:
                log.info("nothing to write: every note already landed with pipeline %s", self.version)
            self.verify(todo)
            if self.cfg.optimize:
                self.compact()
            if self.cfg.vacuum:
                self.vacuum()
            if c.written + c.unchanged + c.moved + c.quarantined != c.read:
                raise ReconciliationError(f"read {c.read} != written {c.written} + unchanged {c.unchanged} + moved "
                                          f"{c.moved} + quarantined {c.quarantined}")
            # This run's dictionaries, kept for the next run's --reprocess affected.
            materialize(self.files, Path(self.cfg.state) / "resources" / self.dictionary_version)
            self.save_run(status="succeeded", finished_at=datetime.now(UTC), notes_read=c.read,
                          notes_written=c.written, notes_unchanged=c.unchanged, notes_quarantined=c.quarantined,
                          notes_moved=c.moved, spans_written=c.spans)
            log.info("run %s succeeded: read %d = written %d + unchanged %d + moved %d + quarantined %d; %d spans",
                     self.run_id, c.read, c.written, c.unchanged, c.moved, c.quarantined, c.spans)
        except Exception as exc:
            # Our own messages, or only the exception's class: never note text.
            known = (ReconciliationError, dio.SchemaError, dio.InputError, RuntimeError)
            message = str(exc) if isinstance(exc, known) else type(exc).__name__
            self.save_run(status="failed", finished_at=datetime.now(UTC), notes_read=c.read,
                          message=message[:500])
            raise
        finally:
            for df in self._cached:
                df.unpersist()
            shutil.rmtree(os.path.join(self.cfg.staging, self.run_id), ignore_errors=True)
            for lock in (staging_lock, output_lock):
                if lock:
                    lock.close()
        return self.row

    # -- stages ----------------------------------------------------------------------------------------
    def read(self):
        """The input rows with their keyed note_digest: (notes, one row per note_id, the ones to process; losers,
        the other rows of a repeated note_id; no_ids, the rows without a note_id)."""
        t0 = time.perf_counter()
        c = self.counts
        self.spark.sparkContext.setJobDescription("deid: read NOTE")
        notes = read_notes(self.spark, self.io, self.cfg)
        if self.cfg.limit:
            notes = notes.orderBy("note_id").limit(self.cfg.limit)

        def tagged(col):   # null and empty must digest differently
            return F.when(F.col(col).isNull(), F.lit("N")).otherwise(F.concat(F.lit("V"), F.col(col)))
        message = F.concat(tagged("note_title"), F.lit("\x1f"), tagged("note_text"))
        notes = notes.withColumn("note_digest", keyed_digest(message, self.secret))
        # The rows, the ids that repeat and the rows without an id, counted in one pass over note_id.
        per_id = notes.groupBy("note_id").count()
        has_id = F.col("note_id").isNotNull()
        totals = per_id.agg(F.sum("count").alias("rows"), F.count_if(has_id & (F.col("count") > 1)).alias("repeated"),
                            F.sum(F.when(~has_id, F.col("count")).otherwise(0)).alias("no_ids")).first()
        c.read, c.no_ids = totals["rows"] or 0, totals["no_ids"] or 0
        no_ids, notes = notes.filter(~has_id), notes.filter(has_id)
        if not totals["repeated"]:
            _stage("read", c.read, t0)
            return notes, notes.limit(0), no_ids
        # A note_id that repeats: the row with the latest note_datetime is processed (a null time loses to any),
        # then the one with the larger digest, then by the other columns, so that every run picks the same row; the
        # others are quarantined. Ranking sorts whole notes, so it runs only over the ids that do repeat.
        repeated = self.cached(per_id.filter(has_id & (F.col("count") > 1)).select("note_id"))
        others = [F.col(n).asc_nulls_last() for n in dio.NOTE_COLUMNS
                  if n not in ("note_id", "note_datetime", "note_title", "note_text")]
        rank = Window.partitionBy("note_id").orderBy(F.col("note_datetime").desc_nulls_last(),
                                                     F.col("note_digest").desc(), *others)
        ranked = notes.join(repeated, "note_id", "left_semi").withColumn("_rank", F.row_number().over(rank))
        losers = self.cached(ranked.filter("_rank > 1").drop("_rank"))
        c.duplicates = losers.count()
        keep = notes.join(repeated, "note_id", "left_anti").unionByName(ranked.filter("_rank = 1").drop("_rank"))
        _stage("read", c.read, t0)
        return keep, losers, no_ids

    def plan(self, notes, losers, no_ids):
        """Split notes into unchanged (already landed at this version), still quarantined (at this version, for a
        cause in the note itself), to move (affected mode), and to do; and say whether the rows without a note_id
        are other than those the quarantine holds. The split works on (note_id, note_digest) alone; only the notes
        to do are joined back to their text."""
        t0 = time.perf_counter()
        c = self.counts
        key = ["note_id", "note_digest"]
        state, quarantine = self.landed(), self.io.read(self.loc["quarantine"], dio.QUARANTINE)
        if self.cfg.full_refresh:
            state, quarantine = state.limit(0), quarantine.limit(0)
        repeat = F.col("error_class") == "DuplicateNoteId"
        stays = ((F.col("pipeline_version") == self.version) & (F.col("stage") != "input")
                 & ~F.col("error_class").isin(*TRANSIENT_ERRORS))
        held = quarantine.agg(F.count_if(repeat).alias("repeats"),
                              F.count_if(F.col("note_id").isNull()).alias("no_ids")).first()
        current = state.filter(F.col("pipeline_version") == self.version).select(*key)
        settled = quarantine.filter(stays).select(*key).distinct()
        if c.duplicates or held["repeats"]:
            # A note_id whose repeats are not the DuplicateNoteId rows held is done again, whatever landed: the
            # quarantine rows of a note_id are replaced together.
            had, have = quarantine.filter(repeat).select(*key), losers.select(*key)
            changed = have.exceptAll(had).unionByName(had.exceptAll(have)).select("note_id").distinct()
            current, settled = (df.join(changed, "note_id", "left_anti") for df in (current, settled))
        # One row per note not in every masked table at this version, flagged when it stays quarantined.
        open_keys = (notes.select(*key).join(current, key, "left_anti")
                     .join(settled.withColumn("_stays", F.lit(True)), key, "left"))
        open_keys = self.cached(open_keys)
        flags = dict(open_keys.groupBy("_stays").count().collect())
        still_quarantined = flags.get(True, 0)
        todo_keys = open_keys.filter(F.col("_stays").isNull()).drop("_stays")
        c.todo = flags.get(None, 0)
        moved_from = None
        if self.cfg.reprocess == "affected" and not self.cfg.full_refresh:
            todo_keys, moved_from = self.affected(state, todo_keys, notes)
            todo_keys = self.cached(todo_keys)
            c.todo = todo_keys.count()
        # Every kept note is to do, to move, still quarantined or unchanged: counting the rest would digest and
        # join every note again.
        kept = c.read - c.duplicates - c.no_ids
        c.unchanged = kept - c.todo - c.moved - still_quarantined
        c.quarantined = still_quarantined + c.duplicates + c.no_ids
        if c.todo == kept:
            todo = notes
        elif c.todo <= BROADCAST_TODO:   # the few notes to do find their text without a shuffle
            todo = notes.drop("note_digest").join(F.broadcast(todo_keys), "note_id")
            if c.todo <= CACHE_TODO:
                todo = self.cached(todo)
        else:
            todo = notes.join(todo_keys, key, "left_semi")
        rewrite_no_ids = c.no_ids != held["no_ids"]
        if c.no_ids and not rewrite_no_ids:   # as many rows without a note_id as held: are they the same?
            had = quarantine.filter(F.col("note_id").isNull()).select("note_digest")
            rewrite_no_ids = no_ids.select("note_digest").exceptAll(had).limit(1).count() > 0
        _stage("plan", c.todo, t0)
        log.info("plan: %d to process, %d unchanged, %d to move version, %d still quarantined, %d duplicate ids, "
                 "%d without note_id%s", c.todo, c.unchanged, c.moved, still_quarantined, c.duplicates, c.no_ids,
                 " (to replace)" if rewrite_no_ids else "")
        return todo, moved_from, rewrite_no_ids

    def landed(self):
        """(note_id, note_digest, pipeline_version) of every note that is in each masked table at that digest and
        version: a run killed between the masked tables' commits leaves its notes out."""
        parts = [self.io.read(self.loc[level], dio.MASKED).select("note_id", "note_digest", "pipeline_version")
                 .withColumn("table", F.lit(1 << i)) for i, level in enumerate(self.cfg.policies)]
        union = reduce(lambda a, b: a.unionByName(b), parts)
        # Exactly one row in each table, all at one digest and version: a note a table holds twice (two runs
        # appended it) is done again, and its rows replaced by one. Plain aggregates, no DISTINCT (a shuffle each).
        per_note = union.groupBy("note_id").agg(
            F.count("*").alias("rows"), F.bit_or("table").alias("tables"),
            F.min("note_digest").alias("note_digest"), F.max("note_digest").alias("max_digest"),
            F.min("pipeline_version").alias("pipeline_version"), F.max("pipeline_version").alias("max_version"))
        whole = ((F.col("rows") == len(parts)) & (F.col("tables") == (1 << len(parts)) - 1)
                 & (F.col("note_digest") == F.col("max_digest")) & (F.col("pipeline_version") == F.col("max_version")))
        return per_note.filter(whole).select("note_id", "note_digest", "pipeline_version")

    def affected(self, state, todo_keys, notes):
        """--reprocess affected: when only dictionaries changed since the last successful run, re-run only the
        notes holding a term that was added or removed; the others move to the new version un-rerun."""
        runs = self.io.read(self.loc["runs"], dio.RUNS).filter("status = 'succeeded'")
        last = runs.orderBy(F.col("finished_at").desc()).first()
        if last is None or last["pipeline_version"] == self.version:
            return todo_keys, None
        old_dir = Path(self.cfg.state) / "resources" / last["dictionary_version"]
        if (not old_dir.exists() or last["config_digest"] != self.pconf.digest
                or source_part(last["pipeline_version"]) != source_part(self.version)):   # deid's code changed
            log.info("reprocess affected: the previous run's dictionaries or config are not comparable; re-running all")
            return todo_keys, None
        old_files = resource_bundle(old_dir)
        changed = {k for k in set(old_files) | set(self.files) if old_files.get(k) != self.files.get(k)}
        if any(not k.startswith("dictionaries/") for k in changed):
            log.info("reprocess affected: non-dictionary resources changed (%s); re-running all", sorted(changed))
            return todo_keys, None
        terms = dictionary_terms(old_files) ^ dictionary_terms(self.files)
        old_version = last["pipeline_version"]
        at_old = state.filter(F.col("pipeline_version") == old_version).select("note_id", "note_digest")
        candidates = todo_keys.join(at_old, ["note_id", "note_digest"], "left_semi")
        hit = self.spark.sparkContext.broadcast(sorted(terms))
        # Nearly every note is a candidate: scan all notes' text once (cached) rather than shuffle it to them.
        holding = self.cached(notes.select("note_id", "note_title", "note_text").mapInArrow(affected_function(hit),
                                                                                            "note_id long"))
        move = candidates.join(holding, "note_id", "left_anti")
        self.counts.moved = move.count()
        log.info("reprocess affected: %d terms changed; %d notes hold one, %d move to the new version",
                 len(terms), holding.count(), self.counts.moved)
        return todo_keys.join(move.select("note_id"), "note_id", "left_anti"), old_version

    def detect(self, todo):
        """mapInArrow over partitions; executors stage the results as Parquet."""
        t0 = time.perf_counter()
        sc = self.spark.sparkContext
        sc.setJobDescription("deid: detect and mask")
        results_dir = os.path.join(self.io.staging, "results")
        bundle = sc.broadcast(make_bundle(self.pconf.raw, Path(self.pconf.policies_path).read_bytes(), self.files,
                                          index_bytes=self.index_bytes))
        if self.keep_answers and self.io.exists(self.loc["answers"]):
            todo = self.with_kept_answers(todo, bundle)
        carry = [c for c in todo.columns if c not in ("note_title", "note_text", "note_id", CACHED_COLUMN)]
        done = sc.accumulator(0)   # notes finished, as tasks report them
        fn = counted(partition_function(bundle, self.cfg.secret_env, self.cfg.keep_span_text, tuple(carry)), done)
        schema = StructType(spark_schema(RESULT).fields + [todo.schema[c] for c in carry])
        # Tasks take note_id ranges, and the writes below keep them (no join, one file per range), so each output
        # file covers a narrow note_id range: a later MERGE of recent notes rewrites the files of the tail only.
        tasks = max(1, self.cfg.partitions, math.ceil(self.counts.todo / self.cfg.notes_per_task))
        with Progress(lambda: done.value, self.counts.todo, self.cfg.progress_interval_s):
            (todo.repartitionByRange(tasks, "note_id").mapInArrow(fn, schema)
             .write.mode("overwrite").parquet(results_dir))
        # One staged file per read partition (never two ranges packed into one task).
        self.spark.conf.set("spark.sql.files.openCostInBytes", self.spark.conf.get("spark.sql.files.maxPartitionBytes"))
        results = self.spark.read.parquet(results_dir)
        totals = results.groupBy().agg(
            F.sum(F.when(F.col("status") == "ok", 1).otherwise(0)).alias("ok"),
            F.sum(F.when(F.col("status") != "ok", 1).otherwise(0)).alias("bad"),
            F.sum(F.when(_llm_failed(), 1).otherwise(0)).alias("fallback"),
            F.sum("prompt_tokens").alias("prompt"), F.sum("completion_tokens").alias("completion"),
            F.sum("llm_cache_hits").alias("hits"), F.sum("llm_calls").alias("calls")).first()
        self.counts.written = totals["ok"] or 0
        self.counts.quarantined += totals["bad"] or 0
        self.row.update(notes_llm_fallback=totals["fallback"] or 0, prompt_tokens=totals["prompt"] or 0,
                        completion_tokens=totals["completion"] or 0, llm_cache_hits=totals["hits"] or 0,
                        llm_calls=totals["calls"] or 0)
        _stage("detect", self.counts.todo, t0)
        _fail_point("detect")
        if self.keep_answers:
            self.keep_new_answers(results)
        return results

    def with_kept_answers(self, todo, bundle):
        """todo with the kept answers to its notes' LLM requests (column llm_cached). The requests' keys come from
        the pipeline up to the LLM call (detectors included: routing sends what they leave), a join finds them
        among the kept answers, and detection then asks the model only the others."""
        t0 = time.perf_counter()
        self.spark.sparkContext.setJobDescription("deid: look up kept LLM answers")
        keys = todo.select("note_id", "note_title", "note_text", *[c for c in ("note_date", "note_datetime",
                                                                                "person_id") if c in todo.columns])
        keys = keys.mapInArrow(request_keys_function(bundle, self.cfg.secret_env, self.cfg.keep_span_text),
                               "note_id long, key string")
        kept = self.io.read(self.loc["answers"], dio.ANSWERS).select("key", "answer").dropDuplicates(["key"])
        found = (keys.join(kept, "key").groupBy("note_id")
                 .agg(F.collect_list(F.struct("key", "answer")).alias(CACHED_COLUMN)))
        todo = todo.join(found, "note_id", "left")
        _stage("llm_lookup", self.counts.todo, t0)
        return todo

    def keep_new_answers(self, results) -> None:
        """Append the answers this run had to ask for (one blind append: two runs sharing the table never
        conflict, and a key kept twice is read once). A run killed after this keeps them for its rerun."""
        t0 = time.perf_counter()
        answers = (results.select(F.explode("llm_answers").alias("a")).select("a.key", "a.answer")
                   .withColumns({"model": F.lit(self.pconf.llm.model),
                                 "prompt_version": F.lit(self.row["prompt_version"]), "run_id": F.lit(self.run_id),
                                 "kept_at": F.current_timestamp()}))
        n = answers.count()
        if n:
            self.io.append(self.loc["answers"], answers, dio.ANSWERS, "llm_answers")
        _stage("llm_keep", n, t0)
        _fail_point("llm_keep")

    def write(self, todo, losers, no_ids, results, rewrite_no_ids, moved_from) -> None:
        """One commit per table with something to change, each replacing every row of the processed notes (or,
        when no table holds any of them yet, adding the executors' files as they are); the rows without a note_id
        are replaced together, by a marker of note_id null, when they are other than those held."""
        c = self.counts
        ids = todo.select("note_id")
        if c.todo or rewrite_no_ids:
            self.fresh = self.all_fresh(ids, rewrite_no_ids)
        stamp = {"pipeline_version": F.lit(self.version), "run_id": F.lit(self.run_id)}
        keys = ["note_id", "person_id", "note_digest"]
        writes, quarantine, quarantine_ids = [], [], []
        if c.todo:
            ok, bad = results.filter("status = 'ok'"), results.filter("status != 'ok'")
            meta = [col for col in todo.columns if col not in ("note_title", "note_text")]   # carried through detect
            version = F.when(_llm_failed(), F.lit(self.version + dio.FALLBACK_SUFFIX)).otherwise(F.lit(self.version))
            ok = ok.withColumn("pipeline_version", version)

            # Spans land first: a note counts as landed once it is in every masked table, so its spans never lag.
            spans = (ok.select(*keys, "llm_status", "pipeline_version", F.explode("spans").alias("s"))
                     .select(*keys, "llm_status", "pipeline_version", "s.*"))
            c.spans = ok.select(F.sum(F.size("spans"))).first()[0] or 0
            self._replace("spans", spans.withColumn("run_id", F.lit(self.run_id)), todo, dio.SPANS, c.todo)

            for level in self.cfg.policies:
                # the row's own dates as this level writes dates, so that the row does not undo the text
                dated = [F.col(f"masked_{col}_l{level}").alias(col) if col in ("note_date", "note_datetime") else col
                         for col in meta]
                masked = ok.select(*dated, "pipeline_version", F.col(f"masked_title_l{level}").alias("note_title"),
                                   F.col(f"masked_text_l{level}").alias("note_text"),
                                   F.col(f"masked_count_l{level}").alias("masked_count"))
                writes.append((level, masked.withColumn("run_id", F.lit(self.run_id)), todo, dio.MASKED, c.written))
            # A note_id's quarantine rows are replaced together: its failure, if any, and every row that lost to it.
            quarantine += [bad.select(*keys, "stage", "error_class", "message"),
                           self._quarantined(losers.join(ids, "note_id", "left_semi"), "DuplicateNoteId",
                                             "note_id repeats in the input; the row with the latest note_datetime "
                                             "was processed")]
            quarantine_ids.append(ids)
        if rewrite_no_ids:
            quarantine.append(self._quarantined(no_ids, "NullNoteId",
                                                f"note_id is null (or not an integer) in {c.no_ids} of the "
                                                "input's rows"))
            quarantine_ids.append(self.spark.createDataFrame([(None,)], "note_id long"))
        if quarantine:
            rows = reduce(lambda a, b: a.unionByName(b), quarantine)
            writes.append(("quarantine", rows.withColumns({**stamp, "quarantined_at": F.current_timestamp()}),
                           reduce(lambda a, b: a.unionByName(b), quarantine_ids), dio.QUARANTINE, c.quarantined))
        # The masked tables and the quarantine are independent: commit them concurrently, one commit each.
        with ThreadPoolExecutor(max_workers=max(1, len(writes))) as pool:
            for future in [pool.submit(self._replace, *w) for w in writes]:
                future.result()

        if moved_from:
            t0 = time.perf_counter()
            for name in ["spans", *self.cfg.policies]:
                self.io.move_version(self.loc[name], moved_from, self.version)
            _stage("move_version", c.moved, t0)
            _fail_point("move_version")

    @staticmethod
    def _quarantined(rows, error_class: str, message: str):
        """Input rows quarantined before detection, as quarantine rows (stage input)."""
        return rows.select("note_id", "person_id", "note_digest", F.lit("input").alias("stage"),
                           F.lit(error_class).alias("error_class"), F.lit(message).alias("message"))

    def all_fresh(self, note_ids, with_no_ids: bool) -> bool:
        """True when no output table holds a row of any note this run writes (nor, when it writes the rows
        without a note_id, any such row): appending is then exact. (A run killed after some commits left rows
        behind, so its rerun merges.)"""
        t0 = time.perf_counter()
        held = None
        for name in ["spans", "quarantine", *self.cfg.policies]:
            if self.io.exists(self.loc[name]):
                ids = self.io.read(self.loc[name]).select("note_id")
                held = ids if held is None else held.unionByName(ids)
        fresh = held is None
        if not fresh:
            clash = note_ids.join(held, "note_id", "left_semi")
            if with_no_ids:
                clash = clash.unionByName(held.filter(F.col("note_id").isNull()))
            fresh = clash.limit(1).count() == 0
        _stage("append_or_merge", self.counts.todo, t0)
        return fresh

    def _replace(self, name, rows, note_ids, schema, n) -> None:
        label = {"spans": "note_phi_spans", "quarantine": "quarantine"}.get(name, f"masked_l{name}")
        t0 = time.perf_counter()
        self.spark.sparkContext.setJobDescription(f"deid: write {label}")
        if self.fresh:
            self.io.append(self.loc[name], rows, schema, label)
        else:
            self.io.replace_notes(self.loc[name], rows, note_ids, schema, label)
        _stage(label, n, t0)
        _fail_point(label)

    def compact(self) -> None:
        """--optimize: every day-2 run adds a few small files per table; fold them into files of the target size.
        The kept LLM answers (one small append per run that asked the model) are compacted too, without Z-order:
        they are looked up by a join on their key, which reads the whole table anyway."""
        t0 = time.perf_counter()
        for name in ["spans", "quarantine", *self.cfg.policies, "answers"]:
            got = self.io.compact(self.loc[name], self.cfg.optimize_target_mb * 2**20,
                                  zorder_by=None if name == "answers" else "note_id")
            log.info("optimize %s: %d small files rewritten into %d", self.loc[name], got["removed"], got["added"])
        _stage("optimize", self.counts.read, t0)

    def vacuum(self) -> None:
        """--vacuum: delete the files older versions of the output tables hold beyond their retention (masked text
        a later run replaced among them); time travel past the retention fails afterwards."""
        t0 = time.perf_counter()
        for name in ["spans", "quarantine", *self.cfg.policies, "answers"]:
            self.io.vacuum(self.loc[name])
        _stage("vacuum", self.counts.read, t0)

    def verify(self, todo) -> None:
        """No note this run wrote has two rows in a masked table (earlier runs checked the notes they wrote)."""
        if not self.cfg.verify or not self.counts.todo:
            return
        t0 = time.perf_counter()
        ours = todo.select("note_id")
        ids = None
        for level in self.cfg.policies:   # one Spark job over the three tables
            if self.io.exists(self.loc[level]):
                part = self.io.read(self.loc[level]).select("note_id").join(ours, "note_id", "left_semi")
                part = part.withColumn("level", F.lit(level))
                ids = part if ids is None else ids.unionByName(part)
        if ids is not None:
            twice = (ids.groupBy("level", "note_id").count().filter("count > 1").groupBy("level").count()
                     .orderBy("level").collect())
            if twice:
                raise ReconciliationError("; ".join(f"{self.cfg.tables['masked'][r['level']]} holds {r['count']} "
                                                    "notes twice" for r in twice))
        _stage("verify", self.counts.todo, t0)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class OneLineParser(argparse.ArgumentParser):
    """A wrong option is one line on stderr and exit status 2, like every other failure of the job."""
    def error(self, message):
        self.exit(EXIT_USAGE, f"error: {message}; see --help\n")


def parse_args(argv=None):
    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(data_dir("conf") / "local.yaml"))
    ap.add_argument("--input", help="the NOTE table: a Delta table, Parquet, CSV or JSON Lines (a file or a folder), "
                                    "or a catalog table name")
    ap.add_argument("--input-format", choices=["auto", *dio.INPUT_FORMATS],
                    help="the input's format (default: told by the path; a folder with _delta_log is Delta)")
    ap.add_argument("--encoding", help="of CSV and JSON Lines input (default utf-8), e.g. gb18030")
    ap.add_argument("--output", help="output root folder (local mode)")
    ap.add_argument("--policies", help="policy levels to write, e.g. 1,2,3")
    ap.add_argument("--policy-preset", help="conf/policies.yaml preset: default (every type) or paper (the seven)")
    ap.add_argument("--limit", type=int, help="process at most N notes (by note_id)")
    ap.add_argument("--full-refresh", action="store_true", help="process every note, whatever already landed")
    ap.add_argument("--optimize", action="store_true",
                    help="after the run, compact each output table's small files (job.optimize_target_mb)")
    ap.add_argument("--vacuum", action="store_true",
                    help="after the run, delete files older versions hold beyond output.retention (time travel to "
                         "them fails afterwards)")
    ap.add_argument("--reprocess", choices=["version", "affected"],
                    help="version: every note at another pipeline_version; affected: only notes holding a changed "
                         "dictionary term")
    ap.add_argument("--log-level", default="INFO", choices=LOG_LEVELS, type=str.upper,
                    help="the job's log lines on stderr (default INFO: each stage, and progress during detection)")
    ap.add_argument("--quiet", action="store_true", help="log errors only (same as --log-level ERROR)")
    ap.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    return ap.parse_args(argv)


def _local_master(cfg: JobConfig) -> bool:
    """Whether Spark runs on this machine, so that a path without a scheme is a local one."""
    master = cfg.master
    if os.environ.get("PYSPARK_GATEWAY_PORT"):   # under spark-submit its --master wins
        from pyspark import SparkConf
        master = SparkConf().get("spark.master", None) or master
    return (master or "local").startswith("local")


def check_input(cfg: JobConfig, local_fs: bool) -> None:
    """Before Spark starts: the input exists, its format is known (cfg.input_format is set to it), and where it
    is local, its encoding and its columns are what the job needs."""
    cfg.input_format = dio.input_format(cfg.input_table, cfg.input_format, local_fs)
    if local_fs:
        dio.check_text_encoding(cfg.input_table, cfg.input_format, cfg.input_encoding)
        schema = dio.local_input_schema(cfg.input_table, cfg.input_format, cfg.input_encoding)
        if schema is not None:
            dio.note_columns(schema, cfg.input_columns)


def _failure(exc: Exception) -> tuple[int, str]:
    """The exit status and the one line for a failure; our own messages, which never hold note text."""
    from deid.config import ConfigError
    from deid.masking import PolicyError
    if isinstance(exc, RunInProgress):
        return EXIT_BUSY, str(exc)
    if isinstance(exc, (ConfigError, PolicyError, dio.MissingSecret, dio.SchemaError, dio.InputError)):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, ReconciliationError):
        return EXIT_FAILED, f"the run does not reconcile: {exc}; deid_runs holds the failed run"
    if isinstance(exc, OSError) and exc.filename:
        return EXIT_USAGE, f"{exc.filename}: {exc.strerror or type(exc).__name__}; check the path"
    reason = _spark_reason(exc)
    if reason.startswith(READ_FAILURES):   # a file of the input that Spark met only as a task read it
        return EXIT_USAGE, (f"a file of the input cannot be read ({reason}); check the files of --input, or give "
                            "their format with --input-format")
    return EXIT_FAILED, (f"unexpected {type(exc).__name__} ({reason}); deid_runs holds the failed run; "
                         "run the job again with --debug for the traceback")


def main(argv=None) -> int:
    args = parse_args(argv)
    level = "ERROR" if args.quiet else args.log_level
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("deid").setLevel(level)
    try:
        cfg = load_job_config(args.config, args)
        dio.secret_key(cfg.secret_env)   # before Spark starts: a run without the key is refused at once
        check_input(cfg, _local_master(cfg))
        spark = build_spark(cfg, progress_bar=not args.quiet)
        try:
            row = run(spark, cfg)
        finally:
            spark.stop()   # executors go before the JVM exits (a cluster would log their loss otherwise)
    except Exception as exc:
        return report(exc, _failure, args.debug)
    print(f"run {row['run_id']} {row['status']}: read {row['notes_read']}, written {row['notes_written']}, "
          f"unchanged {row['notes_unchanged']}, moved {row['notes_moved']}, quarantined {row['notes_quarantined']}, "
          f"spans {row['spans_written']}")
    over = quarantine_exceeded(row, cfg.max_quarantine_share)
    if over:
        print(f"error: {over}", file=sys.stderr)
        return EXIT_QUARANTINE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
