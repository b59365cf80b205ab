"""How the job's cost grows with the table: for each size, on local[2] and the delta-rs engine,

  1. first load into empty tables;
  2. a day-2 run after 1% new notes and 0.5% changed notes landed in NOTE (changed: recent notes);
  3. a no-op run (nothing changed);
  3b. another day 2, the changed notes drawn from the whole table (copy-on-write's worst case);
  4. one dictionary term added, then --reprocess affected;
  5. the plain Python pipeline on the step-1 notes with the same two cores (the baseline of step 1).

For each step: wall seconds, notes/s, seconds per 1,000 notes of the table, peak RSS of the whole process tree
and per role (JVM, Python driver, Python workers), files and bytes each table's commits added, and the job's
stage times. Writes OUT/scale.json (after every size, so a stopped run keeps what it measured), OUT/scale.png
and each run's log under OUT/logs/.

    python bench/bench_scale.py --sizes 20000,100000,400000 --out data/bench-scale
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

from harness import ROOT, baseline, spark_submit

TABLES = ["note_phi_spans", "note_deid_l1", "note_deid_l2", "note_deid_l3", "deid_quarantine", "deid_runs"]
STEPS = ["first_load", "day2", "noop", "day2_uniform", "affected", "plain"]
NEW_SHARE, CHANGED_SHARE = 0.01, 0.005
# Step 4's term: a hospital the dictionary lacks, written into a share of the notes by the day-2 edit below,
# so that --reprocess affected has real work and the rest must move version without a re-run.
ADDED_HOSPITAL = "滦平县中医院"


def log_version(table: Path) -> int:
    logs = sorted((table / "_delta_log").glob("*.json"))
    return int(logs[-1].stem) if logs else -1


def added_since(table: Path, version: int) -> dict:
    """Files and bytes the commits after `version` added, and how many files they removed (rewrites)."""
    added = nbytes = removed = 0
    for path in sorted((table / "_delta_log").glob("*.json")):
        if int(path.stem) <= version:
            continue
        for line in path.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                added += 1
                nbytes += action["add"]["size"]
            elif "remove" in action:
                removed += 1
    return {"files_added": added, "mib_added": round(nbytes / 2**20, 2), "files_removed": removed}


def table_files(table: Path) -> int:
    from deltalake import DeltaTable
    return len(DeltaTable(str(table)).file_uris())


def make_input(size: int, seed: int, cache: Path) -> Path:
    """The size's NOTE table, generated once and kept in `cache` (copied before a run changes it)."""
    from deid.synth.generator import generate
    from deid.synth.omop import write_note_delta
    path = cache / f"note-{size}-{seed}"
    if not (path / "_delta_log").exists():
        t0 = time.perf_counter()
        write_note_delta(generate(size, seed), path)
        print(f"  generated {size} notes in {time.perf_counter() - t0:.0f} s -> {path}", flush=True)
    return path


