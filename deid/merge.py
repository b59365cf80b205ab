"""Overlapping spans are resolved here and only here.

Deterministic detectors' spans first, then the LLM's (an LLM span only wins where no detector span overlaps
it: the detectors are precise, the LLM fills gaps); within each, longest first, then the more specific type
(ARCHITECTURE's priority), then the higher score. The winner keeps the detector kinds of every same-type span
it overlapped (agreement), and a same-type LLM span may widen it where that collides with no other winner
(masking more, never less). A detector span that loses an overlap to another type keeps the parts no winner
covers (two characters or more), so a boundary two detectors disagree on never unmasks text.

Its tier, among same-type spans, follows `tier_rule` (`merge.tier_rule` in the config; the default is
DEFAULT_TIER_RULE, and the rules differ only where the LLM stage added spans):
- protective: the most sensitive tier any of them gave (merging never lowers protection);
- detectors_first (the default): the deterministic detectors' tier where they found the span (their tiers are
  rule-certain: a dictionary row, address granularity, a negative result), the LLM's where only the LLM found it;
- llm_first: the LLM's tier where it gave one, else the detectors'.
A span of another type swallowed by the winner can still only raise its sensitivity.

Before length decides, evidence does, between an address and a span whose type rests on a structure (`_by_evidence`): a
number with a valid phone, ID, account, certificate, plate or record structure, or a health facility (a HOSPITAL that
ends in a health-facility ending: its detector records it in `facility`) keeps its characters whatever the address
detector read there, and the address keeps only the parts that hold address evidence of their own (a division, a named
place, a house or building number: the components the address detector records in `evidence`). So 家属电话138-1234-5678
is a phone and no address (its building-number reading was the phone), 乘坐陕A1F52N小型轿车 a plate,
浣纱路356号杭州市第一人民医院 an address and a hospital; and a place name the address took right before a facility's
name (杭州市西湖区|留下街道社区卫生服务中心) is the start of that name, so the HOSPITAL takes it. A facility that an
address goes on past with components of its own (仓后57号温州市人民医院|17幢11楼) is a landmark inside the address,
which stays whole. (That an address never starts at a verb, 乘坐|..., 拨打|..., is the address detector's:
lexicons/place_verbs.txt.)
"""
from __future__ import annotations

from deid.spans import EntityType, Span

DEFAULT_PRIORITY = (EntityType.ID_NUMBER, EntityType.CONTACT, EntityType.ACCOUNT, EntityType.CERTIFICATE,
                    EntityType.VEHICLE, EntityType.RECORD_ID, EntityType.HOSPITAL, EntityType.NAME, EntityType.DATE,
                    EntityType.AGE, EntityType.WORKPLACE, EntityType.ADDRESS, EntityType.STD, EntityType.PREGNANCY)


TIER_RULES = ("protective", "detectors_first", "llm_first")
DEFAULT_TIER_RULE = "detectors_first"

# Types whose detectors check a structure no address reading has (a mobile's prefix and length, an ID's check digit,
# a plate's region letter, a record number's cue); a HOSPITAL counts where its detector says why (`facility`).
STRUCTURED = frozenset({EntityType.ID_NUMBER, EntityType.CONTACT, EntityType.ACCOUNT, EntityType.CERTIFICATE,
                        EntityType.VEHICLE, EntityType.RECORD_ID})
# Characters that may not begin or end a part of an address cut out by merge.
_EDGE = set(" \t\n_-—~、,，.。;；:：()（）")


def _tier(same: list[Span], rule: str) -> int:
    detectors = [s.tier for s in same if s.detector != "llm"]
    llm = [s.tier for s in same if s.detector == "llm"]
    if rule == "detectors_first" and detectors:
        return min(detectors)
    if rule == "llm_first" and llm:
        return min(llm)
    return min(s.tier for s in same)


def merge(spans: list[Span], priority: tuple[EntityType, ...] = DEFAULT_PRIORITY,
          tier_rule: str = DEFAULT_TIER_RULE) -> list[Span]:
    rank = {t: i for i, t in enumerate(priority)}
    out: list[Span] = []
    for group in _overlapping_groups(spans):
        out.extend(group if len(group) == 1 else _merge_group(_by_evidence(group), rank, tier_rule))
    return out


def _structured(span: Span) -> bool:
    return span.detector != "llm" and (span.entity_type in STRUCTURED
                                       or span.entity_type is EntityType.HOSPITAL and bool(span.attrs.get("facility")))


