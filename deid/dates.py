"""How dates are written in Chinese clinical notes: the forms, reading one back, and writing a moved date in the
form it was written in.

The DATE detector finds these forms; the masking operators `shift` and `year` read a span's text again with
`read_date`, so a date the LLM found is shifted the same way. Offsets are days; a date without a year takes its
year from the note's date.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from deid.text import CHINESE_DIGITS, ReaderView, normalize

_Y4 = r"(?:19|20)[0-9]{2}"
_M = r"(?:0?[1-9]|1[0-2])"
_D = r"(?:0?[1-9]|[12][0-9]|3[01])"
# A time of day after a date belongs to it (2023-03-15 14:30, 3月15日8时30分); a time alone is not a date.
_TIME = r"(?:\s?(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?|\s?(?:[01]?[0-9]|2[0-3])[时点](?:[0-5]?[0-9]分)?)?"
_CN_NUMERALS = "〇一二三四五六七八九"   # by value
_DIGIT_VALUES = str.maketrans(CHINESE_DIGITS)
_CN_DIGIT = _CN_NUMERALS + "零"
_CN_MONTH = r"(?:十[一二]?|[一二三四五六七八九])"
_CN_DAY = r"(?:三十一?|二?十[一二三四五六七八九]?|[一二三四五六七八九])"
# What follows a month-day written with numbers alone: a list mark or the verb of what was done that day.
_DATE_GOES_ON = r"(?![0-9])(?=[、，,。；;)）]|行|予|给|于|至|起|入|出|复|开|再)"
# Not a date after these: 近3月5日 reads as a span of time in some notes, 第 counts.
_NOT_AFTER = r"(?<![0-9\-/近约余共第])(?<![0-9]\.)"   # a full stop before is a sentence's end (放疗.2004年9月)

# Each form: a name and its pattern, with groups y, m, d (as written) and sep, dw (日 or 号) where the form has them.
FORMS: tuple[tuple[str, re.Pattern], ...] = tuple((name, re.compile(rx)) for name, rx in (
    # 日 is sometimes left out (2012年9月21肝...)
    ("ymd", _NOT_AFTER + rf"(?P<y>{_Y4}|[0-9]{{2}})\s?年\s?(?P<m>{_M})\s?月\s?(?P<d>{_D})"
            rf"(?:\s?(?P<dw>[日号])|(?![0-9]))" + _TIME),
    # the same separator may not go on (2023.3.15.1 is a version) but into the next date (2010.10.26.2010.11.23);
    # another may (2011.3.20-2011.7.20, a range)
    ("ymd_sep", r"(?<![0-9A-Za-z])" + rf"(?P<y>{_Y4})(?P<sep>[-/.])(?P<m>{_M})(?P=sep)(?P<d>{_D})"
                + r"(?![0-9]|(?P=sep)(?!(?:19|20)[0-9]{2}(?P=sep))[0-9])" + _TIME),
    # 16-12-26: a two-digit year, each part written with two digits
    ("ymd_sep2", r"(?<![0-9A-Za-z])" + r"(?P<y>[0-9]{2})(?P<sep>[-/.])(?P<m>0[1-9]|1[0-2])(?P=sep)"
                 r"(?P<d>0[1-9]|[12][0-9]|3[01])(?![0-9]|(?P=sep)[0-9])" + _TIME),
    ("ymd_cn", rf"(?P<y>[{_CN_DIGIT}]{{4}})年(?P<m>{_CN_MONTH})月(?P<d>{_CN_DAY})(?P<dw>[日号])"),
    ("ym", _NOT_AFTER + rf"(?P<y>{_Y4})\s?年\s?(?P<m>{_M})\s?月(?!\s?[0-9])"),
    ("ym_cn", rf"(?P<y>[{_CN_DIGIT}]{{4}})年(?P<m>{_CN_MONTH})月(?![{_CN_DIGIT}十])"),
    # 2015-12, 2015.12: not a number with a unit (2012.7u/ml) nor one of a list of decimals
    ("ym_sep", r"(?<![0-9A-Za-z])" + rf"(?P<y>{_Y4})(?P<sep>[-/.])(?P<m>{_M})"
               r"(?![0-9]|(?P=sep)[0-9]|\s?[A-Za-zμ%/×*])"),
    # (今年3月15日, 去年10月5日: a 年 after no number is a word, not the date's year)
    ("md", r"(?<![0-9.\-/近约余共第])(?<![0-9〇零一二三四五六七八九]年)"
           + rf"(?P<m>{_M})\s?月\s?(?P<d>{_D})\s?(?P<dw>[日号])" + _TIME),
    ("md_cn", rf"(?<![{_CN_DIGIT}十年])(?P<m>{_CN_MONTH})月(?P<d>{_CN_DAY})(?P<dw>[日号])"),
    # month and day without a year where a date goes on (10-6、11-3行化疗, 至11-13行, 03.14予): a dash, or a dot
    # between a 0-padded month and a two-digit day (12.14 alone is as often a value)
    ("md_dash", r"(?<![0-9A-Za-z.\-/])" + rf"(?P<m>{_M})(?P<sep>-)(?P<d>{_D})" + _DATE_GOES_ON),
    ("md_dot", r"(?<![0-9A-Za-z.\-/])" + r"(?P<m>0[1-9])(?P<sep>\.)(?P<d>0[1-9]|[12][0-9]|3[01])" + _DATE_GOES_ON),
    # a day of the month alone after 于/至/到 (于11日开始, 至27日); a count of days (连5日, 27日前) is none
    ("d", rf"(?<=[于至到])(?P<d>{_D})(?P<dw>[日号])(?!前|后|内|余|来|左右|以[上内来后前]|次|起|[0-9])"),
))
# Eight digits run together (20230315) are a date only where a date cue stands before them (the detector checks).
COMPACT = re.compile(rf"(?<![0-9])(?P<y>{_Y4})(?P<m>0[1-9]|1[0-2])(?P<d>0[1-9]|[12][0-9]|3[01])(?![0-9])")


@dataclass(frozen=True)
class WrittenDate:
    """A date as written: its parts (None where not written) and enough of its form to write another date so."""
    form: str
    year: int | None
    month: int | None      # None for a day of the month alone (于11日)
    day: int | None
    text: str              # the date as read (normalized), to copy its spacing and padding
    groups: dict           # the form's groups as written
    rest: str = ""         # a time of day after it, kept as it was

    def as_date(self, default_year: int) -> date:
        """The date itself; a missing year is `default_year`, a missing day the 15th (mid-month)."""
        year = self.year if self.year is not None else default_year
        day = self.day or 15
        try:
            return date(year, self.month, day)
        except ValueError:   # 29 February of a year that has none: the note's year was a guess
            return date(2000, self.month, day)


def _cn_number(text: str) -> int:
    """一 .. 三十一 (and a year digit by digit: 二〇二三)."""
    if "十" not in text:
        return int(text.translate(_DIGIT_VALUES))
    tens, _, ones = text.partition("十")
    return int(tens.translate(_DIGIT_VALUES) or 1) * 10 + int(ones.translate(_DIGIT_VALUES) or 0)


def _to_cn(n: int, digitwise: bool = False) -> str:
    if digitwise:
        return "".join(_CN_NUMERALS[int(c)] for c in str(n))
    tens, ones = divmod(n, 10)
    return (("" if tens == 1 else _CN_NUMERALS[tens]) + "十" if tens else "") + (_CN_NUMERALS[ones] if ones else "")


def _valid(y: int, m: int, d: int | None) -> bool:
    try:
        date(y, m, d or 1)
    except ValueError:
        return (m, d) == (2, 29)   # a year-less 29 February is read with a leap year
    return True


def read_match(form: str, m: re.Match, note_year: int | None = None) -> WrittenDate | None:
    """The date a form's match holds, or None when it is no real date (13月, 2月30日)."""
    g = {k: v for k, v in m.groupdict().items() if v is not None}
    cn = form.endswith("_cn")
    number = _cn_number if cn else int
    year = None
    if "y" in g:
        year = number(g["y"])
        if len(g["y"]) == 2:   # 23年3月5日: the century that puts it at most a year after the note
            pivot = (note_year or date.today().year) % 100 + 1
            year += 2000 if year <= pivot else 1900
    month = number(g["m"]) if "m" in g else None
    day = number(g["d"]) if "d" in g else None
    if not _valid(year or 2000, month or 1, day):
        return None
    end = m.end("dw") if "dw" in g else m.end("d") if "d" in g else m.end("m")
    return WrittenDate(form, year, month, day, m.group()[:end - m.start()], g, m.group()[end - m.start():])


