"""Delta I/O for Spark on two engines, one format.

- native: Spark's format("delta") and DeltaTable.merge, when the session has Delta Lake's JVM classes
  (Databricks, EMR, `make install`'s build/delta-jars, or --packages io.delta:delta-spark_4.2_2.13:4.4.0).
- delta-rs: offline or without the jars. Reads take the file list from the Delta log; writes are staged by
  executors as Parquet and land in one MERGE commit per table made by the driver through deid.io.
Both run the same MERGE (deid.io.replace_predicate), so either engine can continue the other's tables.
"""
from __future__ import annotations

import fcntl
import glob
import logging
import os
import re
import shutil
import socket
from datetime import UTC, datetime

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructField, StructType

from deid.io import (
    COLUMN_COMMENTS,
    MARKER,
    TABLE_COMMENTS,
    DeltaRs,
    Retention,
    replace_predicate,
    table_kind,
    table_properties,
)

NATIVE, DELTA_RS = "native", "delta-rs"
STAGING_LOCK = ".lock"
OUTPUT_LOCK = "run.lock"   # in the job's state folder: held by the run writing the output tables
log = logging.getLogger("deid.job")


class RunInProgress(RuntimeError):
    """Another run is writing the same output tables."""
RUN_FOLDER = re.compile(r"\d{8}T\d{6}-[0-9a-f]{8}")   # a run_id: the only folders a run removes from the staging root


def native_available(spark: SparkSession) -> bool:
    return jvm_has_delta(spark._jvm)


def jvm_has_delta(jvm) -> bool:
    """Whether a running JVM (py4j gateway view) has Delta Lake's classes."""
    try:
        # Spark's own class loader: jars given by spark.jars or --jars are not on the system class path.
        jvm.org.apache.spark.util.Utils.classForName("io.delta.tables.DeltaTable", True, False)
        return True
    except Exception:  # noqa: BLE001 - py4j raises its own error types for a missing class
        return False


def choose_engine(spark: SparkSession, setting: str) -> str:
    if setting == NATIVE or (setting == "auto" and native_available(spark)):
        if not native_available(spark):
            raise RuntimeError("delta.engine is 'native' but Delta Lake's JVM classes are not on the classpath "
                               "(make install fetches them into build/delta-jars; on spark-submit give them with "
                               "--jars, or "
                               "--packages io.delta:delta-spark_4.2_2.13:4.4.0)")
        return NATIVE
    return DELTA_RS


def claim_staging(root: str, run_id: str):
    """Create this run's staging folder under `root` and lock it for as long as the returned file stays open;
    first remove every run folder there whose lock nobody holds. The kernel drops a process's locks when it
    ends, however it ends, so such a folder is a killed run's, and its staged Parquet holds masked text. Runs
    still going hold theirs, whatever their age. Both steps happen under the root's own lock, so a run that
    starts beside another is never taken for a dead one. Returns None for a staging root that is not a local
    path (an object store has no file locks)."""
    if _is_url(root):
        return None
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, STAGING_LOCK), "a") as root_lock:
        fcntl.flock(root_lock, fcntl.LOCK_EX)
        for name in os.listdir(root):
            folder = os.path.join(root, name)
            if RUN_FOLDER.fullmatch(name) and name != run_id and not _locked(os.path.join(folder, STAGING_LOCK)):
                shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(os.path.join(root, run_id), exist_ok=True)
        lock = open(os.path.join(root, run_id, STAGING_LOCK), "a")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return lock


def claim_output(state: str, run_id: str, output: str):
    """Lock the job's output tables for this run, for as long as the returned file stays open. Two runs writing
    the same tables at once would each append a first load (every note twice) or undo each other's MERGE, so a
    second run is refused at once with RunInProgress, naming the run that holds the lock. The kernel drops the
    lock when its process ends, however it ends. Returns None where the state folder has no file locks (an object
    store, some FUSE mounts): there the scheduler must keep to one run at a time (the deploy/ recipes do), and a
    run that finds a note twice fails in verify, and the next run repairs it."""
    if _is_url(state):
        log.warning("state folder %s is not a local path: no run lock; schedule one run at a time", state)
        return None
    os.makedirs(state, exist_ok=True)
    lock = open(os.path.join(state, OUTPUT_LOCK), "a+", encoding="utf-8")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "a run"
        lock.close()
        raise RunInProgress(f"{holder} is writing the tables under {output}; run again when it has ended "
                            "(schedule one run at a time)") from None
    except OSError as exc:   # ENOLCK / ENOTSUP: a file system without locks
        lock.close()
        log.warning("state folder %s has no file locks (%s): no run lock; schedule one run at a time", state,
                    exc.strerror)
        return None
    lock.seek(0)
    lock.truncate()
    lock.write(f"run {run_id} (pid {os.getpid()} on {socket.gethostname()}, "
               f"since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC)\n")
    lock.flush()
    return lock


