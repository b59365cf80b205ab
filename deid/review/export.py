"""From decisions to things a person can accept: a patch of the dictionaries (and of the name detector's cue words),
and gold JSONL for `deid eval`.

Only decisions on the note as it still is count: a decision whose note_digest differs from the note's current
digest is reported as stale and left out (its offsets may point at other text now). Every file written is readable
by its owner only: the patch and the edited dictionaries quote reviewed text, the gold holds whole notes.
"""
from __future__ import annotations

import difflib
import json
import os
import tempfile
import unicodedata
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deid.detectors.base import Document
from deid.detectors.contact import ContactDetector
from deid.detectors.hospital import hospital_forms
from deid.detectors.id_number import IdNumberDetector
from deid.resources import Resources, digest_bytes
from deid.review.stats import NOT_PHI, final_label, finished_notes, reviewed_spans
from deid.review.store import effective, outcomes
from deid.text import is_cjk

ALLOW_LIST = "dictionaries/allow_list.tsv"
# The words around a person (resources/lexicons/person_context.tsv): the two characters right before names that
# reviewers added, the same on notes of different reviewers, are proposed as cues (护工|王小明) for the name detector.
PERSON_CONTEXT = "lexicons/person_context.tsv"
CUE_WIDTH = 2
# Missed terms of these types become dictionary rows. Names, addresses, contacts and ID numbers belong to one
# patient: a list of them would itself be PHI and would not find the next patient, so they are only counted.
TERM_FILES = {"HOSPITAL": "dictionaries/hospitals.tsv", "STD": "dictionaries/std_terms.tsv",
              "PREGNANCY": "dictionaries/pregnancy_terms.tsv"}
# Every other type identifies someone: allow-listing one of its values unmasks it in every note, so the value must
# have been rejected by this many different reviewers on this many different notes (one reviewer, or one note
# read twice, is not enough).
INDEPENDENT_REJECTIONS = 2
# The decisions whose span text can become a dictionary line.
DICTIONARY_ACTIONS = ("reject", "retype", "add", "retier")
# Characters that would split, shift or hide a dictionary row: control characters (line breaks, tabs), format
# characters (zero-width, direction marks), line and paragraph separators, and lone surrogates.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs"}
# Detectors that recognise a value by its structure (an ID number's dates and check character, a phone number's
# shape, an e-mail address): whatever reviewers say, such a value is never allow-listed.
_STRUCTURAL = (IdNumberDetector(), ContactDetector())


@dataclass
class DictionaryEdits:
    allow: Counter = field(default_factory=Counter)        # (term, type) -> rejections
    add: dict = field(default_factory=dict)                # (term, type) -> tier
    patient_specific: Counter = field(default_factory=Counter)   # type -> missed spans not written
    stale: int = 0
    below_threshold: int = 0
    not_independent: int = 0   # identifying values without rejections by different reviewers on different notes
    structural: int = 0        # values an ID number or contact detector finds whole: never allow-listed
    unsafe_terms: int = 0      # span texts with a line break, tab or other control or format character
    cues: Counter = field(default_factory=Counter)         # word before added names -> notes it stood on


def _current(rows: list[dict], source) -> tuple[list[dict], dict, int]:
    """Standing decisions whose note is unchanged, the notes' texts, and how many decisions were stale."""
    live = effective(rows)
    texts = source.texts([r["note_id"] for r in live])
    fresh = [r for r in live if r["note_id"] in texts and texts[r["note_id"]]["digest"] == r["note_digest"]]
    return fresh, texts, len(live) - len(fresh)


def _span_text(texts: dict, row: dict) -> str:
    value = texts[row["note_id"]][row["field"]] or ""
    return value[row["span_start"]:row["span_end"]]


def _word_before(texts: dict, row: dict) -> str | None:
    """The CUE_WIDTH Chinese characters right before a span, None where the span is not preceded by them."""
    value = texts[row["note_id"]][row["field"]] or ""
    word = value[max(0, row["span_start"] - CUE_WIDTH):row["span_start"]]
    return word if len(word) == CUE_WIDTH and all(is_cjk(c) for c in word) else None