def read_date(text: str, note_year: int | None = None) -> WrittenDate | None:
    """A span's text read as a date in one of FORMS (or COMPACT), or None."""
    norm = normalize(ReaderView.of(text).text).strip()
    for form, rx in (*FORMS, ("compact", COMPACT)):
        # a comma after it stands for what followed the date in the note (some forms look ahead for it)
        if (m := rx.match(norm + "，")) and m.end() == len(norm):
            return read_match(form, m, note_year)
    return None


def write_date(written: WrittenDate, moved: date) -> str:
    """`moved` written as `written` was: the same parts, separators, padding, numerals and time of day."""
    g = written.groups
    cn = written.form.endswith("_cn")
    # Month and day are padded to two digits when the date was: a 0 written before either (2023-03-15, 03月),
    # or, in numeric forms, both written with two digits (2023-12-15, 20231215).
    written_md = [g[k] for k in ("m", "d") if k in g]
    padded = (any(v.startswith("0") for v in written_md)
              or ("sep" in g or written.form == "compact") and all(len(v) == 2 for v in written_md))

    def part(name: str, value: int) -> str:
        if cn:
            return _to_cn(value, digitwise=name == "y")
        if name == "y":
            return f"{value % 100:02d}" if len(g["y"]) == 2 else f"{value:04d}"
        return f"{value:02d}" if padded else str(value)

    values = {"y": moved.year, "m": moved.month, "d": moved.day}
    out, pos, text = [], 0, written.text
    for name in ("y", "m", "d"):   # replace each written part in place, keeping what stands between them
        if name not in g:
            continue
        start = text.index(g[name], pos)
        out.append(text[pos:start] + part(name, values[name]))
        pos = start + len(g[name])
    return "".join(out) + text[pos:] + written.rest


def shift_date(written: WrittenDate, days: int, note_year: int | None) -> str | None:
    """The date moved by `days`, written in its own form (a date without a day moves its mid-month day), or None
    for a day of the month alone, which cannot be moved without its month."""
    if written.month is None:
        return None
    moved = written.as_date(note_year or 2000) + timedelta(days=days)
    return write_date(written, moved)


def year_of(written: WrittenDate) -> str | None:
    """The year alone (2023年), or None when the date has no year."""
    if written.year is None:
        return None
    return f"{_to_cn(written.year, digitwise=True) if written.form.endswith('_cn') else written.year}年"

