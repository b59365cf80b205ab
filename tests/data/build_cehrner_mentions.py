"""Build tests/data/cehrner_train_mentions.tsv: the labelled clinical mentions of cEHRNER train with the clauses
they stand in, the fixture of tests/test_false_positives.py (CI has no copy of the corpus).

    python tests/data/build_cehrner_mentions.py /path/to/real-data   # the folder `deid eval-real --data` reads

The source is read and checked (SHA-256) by deid.corpora, as `deid eval-real` reads it. Each note is cut at clause
marks (，。；, ;); every run of consecutive clauses that holds a labelled mention is kept, with the mentions' offsets
in it, and every other clause is left out. A mention that crosses a clause mark keeps the clauses on both sides.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

OUT = Path(__file__).with_name("cehrner_train_mentions.tsv")
_CLAUSE_END = re.compile(r"[，。；;,]")
LABELS = {"解剖部位": "anatomy", "疾病和诊断": "disease", "症状": "symptom", "药物": "drug", "实验室检验": "lab",
          "手术": "operation", "影像检查": "imaging"}
HEADER = """\
# The labelled clinical mentions of cEHRNER train (alibaba-research/ChineseBLUE, data/cEHRNER/train.json, SHA-256
# 6b7cf54ef45f4169e36eb05bfbb50673ab341f44d0d3d1c9d0a1de0d0c1ea648), each in the clauses it stands in: real
# de-identified EMR text, where any PHI span over a mention is a certain false positive (see deid/evaluate.py).
# Licence: ChineseBLUE is distributed under the Apache License 2.0 (its LICENSE; no NOTICE file, no other terms for
# cEHRNER in its README), the licence of this repository too (LICENSE). Changed from the source: each note cut to the
# runs of clauses (split at ，。；, ;) that hold a labelled mention, the rest of its text left out; labels in English.
# Made by tests/data/build_cehrner_mentions.py; read by tests/test_false_positives.py.
# Columns: note (line of train.json), mentions (start-end:label, offsets in the text column), text.
# notes: {notes}
"""


def fixture_rows(notes: list[dict]) -> list[tuple[int, list[tuple[int, int, str]], str]]:
    """(note number, mentions, text) of each run of clauses that holds a mention."""
    rows = []
    for number, note in enumerate(notes):
        text = note["text"]
        bounds = [0, *(m.end() for m in _CLAUSE_END.finditer(text)), len(text)]
        runs: list[list[int]] = []
        for a, b in zip(bounds, bounds[1:]):
            if a < b and any(a < m["end"] and m["start"] < b for m in note["clinical"]):
                if runs and runs[-1][1] == a:
                    runs[-1][1] = b
                else:
                    runs.append([a, b])
        for a, b in runs:
            mentions = [(m["start"] - a, m["end"] - a, LABELS.get(m["label"], m["label"]))
                        for m in note["clinical"] if a <= m["start"] and m["end"] <= b]
            rows.append((number, mentions, text[a:b]))
    return rows


def render(notes: list[dict]) -> str:
    lines = [HEADER.format(notes=len(notes)), "note\tmentions\ttext\n"]
    for number, mentions, text in fixture_rows(notes):
        lines.append(f"{number}\t{','.join(f'{s}-{e}:{label}' for s, e, label in mentions)}\t{text}\n")
    return "".join(lines)


def source_notes(root: Path) -> list[dict] | None:
    from deid.corpora import cehr_notes, read_source
    raw = read_source("cehr_train", root)
    return None if raw is None else cehr_notes(raw.decode("utf-8"), "cehr_train")


if __name__ == "__main__":
    notes = source_notes(Path(sys.argv[1]))
    if notes is None:
        sys.exit(f"cEHRNER train not found under {sys.argv[1]}")
    OUT.write_text(render(notes), encoding="utf-8")
    print(f"{OUT}: {len(notes)} notes")
