"""Evaluation against gold spans, in the shape of the paper's Tables 1 and 2, plus leak rate per level.

- Per type precision / recall / F1, exact (same start, end, type) and overlap (same type, any overlap).
- Tier micro-average for ADDRESS, STD, PREGNANCY: a predicted span is right when it overlaps a gold span
  of its type with the same tier. P = right / predicted, R = right / gold (end to end, so a missed span is a
  tier miss too); the tier accuracy on matched spans alone is reported beside it.
- Leak rate at level k: the share of gold spans with tier <= k not fully covered by the spans masked at
  level k (a span whose text survives, even in part, leaks).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date

from deid.pipeline import Note
from deid.spans import TIERED_TYPES, EntityType, NoteContext

TYPES = [t.value for t in EntityType]
TIERED = [t.value for t in TIERED_TYPES]


def _prf(tp_p: int, n_pred: int, tp_r: int, n_gold: int) -> tuple[float, float, float]:
    p = tp_p / n_pred if n_pred else 1.0
    r = tp_r / n_gold if n_gold else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


@dataclass
class Scores:
    counts: dict = field(default_factory=lambda: defaultdict(Counter))   # type -> counter
    tier: Counter = field(default_factory=Counter)
    leaks: dict = field(default_factory=lambda: defaultdict(Counter))    # level -> {gold, leaked}
    notes: int = 0
    errors: list = field(default_factory=list)                            # (kind, type, text, note id)

    def add_spans(self, note: dict, spans) -> None:
        """A gold note ({id, spans}) against the pipeline's Span objects; level k masks tiers <= k."""
        masked = {lvl: [(s.start, s.end) for s in spans if s.tier <= lvl] for lvl in (1, 2, 3)}
        self.add(note["id"], note["spans"], [s.to_dict() for s in spans], masked)

    def add(self, note_id, gold: list[dict], pred: list[dict], masked_by_level: dict[int, list[tuple[int, int]]]):
        self.notes += 1
        for t in TYPES:
            g = [s for s in gold if s["type"] == t]
            p = [s for s in pred if s["type"] == t]
            gk = {(s["start"], s["end"]) for s in g}
            pk = {(s["start"], s["end"]) for s in p}
            c = self.counts[t]
            c["gold"] += len(g)
            c["pred"] += len(p)
            c["exact"] += len(gk & pk)
            c["overlap_pred"] += sum(any(_ov(a, b) for b in g) for a in p)
            c["overlap_gold"] += sum(any(_ov(a, b) for b in p) for a in g)
            for a in g:
                hits = [b for b in p if _ov(a, b)]
                if not hits:
                    self.errors.append(("FN", t, a["text"], note_id))
                elif (a["start"], a["end"]) not in pk:
                    self.errors.append(("BOUNDARY", t, f"{a['text']} -> {hits[0]['text']}", note_id))
            for a in p:
                if not any(_ov(a, b) for b in g):
                    self.errors.append(("FP", t, a["text"], note_id))
        for t in TIERED:
            g = [s for s in gold if s["type"] == t]
            p = [s for s in pred if s["type"] == t]
            self.tier["gold"] += len(g)
            self.tier["pred"] += len(p)
            for a in p:
                matches = [b for b in g if _ov(a, b)]
                if matches:
                    self.tier["matched"] += 1
                    if any(b["tier"] == a["tier"] for b in matches):
                        self.tier["right"] += 1
                    else:
                        self.errors.append((f"TIER {matches[0]['tier']}->{a['tier']}", t, a["text"], note_id))
        for level, intervals in masked_by_level.items():
            for s in gold:
                if s["tier"] <= level:
                    self.leaks[level]["gold"] += 1
                    if not _covered(s["start"], s["end"], intervals):
                        self.leaks[level]["leaked"] += 1

    # -- results ----------------------------------------------------------------------------------------
    def per_type(self) -> dict:
        out = {}
        for t in TYPES:
            c = self.counts[t]
            ep, er, ef = _prf(c["exact"], c["pred"], c["exact"], c["gold"])
            op, orr, of = _prf(c["overlap_pred"], c["pred"], c["overlap_gold"], c["gold"])
            out[t] = {"gold": c["gold"], "pred": c["pred"], "exact": {"p": ep, "r": er, "f1": ef},
                      "overlap": {"p": op, "r": orr, "f1": of}}
        return out

    def tier_scores(self) -> dict:
        t = self.tier
        p, r, f = _prf(t["right"], t["pred"], t["right"], t["gold"])
        return {"p": p, "r": r, "f1": f, "accuracy_on_matched": t["right"] / t["matched"] if t["matched"] else 1.0}

    def leak_rates(self) -> dict:
        return {lvl: (c["leaked"] / c["gold"] if c["gold"] else 0.0) for lvl, c in sorted(self.leaks.items())}

    def to_dict(self) -> dict:
        return {"notes": self.notes, "per_type": self.per_type(), "tier": self.tier_scores(),
                "leak_rate": self.leak_rates()}

    def to_text(self) -> str:
        lines = [f"notes: {self.notes}", "",
                 "Table 1. Entity recognition per type",
                 f"{'type':<10} {'gold':>6} {'pred':>6}   {'P(exact)':>8} {'R(exact)':>8} {'F1':>6}   "
                 f"{'P(ovl)':>7} {'R(ovl)':>7} {'F1':>6}"]
        for t, m in self.per_type().items():
            e, o = m["exact"], m["overlap"]
            lines.append(f"{t:<10} {m['gold']:>6} {m['pred']:>6}   {e['p']:>8.4f} {e['r']:>8.4f} {e['f1']:>6.4f}   "
                         f"{o['p']:>7.4f} {o['r']:>7.4f} {o['f1']:>6.4f}")
        ts = self.tier_scores()
        lines += ["", "Table 2. Sensitivity tier, micro-average over ADDRESS, STD, PREGNANCY",
                  f"P {ts['p']:.4f}  R {ts['r']:.4f}  F1 {ts['f1']:.4f}  "
                  f"(accuracy on matched spans {ts['accuracy_on_matched']:.4f})",
                  "", "Leak rate per policy level (gold spans with tier <= k not fully masked at level k)"]
        for lvl, rate in self.leak_rates().items():
            c = self.leaks[lvl]
            lines.append(f"level {lvl}: {rate:.4%}  ({c['leaked']} of {c['gold']})")
        return "\n".join(lines)