def safe_term(text: str) -> bool:
    """Whether a span's text may become a dictionary line: not blank, and no character that would split, shift or
    hide a TSV row."""
    return bool(text.strip()) and not any(unicodedata.category(c) in _UNSAFE_CATEGORIES for c in text)


def structural(term: str) -> bool:
    """Whether a detector that checks structure (ID numbers, contacts) finds the whole of `term`."""
    doc = Document(term)
    return any(s.start == 0 and s.end == len(term) for d in _STRUCTURAL for s in d.detect(doc))


def _standing(fresh: list[dict]) -> list[dict]:
    """Each reviewer's standing decision per span (their latest): rejecting the same span twice is one rejection."""
    by_note: dict[tuple, list[dict]] = defaultdict(list)
    for r in fresh:
        by_note[(r["note_id"], r["reviewer"])].append(r)
    return [r for (_, reviewer), rows in by_note.items() for r in outcomes(rows, reviewer).values()]


def propose_edits(rows: list[dict], source, min_rejections: int = 2) -> DictionaryEdits:
    fresh, texts, stale = _current(rows, source)
    edits = DictionaryEdits(stale=stale)
    rejected: dict[tuple, list[dict]] = defaultdict(list)     # (term, type) -> standing rejections
    before_names: dict[str, list[dict]] = defaultdict(list)   # word right before an added name -> its additions
    for r in _standing(fresh):
        if r["action"] not in DICTIONARY_ACTIONS:
            continue
        term = _span_text(texts, r)
        if not safe_term(term):
            edits.unsafe_terms += 1
            continue
        term = term.strip()
        if r["action"] in ("reject", "retype"):           # a retype also says "not this type"
            rejected[(term, r["old_type"])].append(r)
        label = final_label(r)
        if r["action"] in ("add", "retype", "retier") and label != NOT_PHI:
            if label in TERM_FILES:
                edits.add[(term, label)] = r["new_tier"] or r["old_tier"] or 1
            elif r["action"] == "add":
                edits.patient_specific[label] += 1
        if r["action"] == "add" and label == "NAME" and (word := _word_before(texts, r)):
            before_names[word].append(r)
    for word, by in before_names.items():
        if min(len({r["reviewer"] for r in by}), len({r["note_id"] for r in by})) >= INDEPENDENT_REJECTIONS:
            edits.cues[word] = len({r["note_id"] for r in by})
    for (term, entity_type), by in rejected.items():
        if len(by) < min_rejections:
            edits.below_threshold += 1
        elif entity_type not in TERM_FILES and min(len({r["reviewer"] for r in by}),
                                                   len({r["note_id"] for r in by})) < INDEPENDENT_REJECTIONS:
            edits.not_independent += 1
        elif structural(term):
            edits.structural += 1
        else:
            edits.allow[(term, entity_type)] = len(by)
    return edits


def _tsv_row(name: str, term: str, tier: int, existing: list[dict]) -> str | None:
    """The row to append to a dictionary for a missed term, None if the file already has it."""
    if name.endswith("hospitals.tsv"):
        known = {form for row in existing for form, _ in hospital_forms(row)}
        return None if term in known else f"{term}\t\t\t"
    if any(row.get("term") == term for row in existing):
        return None
    return f"{term}\t{tier}\t{term}"


def apply_edits(edits: DictionaryEdits, resources: Resources) -> dict[str, tuple[str, str]]:
    """relative path -> (old content, new content) for every resource file of `resources` the edits change."""
    changed: dict[str, list[str]] = defaultdict(list)
    allow = resources.load(ALLOW_LIST)
    listed = {(row["term"], row.get("type") or "*") for row in allow.rows()}
    for term, entity_type in sorted(edits.allow):
        if (term, entity_type) not in listed and (term, "*") not in listed:
            changed[ALLOW_LIST].append(f"{term}\t{entity_type}")
    known = {r["word"] for r in resources.load(PERSON_CONTEXT).rows()}
    changed[PERSON_CONTEXT] += [f"{word}\tcue" for word in sorted(edits.cues) if word not in known]
    for (term, entity_type), tier in sorted(edits.add.items()):
        name = TERM_FILES[entity_type]
        existing = resources.load(name).rows()
        line = _tsv_row(name, term, tier, existing)
        if line and line not in changed[name]:
            changed[name].append(line)
    out = {}
    for name, lines in ((n, lines) for n, lines in changed.items() if lines):
        old = resources.load(name).content
        out[name] = (old, old + ("" if old.endswith("\n") else "\n") + "\n".join(lines) + "\n")
    return out


