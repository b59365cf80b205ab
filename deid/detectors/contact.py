"""CONTACT: phones (mobile, landline, 400/800), e-mail, URLs, IPv4 and IPv6 addresses, and QQ / WeChat ids where
context names them.

Patterns run on the normalized text, so full-width digits, full-width parentheses and dash variants match
like their ASCII forms. Numbers that a record cue introduces (住院号, 病案号, 床 ...) are not contacts.
"""
from __future__ import annotations

import ipaddress
import re

from deid.detectors.base import Component, Document, Taken, left_context, right_context
from deid.resources import Resources, alternation
from deid.spans import EntityType, Span, make_span

_SEP = r"[ \-.]?"
_NOT_DIGIT_BEFORE = r"(?<![0-9])"   # letters may touch a number (mobile13812345678)
_NOT_DIGIT_AFTER = r"(?![0-9])"
_COUNTRY = r"(?:(?:\+|00)\s?86[ \-]?)"
# Area codes in use: 010, 020-029, and four-digit 03xx-09xx.
_AREA = r"0(?:10|2\d|[3-9]\d{2})"

_MOBILE = re.compile(_NOT_DIGIT_BEFORE + _COUNTRY + r"?1[3-9]\d" + _SEP + r"\d{4}" + _SEP + r"\d{4}" + _NOT_DIGIT_AFTER)
# A mobile grouped some other way (13 812 345 678, 1381-234-5678): one kind of separator, at most four of them.
_MOBILE_GROUPED = re.compile(_NOT_DIGIT_BEFORE + r"1[ .\-]?[3-9](?:[ .\-]?\d){9}" + _NOT_DIGIT_AFTER)


def _landline(extension: str) -> re.Pattern:
    """A landline with its area code, and an extension after one of the `extension` words or a hyphen."""
    return re.compile(
        _NOT_DIGIT_BEFORE
        + r"(?:" + _COUNTRY + r"\(?0?(?:10|2\d|[3-9]\d{2})\)?|\(" + _AREA + r"\)|" + _AREA + r")"
        + r"\s?[ \-.]?\s?(?:\d{4}" + _SEP + r"\d{3,4}|\d{3}" + _SEP + r"\d{4})"
        + rf"(?:\s?(?:{extension}|-)\s?\d{{1,5}})?" + _NOT_DIGIT_AFTER)


_SERVICE = re.compile(_NOT_DIGIT_BEFORE + r"[48]00" + _SEP + r"\d{3}" + _SEP + r"\d{4}" + _NOT_DIGIT_AFTER)
# Boundaries are ASCII word characters: a Chinese character may touch an address (患者邮箱zhangsan@...), as
# Python's \w (which matches Chinese) would refuse. The @ and the dots may be spelt out, as people do to hide an
# address from harvesters: （at）, [at], " at ", (dot).
_AT = r"(?:@|\s?[(\[【]\s?(?:at|AT)\s?[)\]】]\s?| (?:at|AT) )"
_DOT = r"(?:\.|\s?[(\[【]\s?(?:dot|DOT)\s?[)\]】]\s?| (?:dot|DOT) )"
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}" + _AT
                    + r"[A-Za-z0-9-]+(?:" + _DOT + r"[A-Za-z0-9-]+)*" + _DOT + r"[A-Za-z]{2,}(?![A-Za-z0-9])")
# A URL with its scheme or www.; it ends where ASCII does (a Chinese character or space), less closing punctuation.
_URL = re.compile(r"(?<![A-Za-z0-9])(?:(?:https?|ftp)://|www\.)[A-Za-z0-9\-._~%!$&'*+,;=:@/?#\[\]]+", re.I)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = re.compile(rf"(?<![0-9A-Za-z.])(?:{_OCTET}\.){{3}}{_OCTET}(?![0-9]|\.[0-9])")
# IPv6 candidates: runs of letters, digits, colons and dots holding "::" or seven colons; the address is the run or
# what follows a colon in it (IPv6:fe80::1, as 终端IPv6：fe80::1 normalizes); ipaddress decides (12:30:45 is none).
_IPV6_RUN = re.compile(r"(?<![0-9A-Za-z:.])[0-9A-Za-z:.]*:[0-9A-Za-z:.]*(?![0-9A-Za-z:.])")
_LOCAL = re.compile(_NOT_DIGIT_BEFORE + r"\d{3,4}" + _SEP + r"\d{4}" + _NOT_DIGIT_AFTER)
# Numbers written together with nothing between them (1381234567802161234567): a digit run that splits wholly
# into mobiles and landlines with area codes is those numbers.
_RUN = re.compile(r"(?<![0-9])[0-9]{20,36}(?![0-9])")
_PIECE = re.compile(r"1[3-9][0-9]{9}|0(?:10|2[0-9])[0-9]{8}|0[3-9][0-9]{2}[0-9]{7,8}")


