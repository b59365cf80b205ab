"""What the detectors read: the reader's view of a note, its length-preserving normalization, text helpers.

Two steps, so that a value written to evade a detector reads to it as it reads to a person:
- `ReaderView` drops what a reader does not see or skips: format characters (zero-width spaces and joiners,
  bidi marks, the soft hyphen, the BOM), variation selectors, Hangul fillers, and the separators of a number
  spelled one digit at a time (1 3 8 1 2 3 4 ...). The pipeline analyses the view and maps every span back to
  the note, where it covers the dropped characters inside it.
- `normalize` keeps every character at its offset: full-width forms, dashes and controls become ASCII, and a
  long number written in Chinese digits (一三八一二三四五六七八, 138一二三四5678) becomes ASCII digits.
"""
from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

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
# Digits as Chinese writes them, 幺 as a phone number is read aloud; 〇 and 零 both zero.
CHINESE_DIGITS = {"〇": "0", "零": "0", "一": "1", "幺": "1", "二": "2", "三": "3", "四": "4", "五": "5",
                  "六": "6", "七": "7", "八": "8", "九": "9"}
_DIGIT_CHAR = "0-9" + "".join(CHINESE_DIGITS)
# Seven digit characters or more, with at most one space, dot or hyphen between two of them, holding a Chinese
# digit: a number (phone, ID, record number). Shorter runs (二〇二三, 三四) stay words.
_CHINESE_NUMBER = re.compile(rf"[{_DIGIT_CHAR}](?:[ .\-]?[{_DIGIT_CHAR}]){{6,}}")
_HAS_CHINESE_DIGIT = re.compile("[" + "".join(CHINESE_DIGITS) + "]")
_CHINESE_DIGIT_TABLE = str.maketrans(CHINESE_DIGITS)


def _ascii_digits(m: re.Match) -> str:
    run = m.group()
    return run.translate(_CHINESE_DIGIT_TABLE) if _HAS_CHINESE_DIGIT.search(run) else run


def normalize(text: str) -> str:
    """Same length as `text`: full-width digits/letters/punctuation become ASCII, Chinese-digit numbers digits."""
    out = _SURROGATE.sub(" ", text.translate(_TABLE))   # lone surrogates (bad decodes) read as spaces too
    if _HAS_CHINESE_DIGIT.search(out):
        out = _CHINESE_NUMBER.sub(_ascii_digits, out)
    assert len(out) == len(text)
    return out


@lru_cache(maxsize=1)
def _invisible() -> re.Pattern:
    """Characters that render as nothing: Unicode's format category (Cf) as this Python knows it, plus the
    variation selectors, the combining grapheme joiner, Mongolian variation selectors and Hangul fillers."""
    ranges, start, prev = [], None, None
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)) == "Cf":
            if start is None or cp != prev + 1:
                if start is not None:
                    ranges.append((start, prev))
                start = cp
            prev = cp
    ranges.append((start, prev))
    ranges += [(0xFE00, 0xFE0F), (0xE0100, 0xE01EF), (0x034F, 0x034F), (0x180B, 0x180F), (0x115F, 0x1160),
               (0x3164, 0x3164), (0xFFA0, 0xFFA0)]
    return re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in ranges) + "]")


# A number spelled one digit at a time with the same separator between every two (1 3 8 1 2 3 4 5 6 7 8,
# 1-3-8-...): seven digits or more. The separators go; the digits read as one number.
_SPELLED_DIGITS = re.compile(rf"(?<![{_DIGIT_CHAR}])[{_DIGIT_CHAR}]([ .\-])[{_DIGIT_CHAR}](?:\1[{_DIGIT_CHAR}]){{5,}}"
                             rf"(?![{_DIGIT_CHAR}])")


@dataclass(frozen=True)
class ReaderView:
    """A note as a reader sees it. `text` is the view; `origin[i]` is the offset in the note of view character
    i (None when the view is the note itself)."""
    text: str
    origin: tuple[int, ...] | None = None

    @classmethod
    def of(cls, note: str) -> ReaderView:
        drop = {m.start() for m in _invisible().finditer(note)}
        if drop:
            note_left = [i for i in range(len(note)) if i not in drop]
            view = "".join(note[i] for i in note_left)
        else:
            note_left, view = None, note
        spelled = [m for m in _SPELLED_DIGITS.finditer(view)]
        if spelled:
            gone = {i for m in spelled for i in range(m.start() + 1, m.end(), 2)}
            kept = [i for i in range(len(view)) if i not in gone]
            view = "".join(view[i] for i in kept)
            note_left = [note_left[i] for i in kept] if note_left else kept
        return cls(view, None if note_left is None else tuple(note_left))

    def span_in_note(self, start: int, end: int) -> tuple[int, int]:
        """The note's (start, end) of view[start:end]: from its first to its last character, so the characters
        the view dropped inside it are covered."""
        if self.origin is None:
            return start, end
        return self.origin[start], self.origin[end - 1] + 1


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
