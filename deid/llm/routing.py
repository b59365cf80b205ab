"""Routing: the segments of a note that the LLM stage sends to the model, instead of every chunk.

The detectors settle most of a note exactly (IDs, phones, dictionary hospitals, cued names, official disease names);
what the model adds lies in a small part of it. A sentence is routed when it holds a trigger that no detector span
of a settling type covers:
- person: a PER token of the NER model that no NAME span overlaps; a surname + given-name candidate (the name
  detector's own test) outside every span and clinical word; two or more transliteration characters in a row, or a
  word in Latin letters, outside every span and clinical word (foreign names, handles); a NAME span right after a
  surname character no span covers (its start is in doubt);
- prose: a sentence of free prose, with no clinical word at all, where the detectors' clinical cues do not reach;
- place: a place ending or a spatial word that no ADDRESS, HOSPITAL or WORKPLACE span covers; a health-facility
  ending no HOSPITAL span covers; an ADDRESS that stops at county level or above with unexplained text after it;
- sensitive: a morpheme of an STD or pregnancy fact that no STD or PREGNANCY span covers, or such a span inside a
  longer clinical word (结扎 of 疝囊高位结扎术).
The words are data (resources/lexicons/llm_routing.tsv, which names the lexicons it reuses). A routed sentence goes
whole, as the context to judge it; a short piece beside it (under `_MIN_CONTEXT` characters) joins it; routed
sentences that touch are merged, up to the chunk size. Segments are Chunks in note offsets, so the model's spans map
back to the note as chunks' do.
"""
from __future__ import annotations

import re

from deid.detectors.base import Document
from deid.detectors.name import NameDetector
from deid.llm.chunking import Chunk
from deid.resources import Resources, alternation, combine_digests
from deid.spans import EntityType, Span
from deid.text import is_cjk, sentences

RULES = "lexicons/llm_routing.tsv"
PLACE_ENDINGS = "lexicons/place_endings.tsv"
FACILITY_ENDINGS = "lexicons/health_facility_endings.txt"
TRANSLITERATION = "lexicons/transliteration_chars.txt"

_PLACE_TYPES = frozenset({EntityType.ADDRESS, EntityType.HOSPITAL, EntityType.WORKPLACE})
_SENSITIVE_TYPES = frozenset({EntityType.STD, EntityType.PREGNANCY})
_MIN_CONTEXT = 12     # a sentence shorter than this is no context of its own: it goes with its routed neighbour
_PROSE_MIN = 8        # a prose sentence shorter than this (a heading, a field) is not routed for being prose
_LATIN_WORD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*(?![A-Za-z0-9])")


