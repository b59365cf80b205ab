"""How large a table the delta-rs engine's driver-side MERGE handles: one process per size builds a masked-notes
table of N rows (the bench_scale input notes, reused with fresh note_ids), then replaces 0.5% of its notes,
drawn from the whole table (every file is touched: copy-on-write's worst case), and adds 1% new notes, through
the job's own MERGE (deid.io.DeltaRs.replace_notes). Prints seconds and the process's peak RSS per size, and the
largest table that fits a memory budget by a straight-line fit.

    python bench/bench_merge.py --sizes 400000,1000000,2000000 --notes data/bench-scale/inputs/note-400000-4242
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROWS_PER_FILE = 25000   # the job's notes_per_task: one file per task


def masked_rows(texts: list[str], start: int, n: int):
    """n rows of the masked-table schema with note_ids start.., texts cycled from `texts`."""
    import pyarrow as pa

    from deid import io as dio
    ids = list(range(start, start + n))
    cols = {}
    for f in dio.MASKED:
        if f.name == "note_id":
            cols[f.name] = pa.array(ids, pa.int64())
        elif f.name == "note_text":
            cols[f.name] = pa.array([f"{i}:{texts[i % len(texts)]}" for i in ids], pa.string())
        elif f.name in ("note_digest", "run_id", "pipeline_version", "note_title"):
            cols[f.name] = pa.array([f"{f.name}-{i}" for i in ids], pa.string())
        else:
            cols[f.name] = pa.nulls(n, f.type)
    return pa.table(cols, schema=dio.MASKED)


def build(size: int, notes: str, work: Path) -> None:
    """The target table (files of ROWS_PER_FILE rows in note_id order, as the job writes them) and the staged
    MERGE source: the changed and new notes' rows plus one marker row per note."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import write_deltalake

    from deid import io as dio
    from deid.query import table
    texts = table(notes, columns=["note_text"]).column("note_text").to_pylist()[:50000]
    for start in range(0, size, ROWS_PER_FILE):
        write_deltalake(str(work / "masked"), masked_rows(texts, start, min(ROWS_PER_FILE, size - start)),
                        mode="append")
    rng = random.Random(size)
    changed = [masked_rows(texts, i, 1) for i in sorted(rng.sample(range(size), size // 200))]
    rows = pa.concat_tables([*changed, masked_rows(texts, size, size // 100)])
    schema = dio.with_marker(dio.MASKED)
    markers = pa.table({c: (rows.column("note_id") if c == "note_id" else pa.nulls(rows.num_rows, schema.field(c).type))
                        for c in dio.MASKED.names}, schema=dio.MASKED)
    source = pa.concat_tables([rows.append_column(dio.MARKER, pa.array([False] * rows.num_rows)),
                               markers.append_column(dio.MARKER, pa.array([True] * rows.num_rows))])
    pq.write_table(source.cast(schema), work / "source.parquet")


def merge(work: Path) -> dict:
    """The job's MERGE on the table `build` made, in a process of its own (its peak RSS is the MERGE's)."""
    from deid import io as dio
    t0 = time.perf_counter()
    metrics = dio.DeltaRs().replace_notes(str(work / "masked"), dio.MASKED, [str(work / "source.parquet")])
    return {"seconds": round(time.perf_counter() - t0, 1),
            "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "files_removed": metrics.get("num_target_files_removed"),
            "files_added": metrics.get("num_target_files_added")}


def child(*argv: str) -> str:
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{' '.join(argv)} failed (exit {out.returncode})")
    return out.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="400000,1000000,2000000")
    ap.add_argument("--notes", default=str(ROOT / "data" / "bench-scale" / "inputs" / "note-400000-4242"))
    ap.add_argument("--budget-gib", type=float, default=24.0)
    ap.add_argument("--build", type=int, help=argparse.SUPPRESS)    # child processes
    ap.add_argument("--merge", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.build:
        build(args.build, args.notes, Path(args.work))
        return 0
    if args.merge:
        print(json.dumps(merge(Path(args.work))))
        return 0
    results = []
    print(f"{'rows':>9} {'table MiB':>10} {'merge s':>8} {'peak MiB':>9} {'files rewritten':>16}")
    for size in [int(s) for s in args.sizes.split(",")]:
        work = Path(tempfile.mkdtemp(prefix="deid-merge-"))
        try:
            child("--build", str(size), "--notes", args.notes, "--work", str(work))
            mib = sum(f.stat().st_size for f in (work / "masked").glob("*.parquet")) / 2**20
            r = {"rows": size, "table_mib": round(mib), **json.loads(child("--merge", "--work", str(work)))}
        finally:
            shutil.rmtree(work, ignore_errors=True)
        results.append(r)
        print(f"{r['rows']:>9} {r['table_mib']:>10} {r['seconds']:>8} {r['peak_mib']:>9} "
              f"{r['files_removed']:>16}", flush=True)
    if len(results) >= 2:
        (x0, y0), (x1, y1) = [(r["rows"], r["peak_mib"]) for r in (results[0], results[-1])]
        slope = (y1 - y0) / (x1 - x0)
        fits = (args.budget_gib * 1024 - (y0 - slope * x0)) / slope if slope > 0 else float("inf")
        print(f"peak grows {slope * 1e6:.0f} MiB per million rows; a {args.budget_gib:g} GiB driver holds a "
              f"whole-table MERGE up to about {fits / 1e6:.1f} million rows of this table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
