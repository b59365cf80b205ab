"""Spark job overhead: spark-submit jobs/deid_notes.py on local[2] against the plain Python pipeline on the
same notes with the same two cores (two worker processes), in one run. Also the peak memory of the job's
whole process tree (spark-submit, the JVM, the Python workers), sampled every 0.2 s.

    python bench/bench_job.py --n 20000
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from harness import ROOT, baseline, spark_submit


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--work", default=str(ROOT / "data" / "bench"))
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from deid.synth.generator import generate
    from deid.synth.omop import write_note_delta

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    notes = generate(args.n, args.seed)
    write_note_delta(notes, work / "note")
    texts = [n["text"] for n in notes]
    chars = sum(map(len, texts))
    print(f"Job benchmark: {len(texts)} notes, mean {chars / len(texts):.0f} characters, {os.cpu_count()} cores")

    base = baseline(texts, 2)
    job = spark_submit(["--config", str(ROOT / "conf" / "local.yaml"), "--input", str(work / "note"),
                        "--output", str(work / "out"), "--full-refresh"])
    job_total, detect, peak = job.seconds, job.stages.get("detect", float("nan")), job.peak_mib["tree"]
    print("the job's stage lines:")
    for line in job.log.splitlines():
        if "deid.job: stage" in line:
            print("  " + line.split("deid.job: ", 1)[1])
    rows = [("plain Python pipeline, 2 processes", base), ("Spark job detect stage (local[2])", detect),
            ("Spark job end to end (spark-submit)", job_total)]
    print(f"{'':40}{'seconds':>10}{'notes/s':>10}{'vs plain':>10}")
    for name, secs in rows:
        print(f"{name:40}{secs:>10.1f}{len(texts) / secs:>10.1f}{secs / base:>9.2f}x")
    print(f"peak RSS of the job's process tree (JVM + Python workers): {peak:.0f} MiB")
    ratio = job_total / base
    print(f"target: end-to-end overhead <= 1.5x on local[2]: {'met' if ratio <= 1.5 else 'NOT met'} ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