@contextmanager
def private_file(path: Path):
    """A text file for writing, readable by its owner only: created with mode 0600 under a temporary name beside
    `path` (so an older, wider file there does not lend it its mode) and renamed to `path` once complete."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_dictionary_patch(rows: list[dict], source, out_dir: str | Path, min_rejections: int = 2,
                           resources: Resources | None = None) -> dict:
    """OUT/dictionaries.patch (apply with `git apply` at the repository root), OUT/resources/... (the edited
    files, to copy over resources/ or point $DEID_RESOURCES at) and a summary, all mode 0600; nothing in
    resources/ changes. The edits are made to the files of `resources`, the package's when None."""
    edits = propose_edits(rows, source, min_rejections)
    files = apply_edits(edits, resources or Resources.packaged())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    patch = []
    for name, (old, new) in sorted(files.items()):
        patch += difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                      f"a/resources/{name}", f"b/resources/{name}")
        target = out_dir / "resources" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with private_file(target) as f:
            f.write(new)
    with private_file(out_dir / "dictionaries.patch") as f:
        f.write("".join(patch))
    summary = {"allow_list_entries": len(edits.allow), "dictionary_entries": len(edits.add),
               "cue_entries": len(edits.cues),
               "files_changed": sorted(files), "patient_specific_missed_not_written": dict(edits.patient_specific),
               "rejections_below_threshold": edits.below_threshold,
               "rejections_not_independent": edits.not_independent,
               "structural_values_not_allowed": edits.structural, "unsafe_span_texts": edits.unsafe_terms,
               "stale_decisions": edits.stale, "min_rejections": min_rejections,
               "patch_sha256": digest_bytes("".join(patch).encode("utf-8"))}
    with private_file(out_dir / "summary.json") as f:
        f.write(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


def write_gold(rows: list[dict], source, path: str | Path) -> dict:
    """Finished, unchanged notes as gold JSONL ({id, text, spans, ...}; spans of note_text, which `deid eval`
    scores; title spans under title_spans). With two reviewers the first to finish is the gold. The file holds
    raw note text: it is written readable by its owner only."""
    fresh, texts, stale = _current(rows, source)
    first = {}
    for r in fresh:
        if r["action"] == "done":
            first.setdefault(r["note_id"], r)
    by_note = finished_notes(fresh)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with private_file(path) as f:
        for note_id in sorted(first):
            done = first[note_id]
            note = texts[note_id]
            spans = reviewed_spans(by_note[(note_id, done["reviewer"])], done["reviewer"])
            f.write(json.dumps({"id": note_id, "text": note["note_text"] or "", "title": note["note_title"] or "",
                                "spans": _gold(note, spans, "note_text"),
                                "title_spans": _gold(note, spans, "note_title"),
                                "reviewer": done["reviewer"], "strategy": done["strategy"],
                                "note_digest": done["note_digest"], "pipeline_version": done["pipeline_version"]},
                               ensure_ascii=False) + "\n")
            written += 1
    return {"notes": written, "stale_decisions": stale, "path": str(path)}


def _gold(note: dict, spans: list[dict], field: str) -> list[dict]:
    """A reviewed note's spans of one field, with their text, as gold JSONL holds them."""
    value = note[field] or ""
    return [{"start": s["start"], "end": s["end"], "type": s["type"], "tier": s["tier"],
             "text": value[s["start"]:s["end"]]} for s in spans if s["field"] == field]