class ContactDetector(Component):
    name = "contact"
    entity_types = (EntityType.CONTACT,)
    uses = ("resources",)

    def __init__(self, resources: Resources | None = None):
        cues = (resources or Resources.packaged()).load("lexicons/contact_cues.tsv")
        self.version = cues.digest
        self._landline = _landline(alternation(cues.words("extension")))
        # Local numbers without area code only right after a phone cue.
        self._phone_cue = re.compile(rf"(?:{alternation(cues.words('phone'))})(?:号码|号)?\s*[:：]?\s*$")
        # Numbers a record cue introduces identify the record, and a measure or count after a number makes it
        # none: not contacts.
        self._record_cue = re.compile(rf"(?:{alternation(cues.words('record'))}|No\.?)\s*[:：]?\s*$", re.I)
        self._measure_after = re.compile(rf"^\s*(?:{alternation(cues.words('measure'))}|/(?![0-9(+]))")
        # Where a dotted quad is a version, not an address (客户端版本 5.2.0.1).
        self._version_before = re.compile(rf"(?:{alternation(cues.words('version'))})\s?[:]?\s?$", re.I)
        self._qq = re.compile(rf"(?:{alternation(cues.words('qq'))})\s*(?:号码|号)?\s*[:：]?\s*(\d{{5,11}})(?!\d)")
        self._wechat = re.compile(rf"(?:{alternation(cues.words('wechat'))})\s*(?:号|ID|id)?\s*[:：]?\s*"
                                  r"([A-Za-z][A-Za-z0-9_-]{5,19}|1[3-9]\d{9})(?![A-Za-z0-9_-])")

    def detect(self, doc: Document) -> list[Span]:
        norm, text = doc.norm, doc.text
        found: list[Span] = []
        taken = Taken(len(text))   # the first pattern to take a character wins

        def add(start: int, end: int, score: float, why: str):
            if taken.claim(start, end):
                found.append(make_span(text, start, end, EntityType.CONTACT, 1, "pattern", score, why))

        def is_record_number(start: int, end: int) -> bool:
            return bool(self._record_cue.search(left_context(norm, start, 10)) or
                        self._measure_after.match(right_context(norm, end, 12)))

        for m in _EMAIL.finditer(norm):
            add(m.start(), m.end(), 0.99, "email")
        # (each scan only where its mark is in the note: most notes hold no URL or IPv6 address)
        for m in _URL.finditer(norm) if "://" in norm or "www." in norm.lower() else ():
            end = m.end()
            while norm[end - 1] in ".,;:!?)]'":
                end -= 1
            add(m.start(), end, 0.95, "url")
        for m in _IPV4.finditer(norm):
            if not self._version_before.search(left_context(norm, m.start(), 10)):
                add(m.start(), m.end(), 0.9, "ip.v4")
        for m in _IPV6_RUN.finditer(norm) if "::" in norm or norm.count(":") >= 7 else ():
            if (at := _ipv6_in(m.group())) is not None:
                add(m.start() + at, m.end(), 0.9, "ip.v6")
        for rx, why, score in ((_MOBILE, "phone.mobile", 0.97), (self._landline, "phone.landline", 0.93),
                               (_SERVICE, "phone.service", 0.9)):
            for m in rx.finditer(norm):
                start, end = m.start(), m.end()
                while end > start and norm[end - 1] in " -.":
                    end -= 1
                if not is_record_number(start, end):
                    add(start, end, score, why)
        for m in _MOBILE_GROUPED.finditer(norm):
            separators = [c for c in m.group() if not c.isdigit()]
            if len(set(separators)) == 1 and len(separators) <= 4 and not is_record_number(*m.span()):
                add(m.start(), m.end(), 0.9, "phone.mobile_grouped")
        for rx, why in ((self._qq, "im.qq"), (self._wechat, "im.wechat")):
            for m in rx.finditer(norm):
                add(m.start(1), m.end(1), 0.95, why)
        for m in _RUN.finditer(norm):
            for start, end in _split_run(m.group()):
                add(m.start() + start, m.start() + end, 0.9, "phone.run")
        for m in _LOCAL.finditer(norm):
            if self._phone_cue.search(left_context(norm, m.start(), 12)):
                add(m.start(), m.end(), 0.9, "phone.local_after_cue")
        return found


def _split_run(run: str) -> list[tuple[int, int]]:
    """(start, end) of the phone numbers a digit run consists of, or nothing when it is not wholly numbers."""
    ways = {0: []}   # position -> pieces that cover the run up to it
    for pos in range(len(run)):
        if pos not in ways:
            continue
        for length in (11, 12):
            piece = run[pos:pos + length]
            if len(piece) == length and _PIECE.fullmatch(piece) and pos + length not in ways:
                ways[pos + length] = ways[pos] + [(pos, pos + length)]
    return ways.get(len(run), [])


def _ipv6_in(run: str) -> int | None:
    """Where the IPv6 address that ends `run` begins: at its start or after one of its single colons."""
    starts = [0] + [i + 1 for i, c in enumerate(run) if c == ":" and run[i - 1:i] != ":" and run[i + 1:i + 2] != ":"]
    for start in starts:
        candidate = run[start:]
        if ("::" in candidate or candidate.count(":") == 7) and len(candidate.replace(":", "")) >= 2:
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            return start
    return None
