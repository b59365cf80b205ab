"""RECORD_ID, ACCOUNT, CERTIFICATE, VEHICLE: numbers that identify a record, an account, a document or a car.

Most are numbers like any other and are told apart by the cue before them (住院号, 医保卡号, 银行卡号, 护照号 ...,
resources/lexicons/identifier_cues.tsv; the longest cue at a place decides its type). Some carry their own
structure and need no cue: a UnionPay card (62, 16-19 digits, a valid Luhn digit), a passport (E or G and eight
digits), a licence plate (a region's character, a letter, five characters; six for new-energy plates), a VIN
(17 characters with its ISO 3779 check digit). A value after a cue never runs into a date or a phone that follows
it: groups joined by spaces are taken only while each is short (1234 5678 9012).
"""
from __future__ import annotations

import re

import ahocorasick

from deid.detectors.base import Component, Document, Taken
from deid.resources import Resources, alternation, combine_digests
from deid.spans import EntityType, Span, make_span

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_VALUE = {
    # letters, digits, hyphens and dots (46920.15); short groups may be joined by single spaces; an account 12 to
    # 25 digits
    EntityType.RECORD_ID: re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]|"
                                     r"\.(?=[A-Za-z0-9]))*(?: [A-Za-z0-9\-]{1,4}(?![A-Za-z0-9\-]))*"),
    EntityType.ACCOUNT: re.compile(r"[0-9](?:[ \-]?[0-9]){11,24}(?![0-9])"),
    # 军字第1234567号, E12345678, C01X00T47 (letters among the digits, as German and French passports), 72 1234567
    EntityType.CERTIFICATE: re.compile(r"(?:[\u4e00-\u9fa5]{1,2}字第)?(?=[A-Za-z0-9]*[0-9])[A-Za-z0-9]{2,20}"
                                       r"(?: [0-9]{5,10}(?![0-9]))?(?:号(?![码]))?"),
}
_UNIONPAY = re.compile(r"(?<![0-9])62[0-9]{2}(?:[ \-]?[0-9]){12,15}(?![0-9])")
_PASSPORT = re.compile(r"(?<![A-Za-z0-9])[EG][0-9]{8}(?![A-Za-z0-9])|"
                       r"(?<![A-Za-z0-9])E[A-HJ-NP-Z][0-9]{7}(?![A-Za-z0-9])")
_VIN = re.compile(r"(?<![A-Za-z0-9])[A-HJ-NPR-Z0-9]{17}(?![A-Za-z0-9])")
_VIN_VALUES = {**{str(d): d for d in range(10)},
               **dict(zip("ABCDEFGH", range(1, 9), strict=True)), **dict(zip("JKLMN", range(1, 6), strict=True)),
               "P": 7, "R": 9,
               **dict(zip("STUVWXYZ", range(2, 10), strict=True))}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def vin_valid(vin: str) -> bool:
    """ISO 3779 / GB 16735 check digit in the ninth place (X for 10)."""
    total = sum(_VIN_VALUES[c] * w for c, w in zip(vin, _VIN_WEIGHTS, strict=True))
    check = total % 11
    return vin[8] == ("X" if check == 10 else str(check))


class IdentifierDetector(Component):
    name = "identifiers"
    entity_types = (EntityType.RECORD_ID, EntityType.ACCOUNT, EntityType.CERTIFICATE, EntityType.VEHICLE)
    uses = ("resources",)

    def __init__(self, resources: Resources | None = None):
        files = resources or Resources.packaged()
        cues = files.load("lexicons/identifier_cues.tsv")
        regions = files.load("lexicons/plate_regions.txt")
        tails = files.load("lexicons/identifier_cue_tails.tsv")
        self.version = combine_digests({"cues": cues.digest, "regions": regions.digest, "tails": tails.digest})
        # After a cue: its 号/号码/编号, a colon, 为/是; then the value.
        self._cue_tail = re.compile(rf"(?:{alternation(tails.words('number'))})?\s?"
                                    rf"(?:[:]|{alternation(tails.words('copula'))})?\s?")
        self._cues = ahocorasick.Automaton()   # one pass over the note finds every cue (ID号 as id号 too)
        for row in cues.rows():
            cue = row["cue"].translate(_ASCII_LOWER)
            self._cues.add_word(cue, (len(cue), EntityType(row["type"])))
        self._cues.make_automaton()
        region = "[" + "".join(regions.lines()) + "]"
        letter = "[A-HJ-NP-Z]"
        self._plate = re.compile(
            rf"{region}{letter}[·• ]?(?:[DF][A-HJ-NP-Z0-9][0-9]{{4}}|[0-9]{{5}}[DF]|"
            rf"(?=[A-HJ-NP-Z]*[0-9])[A-HJ-NP-Z0-9]{{5}}"
            rf"[挂学警领使]?)(?![A-Za-z0-9])")

    def detect(self, doc: Document) -> list[Span]:
        norm = doc.norm
        spans: list[Span] = []
        taken = Taken(len(norm))

        def add(start: int, end: int, entity_type: EntityType, score: float, why: str) -> None:
            if end - start >= 4 and taken.claim(start, end):
                spans.append(make_span(doc.text, start, end, entity_type, 1, "pattern", score, why))

        for cue_end, entity_type in self._cues_in(norm):
            value = _VALUE[entity_type].match(norm, self._cue_tail.match(norm, cue_end).end())
            if not value or not any(c.isdigit() for c in value.group()):
                continue
            end = value.end()
            while norm[end - 1] in " -":
                end -= 1
            add(value.start(), end, entity_type, 0.95, f"{entity_type.value.lower()}.cue")
        for m in _UNIONPAY.finditer(norm):
            if luhn_valid(re.sub(r"[ \-]", "", m.group())):
                add(*m.span(), EntityType.ACCOUNT, 0.85, "account.unionpay_luhn")
        for m in _PASSPORT.finditer(norm):
            add(*m.span(), EntityType.CERTIFICATE, 0.85, "certificate.passport")
        for m in self._plate.finditer(norm):
            add(*m.span(), EntityType.VEHICLE, 0.9, "vehicle.plate")
        for m in _VIN.finditer(norm):
            vin = m.group()
            if any(c.isalpha() for c in vin) and any(c.isdigit() for c in vin) and vin_valid(vin):
                add(*m.span(), EntityType.VEHICLE, 0.9, "vehicle.vin")
        return spans

    def _cues_in(self, norm: str) -> list[tuple[int, EntityType]]:
        """(end, type) of each cue in the note, the longest where cues overlap (医保卡号, not its 卡号)."""
        found = sorted(((end + 1 - n, end + 1, t) for end, (n, t) in self._cues.iter(norm.translate(_ASCII_LOWER))),
                       key=lambda c: (c[0], -c[1]))
        out, reach = [], -1
        for start, end, entity_type in found:
            if start >= reach:
                out.append((end, entity_type))
                reach = end
        return out
