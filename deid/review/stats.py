"""What the reviews say about the pipeline: precision and recall per type with 95% intervals (from the random
sample only) and agreement between reviewers (Cohen's kappa on doubly reviewed notes)."""
from __future__ import annotations

import math
from collections import Counter, defaultdict

from deid.review.store import effective, outcomes, span_key

NOT_PHI = "NOT_PHI"


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """Wilson score interval for a proportion (None when there is nothing to estimate from)."""
    if n == 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters' labels on the same units; None without units, 1.0 when both always agree
    on a single label (no chance correction possible)."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[k] * second[k] for k in first) / (n * n)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def final_label(row: dict) -> str:
    """What a span is after a reviewer's decision: its (new) type, or NOT_PHI when rejected."""
    if row["action"] == "reject":
        return NOT_PHI
    return row["new_type"] or row["old_type"]


def finished_notes(rows: list[dict], strategy: str | None = None) -> dict[tuple[int, str], list[dict]]:
    """(note_id, reviewer) -> that note's decision rows, for notes the reviewer finished (via `strategy`)."""
    live = effective(rows)
    done = {(r["note_id"], r["reviewer"]) for r in live
            if r["action"] == "done" and (strategy is None or r["strategy"] == strategy)}
    by_note = defaultdict(list)
    for r in rows:
        if (r["note_id"], r["reviewer"]) in done:
            by_note[(r["note_id"], r["reviewer"])].append(r)
    return by_note


def precision_recall(rows: list[dict], strategy: str = "random") -> dict[str, dict]:
    """Per type: the pipeline's spans judged right (kept with that type) over all it found, and over those plus
    what reviewers added or retyped to that type; each with its Wilson 95% interval."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for (_, reviewer), note_rows in finished_notes(rows, strategy).items():
        for row in outcomes(note_rows, reviewer).values():
            label = final_label(row)
            if row["action"] == "add":
                counts[label]["missed"] += 1
                continue
            counts[row["old_type"]]["found"] += 1
            if label == row["old_type"]:
                counts[label]["right"] += 1
            elif label != NOT_PHI:
                counts[label]["missed"] += 1
    out = {}
    for t in sorted(counts):
        c = counts[t]
        out[t] = {"found": c["found"], "right": c["right"], "missed": c["missed"],
                  "precision": c["right"] / c["found"] if c["found"] else None,
                  "precision_ci": wilson(c["right"], c["found"]),
                  "recall": c["right"] / (c["right"] + c["missed"]) if c["right"] + c["missed"] else None,
                  "recall_ci": wilson(c["right"], c["right"] + c["missed"])}
    return out


def agreement(rows: list[dict]) -> dict:
    """Cohen's kappa over the spans of notes two reviewers finished: each span found or added by either is a
    unit; a reviewer's label is its final type, NOT_PHI when rejected or not added by them."""
    per_note = defaultdict(dict)
    for (note_id, reviewer), note_rows in finished_notes(rows).items():
        per_note[note_id][reviewer] = outcomes(note_rows, reviewer)
    pairs = []
    notes = 0
    for by_reviewer in per_note.values():
        if len(by_reviewer) < 2:
            continue
        notes += 1
        a, b = (by_reviewer[r] for r in sorted(by_reviewer)[:2])
        for key in sorted(set(a) | set(b), key=str):
            pairs.append((final_label(a[key]) if key in a else NOT_PHI, final_label(b[key]) if key in b else NOT_PHI))
    return {"notes": notes, "spans": len(pairs), "kappa": cohen_kappa(pairs)}


def reviewed_spans(note_rows: list[dict], reviewer: str) -> list[dict]:
    """A finished note's spans as the reviewer left them: {field, start, end, type, tier}, rejected ones dropped."""
    out = []
    for row in outcomes(note_rows, reviewer).values():
        label = final_label(row)
        if label != NOT_PHI:
            field, start, end = span_key(row)
            out.append({"field": field, "start": start, "end": end, "type": label,
                        "tier": row["new_tier"] or row["old_tier"]})
    return sorted(out, key=lambda s: (s["field"], s["start"], s["end"]))
