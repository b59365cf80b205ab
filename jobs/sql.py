"""spark-submit jobs/sql.py [--root data] [--engine auto] "SELECT ... FROM note_deid_l3 ..."

Registers every deid output table under --root as a Spark SQL view, read through the same Delta reader as the
job (native Delta when the session has it, the Delta log's file list through delta-rs otherwise), and prints
the query's result.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TABLES = ["note_phi_spans", "note_deid_l1", "note_deid_l2", "note_deid_l3", "deid_quarantine", "deid_runs"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("query")
    ap.add_argument("--root", default="data")
    ap.add_argument("--engine", default="auto", choices=["auto", "native", "delta-rs"])
    ap.add_argument("--rows", type=int, default=20)
    args = ap.parse_args(argv)
    from deid.jobconfig import load_job_config
    from deid.resources import data_dir
    from jobs.deid_notes import build_spark
    from udfs.delta import SparkDelta, choose_engine
    cfg = load_job_config(data_dir("conf") / "local.yaml")   # local[2] on loopback, quiet logs, the Delta jars
    cfg.app_name, cfg.engine = "deid-sql", args.engine
    spark = build_spark(cfg)
    spark.sparkContext.setLogLevel("WARN")
    io = SparkDelta(spark, choose_engine(spark, args.engine), os.path.join(args.root, "_staging"))
    for name in TABLES:
        location = os.path.join(args.root, name)
        if io.exists(location):
            io.read(location).createOrReplaceTempView(name)
    spark.sql(args.query).show(args.rows, truncate=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
