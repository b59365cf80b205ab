"""Overlapping spans are resolved here and only here.

Longest span first; on equal length the more specific type (ARCHITECTURE's priority) and then the higher
score. The winner keeps the detector kinds of every same-type span it overlapped (agreement), and takes
the most sensitive tier of any span it absorbed, so merging can never lower protection.
"""
from __future__ import annotations

from deid.spans import EntityType, Span

DEFAULT_PRIORITY = (EntityType.ID_NUMBER, EntityType.CONTACT, EntityType.HOSPITAL, EntityType.NAME,
                    EntityType.ADDRESS, EntityType.STD, EntityType.PREGNANCY)


def merge(spans: list[Span], priority: tuple[EntityType, ...] = DEFAULT_PRIORITY) -> list[Span]:
    rank = {t: i for i, t in enumerate(priority)}
    ordered = sorted(spans, key=lambda s: (-(s.end - s.start), rank[s.entity_type], -s.score, s.start))
    winners: list[Span] = []
    for span in ordered:
        if not any(span.overlaps(w) for w in winners):
            winners.append(span)
    out = []
    for w in winners:
        absorbed = [s for s in spans if s.overlaps(w)]
        same = [s for s in absorbed if s.entity_type == w.entity_type]
        sources = frozenset().union(*(s.sources for s in same))
        tier = min(s.tier for s in absorbed if s.entity_type == w.entity_type or s.start >= w.start and s.end <= w.end)
        out.append(w.with_(sources=sources, tier=tier, score=max(s.score for s in same)))
    return sorted(out, key=lambda s: s.start)
