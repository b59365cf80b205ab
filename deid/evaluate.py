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

from deid.spans import TIERED_TYPES, EntityType

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
                 f"{'type':<10} {'gold':>6} {'pred':>6}   {'P(exact)':>8} {'R(exact)':>8} {'F1':>6}   {'P(ovl)':>7} {'R(ovl)':>7} {'F1':>6}"]
        for t, m in self.per_type().items():
            e, o = m["exact"], m["overlap"]
            lines.append(f"{t:<10} {m['gold']:>6} {m['pred']:>6}   {e['p']:>8.4f} {e['r']:>8.4f} {e['f1']:>6.4f}   "
                         f"{o['p']:>7.4f} {o['r']:>7.4f} {o['f1']:>6.4f}")
        ts = self.tier_scores()
        lines += ["", "Table 2. Sensitivity tier, micro-average over ADDRESS, STD, PREGNANCY",
                  f"P {ts['p']:.4f}  R {ts['r']:.4f}  F1 {ts['f1']:.4f}  (accuracy on matched spans {ts['accuracy_on_matched']:.4f})",
                  "", "Leak rate per policy level (gold spans with tier <= k not fully masked at level k)"]
        for lvl, rate in self.leak_rates().items():
            c = self.leaks[lvl]
            lines.append(f"level {lvl}: {rate:.4%}  ({c['leaked']} of {c['gold']})")
        return "\n".join(lines)


def _ov(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def _covered(start: int, end: int, intervals: list[tuple[int, int]]) -> bool:
    pos = start
    for s, e in sorted(intervals):
        if s > pos:
            break
        pos = max(pos, e)
        if pos >= end:
            return True
    return pos >= end


def evaluate(notes, pipeline, batch: int = 64) -> Scores:
    """Run the pipeline on gold notes ({id, text, spans}) and score it."""
    scores = Scores()
    for i in range(0, len(notes), batch):
        chunk = notes[i:i + batch]
        for note, spans in zip(chunk, pipeline.analyze_many([n["text"] for n in chunk])):
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
        texts = [n["text"] for n in chunk]
        detected = pipeline.analyze_many(texts)
        outcomes = stage.run(texts)
        for note, det, out in zip(chunk, detected, outcomes):
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
