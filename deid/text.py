"""Length-preserving normalization and small text helpers.

Detectors match on a normalized copy of the note whose every character sits at the same code-point
offset as in the original, so offsets found on the copy are offsets in the original.
"""
from __future__ import annotations

import re

# Full-width ASCII (U+FF01..U+FF5E) to ASCII, ideographic space to space, dash variants to '-'.
_TABLE = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_TABLE[0x3000] = ord(" ")
for _dash in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\uFE58\uFE63\u30FC\u2500":
    _TABLE[ord(_dash)] = ord("-")
_TABLE[ord("\u00A0")] = ord(" ")
# Control characters read as spaces, so a stray \x00 between a cue and a name does not hide the name.
for _cp in [*range(0x00, 0x20), 0x7F]:
    if chr(_cp) not in "\t\n\r":
        _TABLE[_cp] = ord(" ")
_SURROGATE = re.compile("[\ud800-\udfff]")


def normalize(text: str) -> str:
    """Same length as `text`: full-width digits/letters/punctuation become ASCII."""
    out = _SURROGATE.sub(" ", text.translate(_TABLE))   # lone surrogates (bad decodes) read as spaces too
    assert len(out) == len(text)
    return out


def is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


_SENTENCE_END = re.compile(r"[。！？!?；;\n]+")


def sentences(text: str, max_len: int = 120) -> list[tuple[int, int]]:
    """Sentence-ish (start, end) pieces, each at most max_len code points, covering the text."""
    pieces, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        pieces.append((start, m.end()))
        start = m.end()
    if start < len(text):
        pieces.append((start, len(text)))
    out = []
    for s, e in pieces:
        while e - s > max_len:
            cut = _soft_cut(text, s, s + max_len)
            out.append((s, cut))
            s = cut
        if e > s:
            out.append((s, e))
    return out


def _soft_cut(text: str, start: int, limit: int) -> int:
    """Cut before limit at a comma or space when there is one in the second half."""
    for i in range(limit - 1, start + (limit - start) // 2, -1):
        if text[i] in "，,、 \t":
            return i + 1
    return limit


_CLAUSE = re.compile(r"[^，。；！？,;!?\n\r：:、\s]+")


def clauses(text: str, max_len: int = 120) -> list[tuple[int, int]]:
    """Runs of text between punctuation, each at most max_len code points (NER's unit of work)."""
    out = []
    for m in _CLAUSE.finditer(text):
        s, e = m.span()
        while e - s > max_len:
            out.append((s, s + max_len))
            s += max_len
        out.append((s, e))
    return out
