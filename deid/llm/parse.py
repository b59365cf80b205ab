"""From model output to spans in source offsets, for both output formats.

Markup (`患者<<张三: 姓名>>`): the markers are stripped to recover the text the model echoed, the echo is aligned
to the source character by character (the model may drop, add or alter characters), and each marker is mapped
back through the alignment. Every alteration is reported; a marker whose text cannot be mapped is dropped.

JSON (`[["NAME", "张三", 1], ...]`: type, text, tier, in the order of the text): each entity is located at the
first unused occurrence of its text at or after the previous entity's, so repeats need no context; the older long
form (`{"type", "text", "tier", "left"}`, the left context choosing among repeats) is read too. Code fences, prose
around the JSON, truncated or invalid JSON and entities that are not in the text are survived and counted, never
raised.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from deid.spans import LABELS_ZH, EntityType

# Other names a model writes for a type, besides its Chinese label and its English value.
_ALIASES = {
    EntityType.NAME: ("人名",),
    EntityType.ID_NUMBER: ("身份证",),
    EntityType.CONTACT: ("联系电话", "电话", "IP", "IP地址", "网址", "URL"),
    EntityType.HOSPITAL: ("医院",),
    EntityType.STD: ("性病",),
    EntityType.PREGNANCY: ("妊娠",),
    EntityType.DATE: ("时间", "出生日期"),
    EntityType.RECORD_ID: ("住院号", "病案号", "门诊号", "医保卡号"),
    EntityType.ACCOUNT: ("银行卡号", "银行账号"),
    EntityType.CERTIFICATE: ("护照号", "证件号码"),
    EntityType.VEHICLE: ("车牌号", "车辆"),
    EntityType.WORKPLACE: ("单位",),
}
_BY_LABEL = {**{v: k for k, v in LABELS_ZH.items()}, **{t.value: t for t in EntityType},
             **{alias: t for t, aliases in _ALIASES.items() for alias in aliases}}
# The label may be an English value (CERTIFICATE: 11 letters), so up to 12 characters.
_MARKER = re.compile(r"<<(.+?)[:：]\s*([^:：<>]{1,12}?)\s*(?:[:：]\s*([123]))?\s*>>", re.S)

# Output schema for constrained decoding of the JSON format (the OpenAI response_format): each entity a
# [type, text, tier] triple, the type one of the English values, so a model held to it cannot invent a type. A
# triple costs about half the tokens of an object with keys and a left context (bench/bench_llm.py).
ENTITY_SCHEMA = {"type": "array", "items": {"type": "array", "minItems": 3, "maxItems": 3, "prefixItems": [
    {"type": "string", "enum": [t.value for t in EntityType]}, {"type": "string"},
    {"type": "integer", "enum": [1, 2, 3]}]}}


@dataclass(frozen=True)
class Found:
    start: int
    end: int
    entity_type: EntityType
    tier: int | None
    text: str


@dataclass
class ParseReport:
    found: list[Found] = field(default_factory=list)
    dropped: int = 0            # entities that could not be placed in the source
    unknown_type: int = 0       # labels that name no entity type
    altered_chars: int = 0      # characters the echo changed, added or lost (markup)
    invalid: bool = False       # no usable output at all


def entity_type(label: str) -> EntityType | None:
    """The type a label names: Chinese as written; English in any case, words joined by space, - or _."""
    label = label.strip()
    return _BY_LABEL.get(re.sub(r"[\s\-]+", "_", label.upper()) if label.isascii() else label)


# -- markup -------------------------------------------------------------------------------------------
def parse_markup(source: str, output: str) -> ParseReport:
    report = ParseReport()
    output = _strip_fences(output)
    echo, marks = [], []          # echo text and (echo_start, echo_end, label, tier)
    pos = 0
    for m in _MARKER.finditer(output):
        echo.append(output[pos:m.start()])
        start = sum(map(len, echo))
        echo.append(m.group(1))
        marks.append((start, start + len(m.group(1)), m.group(2), m.group(3)))
        pos = m.end()
    echo.append(output[pos:])
    echoed = "".join(echo)
    if not echoed.strip():
        report.invalid = True
        return report
    to_source, altered, kept = _align(echoed, source)
    report.altered_chars = altered
    if 2 * kept < len(source.strip()):
        report.invalid = True       # less than half the note came back: this is not an echo of it
        return report
    for e_start, e_end, label, tier in marks:
        etype = entity_type(label)
        if etype is None:
            report.unknown_type += 1
            continue
        mapped = [to_source[i] for i in range(e_start, e_end) if to_source[i] is not None]
        if not mapped:
            report.dropped += 1
            continue
        s, e = min(mapped), max(mapped) + 1
        report.found.append(Found(s, e, etype, int(tier) if tier else None, source[s:e]))
    return report


def _align(echoed: str, source: str) -> tuple[list[int | None], int, int]:
    """For each echoed character, the source offset it stands for (None if the model added it); the number
    of characters altered, and of source characters echoed unchanged."""
    mapping: list[int | None] = [None] * len(echoed)
    matcher = SequenceMatcher(None, echoed, source, autojunk=False)
    altered = kept = 0
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            kept += a1 - a0
            for k in range(a1 - a0):
                mapping[a0 + k] = b0 + k
        elif tag == "replace":
            altered += max(a1 - a0, b1 - b0)
            for k in range(a1 - a0):   # a substituted run maps proportionally onto the source run
                mapping[a0 + k] = b0 + min(b1 - b0 - 1, k * (b1 - b0) // max(1, a1 - a0))
        else:
            altered += (a1 - a0) + (b1 - b0)
    return mapping, altered, kept


# -- JSON -----------------------------------------------------------------------------------------------
def parse_json(source: str, output: str) -> ParseReport:
    report = ParseReport()
    items = _json_items(_strip_fences(output))
    if items is None:
        report.invalid = True
        return report
    taken: set[tuple[int, int]] = set()
    previous = 0
    for item in items:
        entity = _entity(item)
        if entity is None:
            report.dropped += 1
            continue
        label, text, tier, left = entity
        etype = entity_type(label)
        if etype is None:
            report.unknown_type += 1
            continue
        place = _locate(source, text, left, taken, previous)
        if place is None:
            report.dropped += 1
            continue
        taken.add(place)
        previous = place[0]
        tier = int(tier) if str(tier) in ("1", "2", "3") else None
        report.found.append(Found(place[0], place[1], etype, tier, source[place[0]:place[1]]))
    return report


def _entity(item) -> tuple[str, str, object, str | None] | None:
    """(type, text, tier, left context or None) of a triple or of an object of the long form."""
    if isinstance(item, list) and len(item) >= 2:
        label, text, tier = (item + [None])[:3]
        left = None
    elif isinstance(item, dict):
        label, text, tier, left = item.get("type", ""), item.get("text"), item.get("tier"), item.get("left")
        left = str(left or "")
    else:
        return None
    return (str(label), text, tier, left) if isinstance(text, str) and text else None


def _locate(source: str, text: str, left: str | None, taken: set, previous: int) -> tuple[int, int] | None:
    """Where an entity's text is: with a left context (the long form), the occurrence whose preceding characters
    match it best; without one, the first occurrence at or after the previous entity's start. Either way an
    occurrence not yet used comes first."""
    starts = [m.start() for m in re.finditer(re.escape(text), source)]
    if not starts:
        return None

    def score(s):
        unused = (s, s + len(text)) not in taken
        if left is None:
            return unused, s >= previous, -s
        before = source[max(0, s - len(left)):s]
        common = 0
        for a, b in zip(reversed(before), reversed(left), strict=False):
            if a != b:
                break
            common += 1
        return unused, common, -s
    best = max(starts, key=score)
    return best, best + len(text)


def _json_items(text: str):
    """The entity list in the output: the first JSON array (or an object holding one), repaired if cut off."""
    start = min([i for i in (text.find("["), text.find("{")) if i >= 0], default=-1)
    if start < 0:
        return None
    body = text[start:]
    for candidate in (body, _balanced_prefix(body), _repair_truncated(body)):
        if not candidate:
            continue
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        if isinstance(data, list) and data and isinstance(data[0], str):
            data = [data]          # one triple, not inside a list
        return data if isinstance(data, list) else None
    return None


def _balanced_prefix(body: str) -> str | None:
    """The first complete JSON value, ignoring prose after it."""
    depth, in_str, esc = 0, False, False
    for i, ch in enumerate(body):
        if in_str:
            esc = (ch == "\\") and not esc
            if ch == '"' and not esc:
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return body[: i + 1]
    return None


def _repair_truncated(body: str) -> str | None:
    """Output cut off mid-list: keep the complete entities (objects or triples) and close the array."""
    if not body.startswith("["):
        return None
    last = max(body.rfind("}"), body.rfind("]"))
    return body[: last + 1] + "]" if last > 0 else "[]"


def _strip_fences(text: str) -> str:
    text = text.strip()
    m = re.search(r"```(?:json|text|markdown)?\s*\n(.*?)(?:```|$)", text, re.S)
    return m.group(1) if m else text