def _by_evidence(spans: list[Span]) -> list[Span]:
    """Each detector ADDRESS that overlaps a structured span, cut to its parts outside them that hold address
    evidence; a part that ends where a HOSPITAL begins and holds no number is that hospital's name's start."""
    rivals = [s for s in spans if _structured(s)]
    if not rivals or not any(s.entity_type is EntityType.ADDRESS for s in spans):
        return spans
    out: list[Span] = []
    grown: dict[int, Span] = {}   # id of a hospital -> the hospital with the place before it
    for span in spans:
        if span.entity_type is not EntityType.ADDRESS or span.detector == "llm":
            out.append(span)
            continue
        against = sorted((r for r in rivals if r.overlaps(span) and not _landmark(span, r)), key=lambda r: r.start)
        if not against:
            out.append(span)
            continue
        for start, end in _outside(span, against):
            kinds = _evidence_in(span, start, end)
            if not kinds:
                continue   # the address's evidence was the other span's (a phone read as a building number)
            hospital = next((r for r in against if r.entity_type is EntityType.HOSPITAL and r.start == end), None)
            if hospital is not None and "number" not in kinds:
                base = grown.get(id(hospital), hospital)
                if start < base.start:
                    prefix = span.text[start - span.start:base.start - span.start]
                    grown[id(hospital)] = base.with_(start=start, text=prefix + base.text)
                continue
            out.append(_part(span, start, end, kinds))
    return [grown.get(id(s), s) for s in out]


def _landmark(address: Span, rival: Span) -> bool:
    """A facility inside an address that goes on past it with evidence of its own (温州市人民医院|17幢11楼,
    人民医院|对面麒麟郡小区): the phrase ends in no facility ending, so it is an address that names the facility on
    the way."""
    return (rival.entity_type is EntityType.HOSPITAL and address.end > rival.end
            and any(address.start + e > rival.end and kind != "cue"
                    for _s, e, kind in address.attrs.get("evidence", ())))


def _outside(span: Span, against: list[Span]) -> list[tuple[int, int]]:
    """The runs of span's characters that none of `against` covers, without clause marks at their edges."""
    runs, pos = [], span.start
    for r in against:
        runs.append((pos, min(r.start, span.end)))
        pos = max(pos, r.end)
    runs.append((pos, span.end))
    out = []
    for start, end in runs:
        while start < end and span.text[start - span.start] in _EDGE:
            start += 1
        while end > start and span.text[end - 1 - span.start] in _EDGE:
            end -= 1
        if end > start:
            out.append((start, end))
    return out


def _evidence_in(span: Span, start: int, end: int) -> set[str]:
    """The kinds of address evidence (admin, named, number, cue) wholly inside [start, end) of the span; a span
    whose detector recorded none keeps a part of two characters or more, as any losing span does."""
    evidence = span.attrs.get("evidence")
    if evidence is None:
        return {"unrecorded"} if end - start >= 2 else set()
    return {kind for s, e, kind in evidence
            if start <= span.start + s and span.start + e <= end and (kind != "cue" or start == span.start)}


def _part(span: Span, start: int, end: int, kinds: set[str]) -> Span:
    """The part [start, end) of an address, its tier from what it holds: divisions alone stop at county level."""
    admin_only = kinds == {"admin"}
    evidence = tuple((s + span.start - start, e + span.start - start, k) for s, e, k in span.attrs.get("evidence", ())
                     if start <= span.start + s and span.start + e <= end)
    granularity = "admin" if admin_only else span.attrs.get("granularity")
    attrs = {**span.attrs, "evidence": evidence, "granularity": granularity}
    return span.with_(start=start, end=end, text=span.text[start - span.start:end - span.start],
                      tier=2 if admin_only else span.tier, explanation=span.explanation + "+cut", attrs=attrs)


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
        swallowed = [s.tier for s in absorbed
                     if s.entity_type != w.entity_type and w.start <= s.start and s.end <= w.end]
        tier = min([_tier(same, tier_rule), *swallowed])
        out.append(w.with_(sources=sources, tier=tier, score=max(s.score for s in same)))
    return sorted(out, key=lambda s: s.start)


def _remainders(ordered: list[Span], winners: list[Span]) -> list[Span]:
    """The parts of a losing detector span that no winner covers (where neither span has the evidence _by_evidence
    weighs, the longer wins and the shorter keeps what sticks out of it), so two detectors disagreeing on a boundary
    never unmask text either would mask. Parts shorter than two characters are dropped, and so is a span that
    overlaps a winner of its own type (that winner settled the boundary); an LLM span that loses is wrong, not cut."""
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
