"""What the job benchmarks share: running spark-submit with its memory sampled, reading the job's stage lines,
and the plain Python pipeline on the same notes with the same cores (the baseline the job is compared with)."""
from __future__ import annotations

import multiprocessing as mp
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
STAGE_LINE = re.compile(r"deid\.job: stage (\S+)\s+(\d+) notes\s+([\d.]+) s")
_PIPELINE = None


def _init():
    global _PIPELINE
    from deid.pipeline import Pipeline
    _PIPELINE = Pipeline()


def _work(texts):
    return sum(len(r.spans) for r in _PIPELINE.process_many(texts))


def baseline(texts, procs: int, batch: int = 64) -> float:
    """Seconds for the plain pipeline over `texts` in `procs` worker processes (warmed up first)."""
    chunks = [texts[i:i + batch] for i in range(0, len(texts), batch)]
    with mp.get_context("spawn").Pool(procs, initializer=_init) as pool:
        pool.map(_work, chunks[:procs])          # warm: every worker has built its pipeline
        t0 = time.perf_counter()
        pool.map(_work, chunks, chunksize=4)
        return time.perf_counter() - t0


def _role(proc: psutil.Process) -> str:
    """jvm (Spark's driver and, in local mode, its executors), driver (the Python process running the job: it
    makes the delta-rs commits), workers (Python UDF workers), other."""
    try:   # a process can end between listing and reading it
        cmd, name = " ".join(proc.cmdline()), proc.name()
    except psutil.Error:
        return "other"
    if name == "java" or "/java " in cmd:
        return "jvm"
    if "pyspark.daemon" in cmd or "pyspark.worker" in cmd:
        return "workers"
    if "deid_notes.py" in cmd:
        return "driver"
    return "other"


@dataclass
class MemorySampler:
    """Peak RSS of a process tree, in total and per role, sampled every `every` seconds."""
    root: psutil.Process
    every: float = 0.2
    peak: dict = field(default_factory=lambda: {"tree": 0, "jvm": 0, "driver": 0, "workers": 0})

    def __post_init__(self):
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._done.is_set():
            now = {"tree": 0, "jvm": 0, "driver": 0, "workers": 0, "other": 0}
            for p in [self.root, *self._children()]:
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                role = _role(p)   # each time: spark-submit's shell becomes the JVM (exec) under the same pid
                now["tree"] += rss
                now[role] += rss
            for k in self.peak:
                self.peak[k] = max(self.peak[k], now[k])
            time.sleep(self.every)

    def _children(self):
        try:
            return self.root.children(recursive=True)
        except psutil.Error:
            return []

    def stop(self) -> dict:
        self._done.set()
        self._thread.join()
        return {k: v / 2**20 for k, v in self.peak.items()}


@dataclass
class JobRun:
    seconds: float
    peak_mib: dict
    stages: dict        # stage name -> seconds (from the job's "stage" log lines)
    log: str


DELTA_JARS = sorted((ROOT / "build" / "delta-jars").glob("*.jar"))


def spark_submit(args: list[str], env: dict | None = None, engine: str = "delta-rs") -> JobRun:
    """spark-submit jobs/deid_notes.py with `args` on one Delta engine (native: the jars `make install` fetched, on
    --jars as the Makefile gives them); fails loudly when the job fails."""
    env = {**os.environ, **(env or {}), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "SPARK_LOCAL_IP": "127.0.0.1"}
    if engine == "native" and not DELTA_JARS:
        raise SystemExit("no Delta Lake jars in build/delta-jars: run make install (it needs mvn)")
    jars = ["--jars", ",".join(map(str, DELTA_JARS))] if engine == "native" else []
    cmd = ["spark-submit", "--driver-java-options", f"-Dlog4j2.configurationFile=file:{ROOT}/conf/log4j2.properties",
           *jars, str(ROOT / "jobs" / "deid_notes.py"), *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = MemorySampler(psutil.Process(proc.pid))
    out, _ = proc.communicate()
    peak = sampler.stop()
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        print(out[-4000:], file=sys.stderr)
        raise SystemExit(f"the job failed: {' '.join(args)}")
    stages = {}
    for name, _, secs in STAGE_LINE.findall(out):
        stages[name] = stages.get(name, 0.0) + float(secs)
    return JobRun(elapsed, peak, stages, out)