class Router:
    def __init__(self, resources: Resources | None = None, names: NameDetector | None = None):
        """names: the pipeline's name detector, whose test of a surname + given-name candidate the surname trigger
        uses (built here when None)."""
        resources = resources or Resources.packaged()
        self._names = names or NameDetector(resources=resources)
        files = {n: resources.load(n) for n in (RULES, PLACE_ENDINGS, FACILITY_ENDINGS, TRANSLITERATION)}
        words: dict[str, list[str]] = {}
        for row in files[RULES].rows():
            words.setdefault(row["trigger"], []).append(row["word"])
        self._sensitive = re.compile(alternation(words["sensitive"]), re.I)
        self._places = re.compile(alternation([r["word"] for r in files[PLACE_ENDINGS].rows()
                                               if len(r["word"]) > 1 or "anchor" in r["uses"]] + words["place"]))
        self._facilities = re.compile(alternation(files[FACILITY_ENDINGS].lines() + words.get("facility", [])))
        self._not_name = re.compile(alternation(words["not_name"]), re.I)
        self._not_sensitive = re.compile(alternation(words["not_sensitive"]), re.I)
        self._latin_not_name = {w.lower() for w in words["latin"]}
        self._before_term = set(words["before_term"])
        translit = "".join(files[TRANSLITERATION].lines())
        self._transliterated = re.compile(f"[{re.escape(translit)}]{{2,}}")
        self.version = combine_digests({**{n: f.digest for n, f in files.items()}, "names": self._names.version})

    def segments(self, text: str, spans: list[Span], doc: Document | None = None,
                 max_chars: int = 1500) -> list[Chunk]:
        """The routed segments of a note, in order, none longer than max_chars."""
        doc = doc or Document(text)
        self._names.vocabulary.of(doc)      # the clinical words, when no detector has looked them up yet
        hits = self.triggers(doc, spans)
        pieces = sentences(text, max_len=max_chars)
        routed = [any(s < he and hs < e for hs, he, _ in hits) or self._prose(doc, s, e) for s, e in pieces]
        beside = [bool(k and routed[k - 1] or k + 1 < len(pieces) and routed[k + 1]) for k in range(len(pieces))]
        routed = [r or (b and e - s < _MIN_CONTEXT) for r, b, (s, e) in zip(routed, beside, pieces, strict=True)]
        out: list[Chunk] = []
        for (s, e), take in zip(pieces, routed, strict=True):
            if not take or not text[s:e].strip():
                continue
            if out and out[-1].end == s and e - out[-1].start <= max_chars:
                s = out.pop().start
            out.append(Chunk(s, e, text[s:e]))
        return out

    def _prose(self, doc: Document, start: int, end: int) -> bool:
        """Free prose: a sentence of some length, mostly Chinese, without a clinical word."""
        piece = doc.norm[start:end]
        cjk = sum(map(is_cjk, piece))
        return (cjk >= _PROSE_MIN and 2 * cjk >= len(piece.strip())
                and not (doc.clinical and doc.clinical.starting_in(start, end)))

    def triggers(self, doc: Document, spans: list[Span]) -> list[tuple[int, int, str]]:
        """(start, end, kind) of every trigger in the note that no span of a settling type covers."""
        n = len(doc.text)
        covered = _coverage(n, spans)
        names = _coverage(n, [s for s in spans if s.entity_type is EntityType.NAME])
        places = _coverage(n, [s for s in spans if s.entity_type in _PLACE_TYPES])
        hospitals = _coverage(n, [s for s in spans if s.entity_type is EntityType.HOSPITAL])
        sensitive = _coverage(n, [s for s in spans if s.entity_type in _SENSITIVE_TYPES])
        clinical = bytearray(n)
        for s, e in doc.clinical or ():
            clinical[s:e] = b"\x01" * (e - s)
        norm = doc.norm
        free = _free(covered, clinical)

        not_name = bytearray(n)
        for m in self._not_name.finditer(norm):
            not_name[m.start():m.end()] = b"\x01" * (m.end() - m.start())
        people = [(s, e) for s, e in doc.ner_of("PER") if not any(names[s:e])]
        for s in range(n):
            length = self._names.surname_len(norm[s:s + 2]) if is_cjk(norm[s]) else 0
            for e in (s + length + 1, s + length + 2) if length else ():
                if self._names.plausible(norm[s:e], norm[e:e + 4]) and free(s, e):
                    people.append((s, e))
                    break
        people += [m.span() for m in self._transliterated.finditer(norm) if free(*m.span())]
        people += [m.span() for m in _LATIN_WORD.finditer(norm)
                   if m.group().lower() not in self._latin_not_name and free(*m.span())]
        hits = [(s, e, "person") for s, e in people if not not_name[s]]
        for s in spans:     # a name found after a surname character the detectors left out (向|宁鑫): where it starts
            if (s.entity_type is EntityType.NAME and s.start and not covered[s.start - 1]
                    and self._names.surname_len(norm[s.start - 1]) == 1):
                hits.append((s.start - 1, s.end, "person"))

        hits += [(*m.span(), "place") for m in self._places.finditer(norm) if not any(places[m.start():m.end()])
                 and not any(clinical[m.start():m.end()])]
        hits += [(*m.span(), "place") for m in self._facilities.finditer(norm)
                 if not any(hospitals[m.start():m.end()])]
        for s in spans:     # an address that stops at county level or above, then words no span or vocabulary explains
            if s.entity_type is EntityType.ADDRESS and s.tier == 2 and not any(
                    o.entity_type in _PLACE_TYPES - {EntityType.ADDRESS} and o.start <= s.start and s.end <= o.end
                    for o in spans):
                after = s.end
                while after < n and covered[after]:
                    after += 1
                if after < n and is_cjk(norm[after]) and not clinical[after]:
                    hits.append((s.start, after + 1, "place"))

        not_sensitive = bytearray(n)
        for m in self._not_sensitive.finditer(norm):
            not_sensitive[m.start():m.end()] = b"\x01" * (m.end() - m.start())
        hits += [(*m.span(), "sensitive") for m in self._sensitive.finditer(norm)
                 if not any(sensitive[m.start():m.end()]) and not any(clinical[m.start():m.end()])
                 and not not_sensitive[m.start()]]
        for s in spans:     # a term inside a longer one, which the detectors did not read whole
            before = norm[s.start - 1] if s.start else ""
            if (s.entity_type in _SENSITIVE_TYPES and before and is_cjk(before) and not covered[s.start - 1]
                    and before not in self._before_term):
                hits.append((s.start - 1, s.end, "sensitive"))
        return sorted(hits)


def _coverage(length: int, spans) -> bytearray:
    out = bytearray(length)
    for s in spans:
        out[s.start:s.end] = b"\x01" * (min(s.end, length) - s.start)
    return out


def _free(covered: bytearray, clinical: bytearray):
    """Whether [s, e) lies outside every span and every clinical word."""
    return lambda s, e: not any(covered[s:e]) and not any(clinical[s:e])
