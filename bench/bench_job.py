"""Spark job overhead: spark-submit jobs/deid_notes.py on local[2] against the plain Python pipeline on the
same notes with the same two cores (two worker processes), in one run. Also the peak memory of the job's
whole process tree (spark-submit, the JVM, the Python workers), sampled every 0.2 s.

    python bench/bench_job.py --n 20000
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
_PIPELINE = None


def _init():
    global _PIPELINE
    from deid.pipeline import Pipeline
    _PIPELINE = Pipeline()


def _work(texts):
    return sum(len(r.spans) for r in _PIPELINE.process_many(texts))


def baseline(texts, procs: int, batch: int = 64) -> float:
    chunks = [texts[i:i + batch] for i in range(0, len(texts), batch)]
    with mp.get_context("spawn").Pool(procs, initializer=_init) as pool:
        pool.map(_work, chunks[:procs])          # warm: every worker has built its pipeline
        t0 = time.perf_counter()
        pool.map(_work, chunks, chunksize=4)
        return time.perf_counter() - t0


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_job(work: Path) -> tuple[float, float, int, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    cmd = ["spark-submit", "--driver-java-options", f"-Dlog4j2.configurationFile=file:{ROOT}/conf/log4j2.properties",
           str(ROOT / "jobs" / "deid_notes.py"), "--config", str(ROOT / "conf" / "local.yaml"),
           "--input", str(work / "note"), "--output", str(work / "out"), "--full-refresh"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps, peak, done = psutil.Process(proc.pid), 0, threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(ps))
            time.sleep(0.2)
    threading.Thread(target=sample, daemon=True).start()
    out, _ = proc.communicate()
    done.set()
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        print(out[-4000:], file=sys.stderr)
        raise SystemExit("the job failed")
    m = re.search(r"stage detect\s+(\d+) notes\s+([\d.]+) s", out)
    return elapsed, float(m.group(2)) if m else float("nan"), peak, out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--work", default=str(ROOT / "data" / "bench"))
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from deid.synth.generator import generate
    from deid.synth.omop import note_table, write_note_delta

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    notes = generate(args.n, args.seed)
    write_note_delta(notes, work / "note")
    texts = [n["text"] for n in notes]
    chars = sum(map(len, texts))
    print(f"Job benchmark: {len(texts)} notes, mean {chars / len(texts):.0f} characters, {os.cpu_count()} cores")

    base = baseline(texts, 2)
    job_total, detect, peak, out = run_job(work)
    print("the job's stage lines:")
    for line in out.splitlines():
        if "deid.job: stage" in line:
            print("  " + line.split("deid.job: ", 1)[1])
    rows = [("plain Python pipeline, 2 processes", base), ("Spark job detect stage (local[2])", detect),
            ("Spark job end to end (spark-submit)", job_total)]
    print(f"{'':40}{'seconds':>10}{'notes/s':>10}{'vs plain':>10}")
    for name, secs in rows:
        print(f"{name:40}{secs:>10.1f}{len(texts) / secs:>10.1f}{secs / base:>9.2f}x")
    print(f"peak RSS of the job's process tree (JVM + Python workers): {peak / 2**20:.0f} MiB")
    ratio = job_total / base
    print(f"target: end-to-end overhead <= 1.5x on local[2]: {'met' if ratio <= 1.5 else 'NOT met'} ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
