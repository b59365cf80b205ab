"""The whole pipeline's NAME figures on CLUENER train sentences, by overlap, with each NER model, and what it misses
and wrongly finds (one line each, with a little context), to tune the name detector on.

    python bench/name_eval.py --data /tmp/real                  # dev: sentences 2,001-3,000 (tune here)
    python bench/name_eval.py --data /tmp/real --split final    # held back: sentences 1-2,000 (report only)
    python bench/name_eval.py --data /tmp/real --stages         # where the pipeline gains and loses (dev)

Recall: gold names overlapped by a NAME span; precision: NAME spans overlapping a gold name. The same figures as
`deid eval-real`'s cluener_train row and the trainer's (deid/nertrain.py: FINAL, DEV), on those sentences only.
`unlabelled_persons` counts the false positives that are a surname with a title or 某 (李先生, 杨某): persons
CLUENER leaves unlabelled, which a de-identifier masks.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

SPLITS = {"final": range(0, 2000), "dev": range(2000, 3000)}


def _overlaps(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def name_figures(notes: list[dict], pipeline) -> tuple[dict, list[tuple[str, str, str]]]:
    """({recall, precision, gold, found, unlabelled_persons}, [(MISS|FP, name, context)]) of the pipeline's NAME
    spans on gold notes."""
    from deid.evaluate import analyzed
    from deid.resources import Resources
    titles = tuple(Resources.packaged().load("lexicons/person_context.tsv").words("title")) + ("某",)
    gold_hit = found_hit = n_gold = n_found = 0
    errors = []
    for note, spans in analyzed(notes, pipeline):
        text = note["text"]
        gold = [(g["start"], g["end"]) for g in note["spans"]]
        found = [(s.start, s.end) for s in spans if s.entity_type.value == "NAME"]
        n_gold, n_found = n_gold + len(gold), n_found + len(found)
        for kind, own, other in (("MISS", gold, found), ("FP", found, gold)):
            for span in own:
                if any(_overlaps(span, o) for o in other):
                    if kind == "MISS":
                        gold_hit += 1
                    else:
                        found_hit += 1
                else:
                    s, e = span
                    errors.append((kind, text[s:e], f"{text[max(0, s - 10):s]}[{text[s:e]}]{text[e:e + 10]}"))
    figures = {"recall": round(gold_hit / max(n_gold, 1), 4), "precision": round(found_hit / max(n_found, 1), 4),
               "gold": n_gold, "found": n_found,
               "unlabelled_persons": sum(kind == "FP" and name.endswith(titles) for kind, name, _ in errors)}
    return figures, errors


def _recall_precision(golds: list[list[tuple]], founds: list[list[tuple]]) -> str:
    pairs = list(zip(golds, founds, strict=True))
    hit_gold = sum(any(_overlaps(g, f) for f in found) for gold, found in pairs for g in gold)
    hit_found = sum(any(_overlaps(f, g) for g in gold) for gold, found in pairs for f in found)
    n_gold, n_found = sum(map(len, golds)), sum(map(len, founds))
    return f"{hit_gold / max(n_gold, 1):.3f} / {hit_found / max(n_found, 1):.3f} ({n_found} found)"


def stage_figures(notes: list[dict], model: str) -> dict[str, str]:
    """Recall / precision of each stage between the NER model and the pipeline's output: the model's PER tokens on
    every clause and on the clauses the gate passes, the name detector's spans (those the model's tokens back, and
    all: the cue, role, title, X某 and repeat rules add the rest), and the merged NAME spans."""
    from deid.config import load_config
    from deid.pipeline import Pipeline
    golds = [[(g["start"], g["end"]) for g in n["spans"]] for n in notes]
    texts = [n["text"] for n in notes]
    out = {}
    for gate in (False, True):
        pipeline = Pipeline(load_config(ner={"model": model, "gate": gate}))
        tokens, spans = [], []
        for i in range(0, len(texts), 64):
            _views, docs, found = pipeline.detect(texts[i:i + 64])
            tokens += [d.ner_of("PER") for d in docs]
            spans += [[s for s in f if s.entity_type.value == "NAME"] for f in found]
        gated = "gated" if gate else "every clause"
        out[f"model PER tokens, {gated}"] = _recall_precision(golds, tokens)
        if gate:
            backed = [[(s.start, s.end) for s in f if any(_overlaps((s.start, s.end), t) for t in ts)]
                      for f, ts in zip(spans, tokens, strict=True)]
            out["name detector, spans a model token backs"] = _recall_precision(golds, backed)
            out["name detector, all spans"] = _recall_precision(golds, [[(s.start, s.end) for s in f] for f in spans])
            from deid.evaluate import analyzed
            merged = [[(s.start, s.end) for s in found if s.entity_type.value == "NAME"]
                      for _note, found in analyzed(notes, pipeline)]
            out["whole pipeline (merged)"] = _recall_precision(golds, merged)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the real-text folder deid eval-real reads")
    ap.add_argument("--split", choices=sorted(SPLITS), default="dev")
    ap.add_argument("--models", nargs="+", default=["lac", "trained"])
    ap.add_argument("--errors", action="store_true", help="list every miss and false positive")
    ap.add_argument("--stages", action="store_true", help="recall / precision of each stage (model, gate, rules)")
    args = ap.parse_args(argv)
    from deid import corpora
    from deid.config import load_config
    from deid.pipeline import Pipeline
    raw = corpora.read_source("cluener_train", args.data)
    if raw is None:
        print(f"no CLUENER train set under {args.data}", file=sys.stderr)
        return 2
    indices = SPLITS[args.split]
    notes = corpora.cluener_notes(raw.decode("utf-8"), "cluener_train")[indices.start:indices.stop]
    for model in args.models:
        if args.stages:
            for stage, figures in stage_figures(notes, model).items():
                print(f"{model} ({args.split}) {stage}: {figures}", flush=True)
            continue
        figures, errors = name_figures(notes, Pipeline(load_config(ner={"model": model})))
        print(f"{model} ({args.split}, {len(notes)} sentences): {figures}", flush=True)
        if args.errors:
            for kind, _name, context in sorted(errors):
                print(f"  {kind}\t{context}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
