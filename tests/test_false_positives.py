"""The false-positive ceiling: the detectors on the labelled clinical mentions of real EMR notes (cEHRNER train, in
the clauses they stand in: tests/data/cehrner_train_mentions.tsv) may yield at most 1 certain false positive (a span
of a non-clinical type over a mention) per 1,000 notes. A rule that starts reading drugs, anatomy or signs as names,
places or institutions fails here."""
import importlib.util
import os
from pathlib import Path

import pytest

from deid.evaluate import LABELS_OF_THE_SAME_KIND, NON_CLINICAL_TYPES

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "cehrner_train_mentions.tsv"
CEILING_PER_1000_NOTES = 1.0


def _fixture():
    """(notes in the source, [(note, [(start, end, label)], text)]) from the fixture file."""
    notes, rows = None, []
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    for line in lines:
        if line.startswith("# notes:"):
            notes = int(line.split(":", 1)[1])
        if line.startswith("#") or line.startswith("note\t"):
            continue
        number, mentions, text = line.split("\t", 2)
        parsed = []
        for item in filter(None, mentions.split(",")):
            where, label = item.split(":")
            start, end = where.split("-")
            parsed.append((int(start), int(end), label))
        rows.append((int(number), parsed, text))
    return notes, rows


def certain_false_positives(pipeline, rows, batch=128):
    found = []
    for i in range(0, len(rows), batch):
        chunk = rows[i:i + batch]
        for (number, mentions, text), spans in zip(chunk, pipeline.analyze_many([t for _, _, t in chunk]), strict=True):
            for s in spans:
                t = s.entity_type.value
                same_kind = LABELS_OF_THE_SAME_KIND.get(t, ())
                if t in NON_CLINICAL_TYPES and any(a < s.end and s.start < b and label not in same_kind
                                                   for a, b, label in mentions):
                    found.append((number, t, s.text, text[max(0, s.start - 8):s.end + 8]))
    return found


def test_the_fixture_holds_every_note_and_mention():
    notes, rows = _fixture()
    assert notes == 914 and len({n for n, _, _ in rows}) == notes
    assert sum(len(m) for _, m, _ in rows) == 16136
    assert all(0 <= a < b <= len(text) for _, mentions, text in rows for a, b, _ in mentions)


def test_certain_false_positives_on_real_emr_mentions_stay_under_the_ceiling(pipeline):
    notes, rows = _fixture()
    found = certain_false_positives(pipeline, rows)
    per_1000 = 1000 * len(found) / notes
    assert per_1000 <= CEILING_PER_1000_NOTES, (
        f"{per_1000:.1f} certain false positives per 1,000 notes (ceiling {CEILING_PER_1000_NOTES}):\n"
        + "\n".join(f"  note {n}: {t} {x!r} in …{ctx}…" for n, t, x, ctx in found[:30]))


def test_the_fixture_is_what_the_source_makes():
    """Where the corpus is at hand ($DEID_REAL_DATA, as deid eval-real reads it), the fixture is rebuilt from it."""
    root = os.environ.get("DEID_REAL_DATA")
    if not root:
        pytest.skip("DEID_REAL_DATA is not set (the fixture is checked against the source where it is)")
    spec = importlib.util.spec_from_file_location("build_cehrner_mentions", DATA / "build_cehrner_mentions.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    notes = builder.source_notes(Path(root))
    if notes is None:
        pytest.skip(f"cEHRNER train is not under {root}")
    assert builder.render(notes) == FIXTURE.read_text(encoding="utf-8")
