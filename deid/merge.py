"""Overlapping spans are resolved here and only here.

Deterministic detectors' spans first, then the LLM's (an LLM span only wins where no detector span overlaps
it: the detectors are precise, the LLM fills gaps); within each, longest first, then the more specific type
(ARCHITECTURE's priority), then the higher score. The winner keeps the detector kinds of every same-type span
it overlapped (agreement), and a same-type LLM span may widen it where that collides with no other winner
(masking more, never less). A detector span that loses an overlap to another type keeps the parts no winner
covers (two characters or more), so a boundary two detectors disagree on never unmasks text.

Its tier, among same-type spans, follows `tier_rule`:
- protective: the most sensitive tier any of them gave (merging never lowers protection);
- detectors_first: the deterministic detectors' tier where they found the span (their tiers are rule-certain:
  a dictionary row, address granularity, a negative result), the LLM's where only the LLM found it;
- llm_first: the LLM's tier where it gave one, else the detectors'.
A span of another type swallowed by the winner can still only raise its sensitivity.
"""
from __future__ import annotations

from deid.spans import EntityType, Span

DEFAULT_PRIORITY = (EntityType.ID_NUMBER, EntityType.CONTACT, EntityType.ACCOUNT, EntityType.CERTIFICATE,
                    EntityType.VEHICLE, EntityType.RECORD_ID, EntityType.HOSPITAL, EntityType.NAME, EntityType.DATE,
                    EntityType.AGE, EntityType.WORKPLACE, EntityType.ADDRESS, EntityType.STD, EntityType.PREGNANCY)


TIER_RULES = ("protective", "detectors_first", "llm_first")


def _tier(same: list[Span], rule: str) -> int:
    detectors = [s.tier for s in same if s.detector != "llm"]
    llm = [s.tier for s in same if s.detector == "llm"]
    if rule == "detectors_first" and detectors:
        return min(detectors)
    if rule == "llm_first" and llm:
        return min(llm)
    return min(s.tier for s in same)


def merge(spans: list[Span], priority: tuple[EntityType, ...] = DEFAULT_PRIORITY,
          tier_rule: str = "protective") -> list[Span]:
    rank = {t: i for i, t in enumerate(priority)}
    out: list[Span] = []
    for group in _overlapping_groups(spans):
        out.extend(group if len(group) == 1 else _merge_group(group, rank, tier_rule))
    return out


def _overlapping_groups(spans: list[Span]) -> list[list[Span]]:
    """The spans in runs that overlap one another, by start. Every rule below looks only at spans that overlap,
    so each run is resolved on its own: a long note's thousands of spans cost their number, not its square."""
    groups: list[list[Span]] = []
    reach = -1
    for span in sorted(spans, key=lambda s: s.start):
        if span.start >= reach:
            groups.append([])
        groups[-1].append(span)
        reach = max(reach, span.end)
    return groups


def _merge_group(spans: list[Span], rank: dict, tier_rule: str) -> list[Span]:
    ordered = sorted(spans, key=lambda s: (s.detector == "llm", -(s.end - s.start), rank[s.entity_type], -s.score,
                                           s.start))
    winners: list[Span] = []
    for span in ordered:
        if not any(span.overlaps(w) for w in winners):
            winners.append(span)
    winners = _widen(winners, [s for s in spans if s.detector == "llm"])
    winners = sorted([*winners, *_remainders(ordered, winners)], key=lambda s: s.start)
    out = []
    for w in winners:
        absorbed = [s for s in spans if s.overlaps(w)]
        same = [s for s in absorbed if s.entity_type == w.entity_type]
        sources = frozenset().union(*(s.sources for s in same))
        swallowed = [s.tier for s in absorbed if s.entity_type != w.entity_type and w.start <= s.start and s.end <= w.end]
        tier = min([_tier(same, tier_rule), *swallowed])
        out.append(w.with_(sources=sources, tier=tier, score=max(s.score for s in same)))
    return sorted(out, key=lambda s: s.start)


def _remainders(ordered: list[Span], winners: list[Span]) -> list[Span]:
    """The parts of a losing detector span that no winner covers (浣纱路356号_杭州市第一人民|医院: the address won
    the overlap, the hospital keeps 医院), so two detectors disagreeing on a boundary never unmask text either
    would mask. Parts shorter than two characters are dropped, and so is a span that overlaps a winner of its own
    type (that winner settled the boundary); an LLM span that loses is wrong, not cut."""
    out: list[Span] = []
    for span in ordered:
        if span.detector == "llm" or span in winners or any(
                w.entity_type == span.entity_type and w.overlaps(span) for w in winners):
            continue
        taken = sorted((w.start, w.end) for w in (*winners, *out) if w.overlaps(span))
        pos, pieces = span.start, []
        for start, end in taken:
            pieces.append((pos, min(start, span.end)))
            pos = max(pos, end)
        pieces.append((pos, span.end))
        for start, end in pieces:
            if end - start >= 2:
                out.append(span.with_(start=start, end=end, text=span.text[start - span.start:end - span.start]))
    return out


def _widen(winners: list[Span], llm: list[Span]) -> list[Span]:
    """Stretch each winner over the same-type LLM spans it overlaps, unless that would reach another winner."""
    out = []
    for w in winners:
        cover = [s for s in llm if s.entity_type == w.entity_type and s.overlaps(w) and s is not w]
        start, end = min([w.start, *(s.start for s in cover)]), max([w.end, *(s.end for s in cover)])
        if cover and (start, end) != (w.start, w.end) and not any(
                o is not w and o.start < end and start < o.end for o in winners):
            chars = [""] * (end - start)
            for s in (w, *cover):   # the spans' own texts, which together cover the new extent
                for i, ch in enumerate(s.text):
                    chars[s.start - start + i] = ch
            w = w.with_(start=start, end=end, text="".join(chars))
        out.append(w)
    return out