def day2_edit(note: Path, size: int, seed: int, changed: str) -> dict:
    """1% new notes (ids after the largest) and 0.5% changed notes, committed to NOTE as two delta-rs commits.
    changed="recent": the changed notes are drawn from the newest 10% of note_ids (amendments follow a note
    within days); "uniform": from the whole table (the worst case for copy-on-write). A quarter of the changed
    notes now name ADDED_HOSPITAL."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable, write_deltalake

    from deid.query import table as read_table
    from deid.synth.generator import generate
    from deid.synth.omop import note_table

    ids = read_table(str(note), columns=["note_id"]).column("note_id")
    top = pc.max(ids).as_py()
    new = generate(max(1, int(size * NEW_SHARE)), seed + len(changed))
    for i, n in enumerate(new):
        n["id"] = top + 1 + i
    write_deltalake(str(note), note_table(new), mode="append")

    rng = random.Random(f"{seed}-{changed}")
    pool = sorted(ids.to_pylist())
    if changed == "recent":
        pool = pool[-len(pool) // 10:]
    picked = rng.sample(pool, max(1, int(size * CHANGED_SHARE)))
    rows = read_table(str(note), filter=pc.field("note_id").isin(picked))
    texts = rows.column("note_text").to_pylist()
    edited = [t + (f"。患者转至{ADDED_HOSPITAL}继续治疗。" if i % 4 == 0 else "。复诊：病情稳定，继续原方案。")
              for i, t in enumerate(texts)]
    rows = rows.set_column(rows.schema.get_field_index("note_text"), "note_text", pa.array(edited, pa.string()))
    (DeltaTable(str(note)).merge(rows, predicate="t.note_id = s.note_id", source_alias="s", target_alias="t")
     .when_matched_update(updates={"note_text": "s.note_text"}).execute())
    return {"new": len(new), "changed": len(picked), "with_added_term": (len(picked) + 3) // 4}


def add_dictionary_term(resources: Path) -> None:
    path = resources / "dictionaries" / "hospitals.tsv"
    with path.open("a", encoding="utf-8") as f:
        f.write(f"{ADDED_HOSPITAL}\t河北\t\t\n")


def measure(size: int, args, cache: Path) -> dict:
    from deid.query import table as read_table
    work = Path(args.work) / str(size)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    note, out = work / "note", work / "out"
    shutil.copytree(make_input(size, args.seed, cache), note)
    resources = work / "resources"
    shutil.copytree(ROOT / "resources", resources)
    env = {"DEID_RESOURCES": str(resources)}
    base_args = ["--config", str(ROOT / "conf" / "local.yaml"), "--input", str(note), "--output", str(out)]
    texts = read_table(str(note), columns=["note_text"]).column("note_text").to_pylist()
    result = {"notes": size, "mean_chars": round(sum(map(len, texts)) / len(texts)), "steps": {}}

    def step(name: str, extra: list[str] = ()) -> None:
        before = {t: log_version(out / t) for t in TABLES}
        run = spark_submit([*base_args, *extra], env)
        (Path(args.out) / "logs" / f"{size}-{name}.log").write_text(run.log)
        writes = {t: added_since(out / t, before[t]) for t in TABLES if (out / t).exists()}
        result["steps"][name] = {"seconds": round(run.seconds, 1), "peak_mib": {k: round(v) for k, v in
                                                                               run.peak_mib.items()},
                                 "stages": {k: round(v, 1) for k, v in run.stages.items()}, "writes": writes}
        summary = [line for line in run.log.splitlines() if line.startswith("run ")]
        print(f"  {name:10} {run.seconds:8.1f} s  peak {run.peak_mib['tree']:6.0f} MiB  "
              f"{summary[-1] if summary else ''}", flush=True)

    step("first_load")
    result["day2_edit"] = day2_edit(note, size, args.seed, "recent")
    step("day2")
    step("noop")
    result["day2_uniform_edit"] = day2_edit(note, size, args.seed, "uniform")
    step("day2_uniform")
    add_dictionary_term(resources)
    step("affected", ["--reprocess", "affected"])
    result["table_files"] = {t: table_files(out / t) for t in TABLES if (out / t).exists()}

    earlier = {r["notes"]: r for r in json.loads(Path(args.plain_from).read_text())} if args.plain_from else {}
    if size in earlier:   # the plain pipeline's figure from an earlier run on the same notes (same pipeline code)
        t_plain = earlier[size]["plain_s"]
        result["plain_from"] = args.plain_from
    elif args.plain_sizes is not None and size not in args.plain_sizes:
        t_plain = None        # not measured at this size (the 1.3x target is set at 100,000 notes)
    else:
        t_plain = round(baseline(texts, 2), 1)
    result["steps"]["plain"] = {"seconds": t_plain}
    print(f"  {'plain':10} {'not run' if t_plain is None else f'{t_plain:8.1f} s'}", flush=True)

    secs = {s: result["steps"][s]["seconds"] for s in STEPS}
    result.update({f"{s}_s": secs[s] for s in STEPS if s != "first_load"})
    result["first_load_s"] = secs["first_load"]
    result["peak_rss_mib"] = max(v["peak_mib"]["tree"] for k, v in result["steps"].items() if k != "plain")
    result["stages"] = {s: result["steps"][s].get("stages", {}) for s in STEPS}
    result["s_per_1000"] = {s: None if secs[s] is None else round(secs[s] / size * 1000, 3) for s in STEPS}
    result["vs_first_load"] = {s: round(secs[s] / secs["first_load"], 4)
                               for s in ("day2", "noop", "day2_uniform", "affected")}
    result["first_load_vs_plain"] = None if t_plain is None else round(secs["first_load"] / t_plain, 3)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


def plot(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    sizes = [r["notes"] for r in results]
    for s, label in [("first_load", "first load"), ("plain", "plain pipeline (2 processes)"),
                     ("day2", "day 2 (1% new, 0.5% recent notes changed)"),
                     ("day2_uniform", "day 2 (1% new, 0.5% of all notes changed)"),
                     ("affected", "dictionary term, affected"),
                     ("noop", "no-op")]:
        points = [(r["notes"], r["s_per_1000"][s]) for r in results if r["s_per_1000"][s] is not None]
        ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("notes in the table")
    ax.set_ylabel("seconds per 1,000 notes of the table")
    ax.set_title("deid job on local[2], delta-rs engine")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def print_table(results: list[dict]) -> None:
    print(f"\n{'notes':>9} {'first load':>11} {'plain':>8} {'vs plain':>9} {'day 2':>8} {'noop':>7} "
          f"{'day 2 unif':>11} {'affected':>9} {'s/1k first':>11} {'peak MiB':>9}")
    for r in results:
        v = r["vs_first_load"]
        plain = "-" if r["plain_s"] is None else f"{r['plain_s']:.1f}s"
        ratio = "-" if r["first_load_vs_plain"] is None else f"{r['first_load_vs_plain']:.2f}x"
        print(f"{r['notes']:>9} {r['first_load_s']:>10.1f}s {plain:>8} {ratio:>9} "
              f"{r['day2_s']:>7.1f}s {r['noop_s']:>6.1f}s {r['day2_uniform_s']:>10.1f}s {r['affected_s']:>8.1f}s "
              f"{r['s_per_1000']['first_load']:>11.2f} "
              f"{r['peak_rss_mib']:>9}")
        print(f"{'':>9} of first load: day 2 {v['day2']:.1%}, no-op {v['noop']:.1%}, day 2 uniform "
              f"{v['day2_uniform']:.1%}, affected {v['affected']:.1%}")


def plain_cell(r: dict) -> str:
    if r["plain_s"] is None:
        return "not run | -"
    return f"{r['plain_s']:.1f} s ({r['s_per_1000']['plain']:.2f} s/1k) | {r['first_load_vs_plain']:.2f}x"


def step_cell(r: dict, step: str) -> str:
    return f"{r['steps'][step]['seconds']:.1f} s ({r['s_per_1000'][step]:.2f} s/1k; {r['vs_first_load'][step]:.1%})"


def markdown(results: list[dict]) -> str:
    """The README's table: seconds, seconds per 1,000 notes of the table, and the share of the first load."""
    head = ("| notes | first load | plain pipeline | first load / plain | day 2, recent changes | no-op "
            "| day 2, changes anywhere | dictionary term, affected | peak RSS: tree / JVM / driver / workers |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        peak = {k: max(s["peak_mib"][k] for s in r["steps"].values() if "peak_mib" in s)
                for k in ("tree", "jvm", "driver", "workers")}
        cell = {step: step_cell(r, step) for step in ("day2", "noop", "day2_uniform", "affected")}
        rows.append(f"| {r['notes']:,} | {r['first_load_s']:.1f} s ({r['s_per_1000']['first_load']:.2f} s/1k) "
                    f"| {plain_cell(r)} "
                    f"| {cell['day2']} | {cell['noop']} | {cell['day2_uniform']} | {cell['affected']} "
                    f"| {peak['tree']:,} / {peak['jvm']:,} / {peak['driver']:,} / {peak['workers']:,} MiB |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="20000,100000,400000")
    ap.add_argument("--out", default=str(ROOT / "data" / "bench-scale"))
    ap.add_argument("--work", default=str(ROOT / "data" / "bench-scale" / "work"))
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--keep", action="store_true", help="keep each size's tables")
    ap.add_argument("--report", metavar="SCALE_JSON", help="print the README table of a finished run and stop")
    ap.add_argument("--plain-from", metavar="SCALE_JSON",
                    help="take step 5 (the plain pipeline) from an earlier run's figures for the same sizes")
    ap.add_argument("--plain-sizes", type=lambda v: {int(x) for x in v.split(",")},
                    help="run step 5 only at these sizes (it takes as long as the first load); default: every size")
    args = ap.parse_args()
    if args.report:   # the table, and the plot again beside the JSON
        results = json.loads(Path(args.report).read_text())
        print(markdown(results))
        plot(results, Path(args.report).with_suffix(".png"))
        return 0
    sys.path.insert(0, str(ROOT))
    out = Path(args.out)
    cache = out / "inputs"
    cache.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    print(f"Scale benchmark: sizes {args.sizes}, {os.cpu_count()} cores, local[2], delta-rs engine", flush=True)
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        print(f"{size} notes", flush=True)
        results.append(measure(size, args, cache))
        (out / "scale.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
        plot(results, out / "scale.png")
    print_table(results)
    print(f"wrote {out / 'scale.json'} and {out / 'scale.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