def _ov(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def _coverage(start: int, end: int, intervals) -> int:
    """Characters of [start, end) inside the union of intervals."""
    covered, pos = 0, start
    for s, e in sorted(intervals):
        s, e = max(s, pos), min(e, end)
        if e > s:
            covered += e - s
            pos = e
    return covered


def _covered(start: int, end: int, intervals: list[tuple[int, int]]) -> bool:
    return _coverage(start, end, intervals) == end - start


def as_note(gold: dict) -> Note:
    """A gold note ({id, text} and, from deid synth, note_title, person_id, note_date) as the job reads its NOTE
    row; the gold spans are the text's."""
    note_date = gold.get("note_date")
    return Note(gold["text"], gold.get("note_title"),
                NoteContext(gold.get("person_id"), gold["id"], date.fromisoformat(note_date) if note_date else None))


def analyzed(notes, pipeline, batch: int = 64):
    """(note, its text's spans) for gold notes, found a batch at a time on the job's path (Pipeline.process_notes);
    a note the pipeline fails on raises its error, so no figure is made without it."""
    for i in range(0, len(notes), batch):
        chunk = notes[i:i + batch]
        results = pipeline.process_notes([as_note(n) for n in chunk])
        for note, result in zip(chunk, results, strict=True):
            if result.failure:
                raise result.failure.error
            yield note, result.spans["text"]


def evaluate(notes, pipeline, batch: int = 64) -> Scores:
    """Run the pipeline on gold notes ({id, text, spans}) and score it."""
    scores = Scores()
    for note, spans in analyzed(notes, pipeline, batch):
        scores.add_spans(note, spans)
    return scores


def evaluate_with_llm(notes, pipeline, stage, batch: int = 16) -> dict:
    """Detectors alone, LLM alone and the ensemble on the same notes, each scored like evaluate(). The LLM is
    called once per note; its spans are merged alone and together with the detectors' spans."""
    from deid.merge import merge
    scores = {"detectors": Scores(), "llm": Scores(), "ensemble": Scores()}
    cfg = pipeline.config
    for i in range(0, len(notes), batch):
        chunk = notes[i:i + batch]
        detected = [spans for _, spans in analyzed(chunk, pipeline, len(chunk))]
        outcomes = stage.run([n["text"] for n in chunk])
        for note, det, out in zip(chunk, detected, outcomes, strict=True):
            variants = {"detectors": det, "llm": merge(out.spans, cfg.type_priority, cfg.tier_rule),
                        "ensemble": merge(det + out.spans, cfg.type_priority, cfg.tier_rule)}
            for name, spans in variants.items():
                scores[name].add_spans(note, spans)
    return scores


def side_by_side(scores: dict) -> str:
    names = list(scores)
    lines = [f"{'type':<10}" + "".join(f"{n + ' P':>12}{n + ' R':>12}" for n in names)]
    per = {n: s.per_type() for n, s in scores.items()}
    for t in TYPES:
        lines.append(f"{t:<10}" + "".join(f"{per[n][t]['overlap']['p']:>12.4f}{per[n][t]['overlap']['r']:>12.4f}"
                                          for n in names))
    tiers = {n: s.tier_scores() for n, s in scores.items()}
    lines.append(f"{'tier':<10}" + "".join(f"{tiers[n]['p']:>12.4f}{tiers[n]['r']:>12.4f}" for n in names))
    leaks = {n: s.leak_rates() for n, s in scores.items()}
    for lvl in (1, 2, 3):
        lines.append(f"{'leak L' + str(lvl):<10}" + "".join(f"{'':>12}{leaks[n].get(lvl, 0):>12.4%}" for n in names))
    return "\n".join(lines)


# -- real text ----------------------------------------------------------------------------------------------
# Types whose span over a clinical mention is certainly wrong (an STD or pregnancy span over a disease is not).
NON_CLINICAL_TYPES = frozenset(t.value for t in EntityType) - {"STD", "PREGNANCY"}
# A corpus's own labels that a PHI span of that type may rightly cover (cMedQANER labels dates `time`, and ages
# or age groups `crowd`): no false positive.
LABELS_OF_THE_SAME_KIND = {"DATE": {"time"}, "AGE": {"time", "crowd"}}


@dataclass
class RealScores:
    """What a real corpus can show, whatever it labels: per labelled type, recall (exact, overlap, whole,
    touched, masked) and overlap precision; the below-county address parts masked per level; certain false positives
    (a span of a non-clinical type over a third-party clinical mention); spans per 100 notes by type; the
    share of characters masked at level 3."""
    corpus: str
    notes: int = 0
    chars: int = 0
    masked_chars_l3: int = 0
    types: set = field(default_factory=set)
    gold: Counter = field(default_factory=Counter)        # type -> gold spans
    hits: dict = field(default_factory=lambda: defaultdict(Counter))   # type -> exact/overlap/whole/touched
    pred: Counter = field(default_factory=Counter)        # type -> predicted spans
    pred_right: Counter = field(default_factory=Counter)  # type -> predicted spans overlapping gold of the type
    parts: Counter = field(default_factory=Counter)       # total, masked_l1..3
    certain_fp: Counter = field(default_factory=Counter)  # type -> spans over a clinical mention
    errors: list = field(default_factory=list)            # (kind, type, gold or predicted text, note id)

    def add(self, note: dict, spans, masked_by_level: dict[int, list[tuple[int, int]]]) -> None:
        text = note["text"]
        self.notes += 1
        self.chars += len(text)
        self.masked_chars_l3 += _coverage(0, len(text), masked_by_level[3])
        labelled = set(note.get("types", ()))
        self.types |= labelled
        pred = [s.to_dict() for s in spans]
        for p in pred:
            self.pred[p["type"]] += 1
        for g in note["spans"]:
            t = g["type"]
            self.gold[t] += 1
            same = [(p["start"], p["end"]) for p in pred if p["type"] == t]
            c = self.hits[t]
            c["exact"] += (g["start"], g["end"]) in same
            c["overlap"] += any(s < g["end"] and g["start"] < e for s, e in same)
            covered = _coverage(g["start"], g["end"], same)
            whole = covered == g["end"] - g["start"] if t != "ADDRESS" else 2 * covered >= g["end"] - g["start"]
            c["whole"] += whole
            masked_l3 = _coverage(g["start"], g["end"], masked_by_level[3])
            touched = masked_l3 > 0
            c["touched"] += touched
            c["masked"] += masked_l3 == g["end"] - g["start"]   # nothing of it left at level 3, whatever the type
            if not whole:
                self.errors.append(("MISS" if not touched else "PART", t, g["text"], note["id"]))
        for p in pred:
            if p["type"] in labelled:
                right = any(g["type"] == p["type"] and g["start"] < p["end"] and p["start"] < g["end"]
                            for g in note["spans"])
                self.pred_right[p["type"]] += right
                if not right:
                    self.errors.append(("FP", p["type"], p["text"], note["id"]))
            if p["type"] in NON_CLINICAL_TYPES and any(
                    m["start"] < p["end"] and p["start"] < m["end"]
                    and m.get("label") not in LABELS_OF_THE_SAME_KIND.get(p["type"], ())
                    for m in note.get("clinical", ())):
                self.certain_fp[p["type"]] += 1
                self.errors.append(("CLINICAL", p["type"], p["text"], note["id"]))
        for part in note.get("parts", ()):
            self.parts["total"] += 1
            for level, intervals in masked_by_level.items():
                covered = _coverage(part["start"], part["end"], intervals) == part["end"] - part["start"]
                self.parts[f"masked_l{level}"] += covered

    def to_dict(self) -> dict:
        per_type = {}
        for t in sorted(self.types | set(self.gold)):
            g, c = self.gold[t], self.hits[t]
            per_type[t] = {"gold": g,
                           **{k: (c[k] / g if g else None) for k in ("exact", "overlap", "whole", "touched", "masked")},
                           "precision": (self.pred_right[t] / self.pred[t] if self.pred[t] else None)
                           if t in self.types else None}
        out = {"corpus": self.corpus, "notes": self.notes, "per_type": per_type,
               "spans_per_100_notes": ({t: 100 * n / self.notes for t, n in sorted(self.pred.items())}
                                       if self.notes else {}),
               "masked_chars_l3": self.masked_chars_l3 / self.chars if self.chars else 0.0,
               "certain_fp_per_1000_notes": 1000 * sum(self.certain_fp.values()) / self.notes if self.notes else 0.0,
               "certain_fp_by_type": dict(self.certain_fp)}
        if self.parts["total"]:
            out["below_county_parts"] = {"total": self.parts["total"],
                                         **{f"masked_l{k}": self.parts[f"masked_l{k}"] / self.parts["total"]
                                            for k in (1, 2, 3)}}
        return out

    def to_text(self) -> str:
        d = self.to_dict()
        lines = [f"{self.corpus}: {self.notes} notes"]

        def fmt(v):
            return "   -  " if v is None else f"{v:6.4f}"
        if d["per_type"]:
            lines.append(f"  {'type':<11} {'gold':>6} {'exact':>6} {'overlap':>7} {'whole':>6} {'touched':>7} "
                         f"{'masked':>6} {'P(ovl)':>6}")
            for t, m in d["per_type"].items():
                lines.append(f"  {t:<11} {m['gold']:>6} {fmt(m['exact'])} {fmt(m['overlap']):>7} {fmt(m['whole'])} "
                             f"{fmt(m['touched']):>7} {fmt(m['masked'])} {fmt(m['precision'])}")
        if "below_county_parts" in d:
            bp = d["below_county_parts"]
            lines.append(f"  below-county address parts masked: L1 {bp['masked_l1']:.4f}  L2 {bp['masked_l2']:.4f}  "
                         f"L3 {bp['masked_l3']:.4f}  (of {bp['total']})")
        lines.append(f"  certain false positives per 1,000 notes: {d['certain_fp_per_1000_notes']:.1f} "
                     f"{d['certain_fp_by_type'] or ''}")
        lines.append("  spans per 100 notes: " + ", ".join(f"{t} {v:.1f}" for t, v in d["spans_per_100_notes"].items()))
        lines.append(f"  characters masked at level 3: {d['masked_chars_l3']:.2%}")
        return "\n".join(lines)


def evaluate_real(notes, pipeline, corpus: str, batch: int = 64) -> RealScores:
    """Score one real corpus; what each level masks comes from the masker itself (generalize keeps a prefix)."""
    scores = RealScores(corpus)
    for note, spans in analyzed(notes, pipeline, batch):
        scores.add(note, spans, {lvl: pipeline.masker.masked_intervals(spans, lvl) for lvl in (1, 2, 3)})
    return scores
