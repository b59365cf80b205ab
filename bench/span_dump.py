"""Every span the pipeline finds on the synthetic test set and the real-text corpora, one line each, so that a
refactoring that must not change behaviour can be checked span by span (`diff` two dumps: no line may differ).

    deid synth --n 2000 --seed 20251127 --out /tmp/vocab-eval
    python bench/span_dump.py --gold /tmp/vocab-eval/notes.jsonl --real /tmp/real --out before.tsv

--path note dumps the text spans of each note as `deid eval` and the job find them (Pipeline.process_notes, a NOTE
row without a title) instead of what Pipeline.analyze finds in the bare text.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _bare_texts(notes: list[dict], pipeline, batch: int):
    for i in range(0, len(notes), batch):
        chunk = notes[i:i + batch]
        yield from zip(chunk, pipeline.analyze_many([n["text"] for n in chunk]), strict=True)


def dump_lines(corpus: str, notes: list[dict], pipeline, path: str = "analyze", batch: int = 64):
    """corpus, note id, start, end, type, tier, detector, score and rule of every span, in the order found."""
    from deid.evaluate import analyzed
    found = _bare_texts(notes, pipeline, batch) if path == "analyze" else analyzed(notes, pipeline, batch)
    for note, spans in found:
        for s in spans:
            fields = (corpus, note["id"], s.start, s.end, s.entity_type.value, s.tier, s.detector, f"{s.score:.4f}",
                      s.explanation)
            yield "\t".join(map(str, fields)) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gold", help="a gold JSONL (deid synth's notes.jsonl)")
    ap.add_argument("--real", help="the real-text folder deid eval-real reads")
    ap.add_argument("--corpus", action="append", help="only these real-text corpora")
    ap.add_argument("--path", choices=["analyze", "note"], default="analyze")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    from deid.pipeline import Pipeline
    pipeline = Pipeline()
    corpora = {}
    if args.gold:
        with open(args.gold, encoding="utf-8") as f:
            corpora["synthetic"] = [json.loads(line) for line in f if line.strip()]
    if args.real:
        from deid.corpora import load_corpora
        corpora.update(load_corpora(Path(args.real), args.corpus))
    with open(args.out, "w", encoding="utf-8") as out:
        for corpus, notes in corpora.items():
            n = sum(1 for _ in map(out.write, dump_lines(corpus, notes, pipeline, args.path)))
            print(f"{corpus}: {len(notes)} notes, {n} spans", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
