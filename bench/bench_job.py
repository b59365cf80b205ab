"""Spark job overhead: spark-submit jobs/deid_notes.py on local[2] against the plain Python pipeline on the
same notes with the same two cores (two worker processes), in one run, on each Delta engine: the first load, then
day 2 (1% of the notes changed). Also the peak memory of the job's whole process tree (spark-submit, the JVM, the
Python workers), sampled every 0.2 s.

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
    rows = [("plain Python pipeline, 2 processes", base, None)]
    changed = [{**n, "text": n["text"] + "补充：病情稳定。"} if i % 100 == 0 else n for i, n in enumerate(notes)]
    first_ratio = {}
    for engine in ("delta-rs", "native"):
        write_note_delta(notes, work / "note")
        out = work / f"out-{engine}"
        shutil.rmtree(out, ignore_errors=True)
        common = ["--config", str(ROOT / "conf" / "local.yaml"), "--input", str(work / "note"), "--output", str(out)]
        job = spark_submit(common, engine=engine)
        print(f"the job's stage lines, {engine}, first load:")
        for line in job.log.splitlines():
            if "deid.job: stage" in line:
                print("  " + line.split("deid.job: ", 1)[1])
        write_note_delta(changed, work / "note")
        day2 = spark_submit(common, engine=engine)
        first_ratio[engine] = job.seconds / base
        rows += [(f"{engine}: detect stage (local[2])", job.stages.get("detect", float("nan")), None),
                 (f"{engine}: first load end to end", job.seconds, job.peak_mib["tree"]),
                 (f"{engine}: day 2, {len(notes) // 100} changed notes", day2.seconds, day2.peak_mib["tree"])]
    print(f"{'':44}{'seconds':>10}{'notes/s':>10}{'vs plain':>10}{'peak MiB':>10}")
    for name, secs, peak in rows:
        print(f"{name:44}{secs:>10.1f}{len(texts) / secs:>10.1f}{secs / base:>9.2f}x"
              f"{'' if peak is None else f'{peak:>10.0f}'}")
    print(f"native / delta-rs, first load: {first_ratio['native'] / first_ratio['delta-rs']:.2f}x")
    ratio = first_ratio["delta-rs"]
    print(f"target: end-to-end overhead <= 1.5x on local[2] (delta-rs): {'met' if ratio <= 1.5 else 'NOT met'} "
          f"({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