def qualified(path: str) -> str:
    """A local path made absolute, so that it names the same folder for the driver, the JVM and the Python
    workers (whose working directories can differ: a notebook that changed its own), and a path for Delta's SQL
    and table builder (which read a relative one as a table name)."""
    return path if _is_url(path) else os.path.abspath(path)


def _is_url(path: str) -> bool:
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", path) is not None


def _locked(path: str) -> bool:
    """Whether a process holds the lock file (a folder without one was left by a version before the locks)."""
    try:
        with open(path) as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
    except FileNotFoundError:
        return False
    except BlockingIOError:
        return True


def spark_schema(schema: pa.Schema):
    return from_arrow_schema(schema)


def conform(df: DataFrame, schema: pa.Schema) -> DataFrame:
    """Columns in the table's order and types."""
    target = spark_schema(schema)
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in target.fields])


class SparkDelta:
    def __init__(self, spark: SparkSession, engine: str, staging: str, retention: Retention | None = None):
        self.spark = spark
        self.engine = engine
        self.staging = staging
        self.retention = retention or Retention()
        self.rs = DeltaRs(retention=self.retention)
        self._ensured: set[str] = set()   # native tables created or brought up to date by this instance

    # -- locations: a path, or (native only) a catalog table name -----------------------------------
    @staticmethod
    def is_path(location: str) -> bool:
        return "/" in location or location.startswith(".")

    def _native_table(self, location: str):
        from delta.tables import DeltaTable
        if self.is_path(location):
            return DeltaTable.forPath(self.spark, location)
        return DeltaTable.forName(self.spark, location)

    def exists(self, location: str) -> bool:
        if self.engine == NATIVE:
            from delta.tables import DeltaTable
            if self.is_path(location):
                return DeltaTable.isDeltaTable(self.spark, location)
            return self.spark.catalog.tableExists(location)
        return self.rs.exists(location)

    def version(self, location: str) -> int | None:
        if not self.exists(location):
            return None
        if self.engine == NATIVE:
            return self._native_table(location).history(1).select("version").first()[0]
        return self.rs.version(location)

    def read(self, location: str, schema: pa.Schema | None = None) -> DataFrame:
        """The current version of a table; an empty frame of `schema` when it does not exist yet."""
        if not self.exists(location):
            if schema is None:
                raise FileNotFoundError(f"no Delta table at {location}")
            return self.spark.createDataFrame([], spark_schema(schema))
        if self.engine == NATIVE:
            reader = self.spark.read.format("delta")
            return reader.load(location) if self.is_path(location) else reader.table(location)
        files = self.rs.files(location)
        if not files:
            return self.spark.createDataFrame([], spark_schema(self.rs.arrow_schema(location)))
        return self.spark.read.parquet(*files)

    # -- writes ---------------------------------------------------------------------------------------
    def _save(self, writer, location: str) -> None:
        if self.is_path(location):
            writer.save(location)
        else:
            writer.saveAsTable(location)

    def _staged(self, df: DataFrame, name: str, commit) -> None:
        """Executors write df as Parquet under staging/name; commit(files) lands it; the stage is removed."""
        stage = os.path.join(self.staging, name)
        df.write.mode("overwrite").parquet(stage)
        commit(sorted(glob.glob(os.path.join(stage, "*.parquet"))))
        shutil.rmtree(stage, ignore_errors=True)

    def append(self, location: str, rows: DataFrame, schema: pa.Schema, name: str) -> None:
        """Rows of notes that no table holds yet: executors write the files, one commit adds them."""
        rows = conform(rows, schema)
        if self.engine == NATIVE:
            self._ensure_native(location, schema)
            self._save(rows.write.format("delta").mode("append"), location)
            return
        self._staged(rows, name, lambda files: self.rs.commit_files(location, schema, files))

    def replace_notes(self, location: str, rows: DataFrame, note_ids: DataFrame, schema: pa.Schema, name: str) -> None:
        """Replace every row of the notes in `note_ids` by `rows`, in one commit."""
        markers = note_ids.select("note_id").distinct()
        for f in spark_schema(schema).fields:
            if f.name != "note_id":
                markers = markers.withColumn(f.name, F.lit(None).cast(f.dataType))
        source = (conform(rows, schema).withColumn(MARKER, F.lit(False))
                  .unionByName(conform(markers, schema).withColumn(MARKER, F.lit(True))))
        if self.engine == NATIVE:
            self._ensure_native(location, schema)
            low, high, nulls = markers.agg(F.min("note_id"), F.max("note_id"),
                                           F.count_if(F.col("note_id").isNull())).first()
            (self._native_table(location).alias("t")
             .merge(source.alias("s"), replace_predicate(None if low is None else (low, high), null_ids=nulls > 0))
             .whenMatchedDelete()
             .whenNotMatchedInsert(condition=f"NOT s.{MARKER}", values={c: f"s.{c}" for c in schema.names})
             .execute())
            return
        self._staged(source, name, lambda files: self.rs.replace_notes(location, schema, files))

    def _sql_name(self, location: str) -> str:
        return f"delta.`{qualified(location)}`" if self.is_path(location) else location

    def _ensure_native(self, location: str, schema: pa.Schema) -> None:
        """Create the table with its comments and properties, or bring an existing one's properties up to date."""
        from delta.tables import DeltaTable
        if location in self._ensured:   # once per run: each check is a Spark job over the log
            return
        self._ensured.add(location)
        kind = table_kind(schema)
        props = table_properties(kind, self.retention)
        if self.exists(location):
            current = self._native_table(location).detail().select("properties").first()[0] or {}
            changed = {k: v for k, v in props.items() if current.get(k) != v}
            if changed:
                settings = ", ".join(f"'{k}' = '{v}'" for k, v in changed.items())
                self.spark.sql(f"ALTER TABLE {self._sql_name(location)} SET TBLPROPERTIES ({settings})")
            return
        columns = StructType([StructField(f.name, f.dataType, f.nullable,
                                          {"comment": COLUMN_COMMENTS[f.name]} if f.name in COLUMN_COMMENTS else {})
                              for f in spark_schema(schema).fields])
        builder = DeltaTable.createIfNotExists(self.spark).addColumns(columns).comment(TABLE_COMMENTS[kind])
        builder = (builder.location(qualified(location)) if self.is_path(location)
                   else builder.tableName(location))
        for key, value in props.items():
            builder = builder.property(key, value)
        builder.execute()

    def upsert_run(self, location: str, row: pa.Table) -> None:
        """deid_runs: one row per run, inserted at start and updated at the end (keyed by run_id)."""
        if self.engine == NATIVE:
            self._ensure_native(location, row.schema)
            source = self.spark.createDataFrame(row.to_pylist(), spark_schema(row.schema))
            # a runs table written before a column was added gains it
            self.spark.conf.set("spark.databricks.delta.schema.autoMerge.enabled", "true")
            (self._native_table(location).alias("t").merge(source.alias("s"), "t.run_id = s.run_id")
             .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
            return
        self.rs.upsert(location, row, key="run_id")

    def compact(self, location: str, target_bytes: int, zorder_by: str | None = "note_id") -> dict:
        """OPTIMIZE-style compaction of small files into files of about `target_bytes`, on either engine; on the
        native engine Z-ordered by `zorder_by` when given."""
        if not self.exists(location):
            return {"removed": 0, "added": 0}
        if self.engine == NATIVE:
            # Z-ordered by note_id: each file then holds a narrow note_id range, which the MERGE of a day's notes
            # skips by (liquid clustering would need a table feature delta-rs cannot write).
            self.spark.conf.set("spark.databricks.delta.optimize.maxFileSize", str(target_bytes))
            optimize = self._native_table(location).optimize()
            done = optimize.executeZOrderBy(zorder_by) if zorder_by else optimize.executeCompaction()
            metrics = done.select("metrics").first()["metrics"]
            return {"removed": metrics["numFilesRemoved"], "added": metrics["numFilesAdded"]}
        return self.rs.compact(location, target_bytes)

    def vacuum(self, location: str) -> None:
        """Delete the files of versions older than the table's delta.deletedFileRetentionDuration (superseded
        masked text among them); time travel to those versions fails afterwards."""
        if not self.exists(location):
            return
        if self.engine == NATIVE:
            self._native_table(location).vacuum()   # retention: the table's own property
            return
        self.rs.vacuum(location)

    def move_version(self, location: str, old: str, new: str) -> None:
        if not self.exists(location):
            return
        if self.engine == NATIVE:
            self._native_table(location).update(F.col("pipeline_version") == old, {"pipeline_version": F.lit(new)})
            return
        self.rs.move_version(location, old, new)
