"""Masking: operators chosen per entity type by a policy level. Knows nothing of how a span was found.

Level k masks spans with tier <= k. Text outside masked spans is copied unchanged. A policy file holds presets
(`default`: every type deid finds; `paper`: the paper's seven); a run uses one.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import yaml

from deid.dates import read_date, shift_date, year_of
from deid.resources import digest_bytes
from deid.spans import EntityType, NoteContext, Span
from deid.text import normalize

SECRET_ENV = "DEID_SECRET"
OPERATORS = ("tag", "redact", "mask_chars", "surrogate", "generalize", "shift", "year", "top_code")
# Operators that apply to one type only; every other operator applies to any type.
_ONLY_FOR = {"generalize": EntityType.ADDRESS, "shift": EntityType.DATE, "year": EntityType.DATE,
             "top_code": EntityType.AGE}
_KEYED = ("surrogate", "shift")
_SURROGATE_TYPES = {EntityType.NAME, EntityType.CONTACT, EntityType.ID_NUMBER, EntityType.HOSPITAL}
_KEEP_LEVEL = {"province": 1, "prefecture": 2, "county": 3}


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class OperatorSpec:
    operator: str = "tag"
    keep: str = "county"   # generalize only
    max_days: int = 180    # shift only: offsets lie in [-max_days, -1] and [1, max_days]


@dataclass(frozen=True)
class Policy:
    level: int
    operators: dict = field(default_factory=dict)   # EntityType -> OperatorSpec
    default: OperatorSpec = OperatorSpec()

    def spec(self, entity_type: EntityType) -> OperatorSpec:
        return self.operators.get(entity_type, self.default)


@dataclass(frozen=True)
class Policies:
    levels: dict       # int -> Policy
    digest: str
    preset: str = "default"
    types: frozenset = frozenset(EntityType)   # the entity types this preset finds and masks

    def __getitem__(self, level: int) -> Policy:
        return self.levels[level]

    @property
    def uses_key(self) -> bool:
        return any(spec.operator in _KEYED for p in self.levels.values() for spec in p.operators.values())


def load_policies(path: str, preset: str | None = None) -> Policies:
    """The policies of one preset (the file's `preset` unless named)."""
    raw = open(path, "rb").read()
    doc = yaml.safe_load(raw)
    # a file of levels alone is one preset, `default`
    presets = doc.get("presets") or {"default": {"types": "all", "levels": doc.get("levels")}}
    preset = preset or doc.get("preset", "default")
    if preset not in presets:
        raise PolicyError(f"unknown policy preset {preset!r}; the policy file has {', '.join(presets) or 'none'}")
    body = presets[preset]
    default = _spec(doc.get("default_operator", "tag"), "default")
    types = body.get("types", "all")
    try:
        types = frozenset(EntityType) if types == "all" else frozenset(EntityType(t) for t in types)
    except ValueError as exc:
        raise PolicyError(f"preset {preset}: {exc}") from None
    levels = {}
    for level, level_body in (body.get("levels") or {}).items():
        level = int(level)
        if level not in (1, 2, 3):
            raise PolicyError(f"policy level must be 1, 2 or 3, not {level}")
        ops = {}
        for etype, spec in ((level_body or {}).get("operators") or {}).items():
            try:
                etype = EntityType(etype)
            except ValueError:
                raise PolicyError(f"unknown entity type {etype!r} in level {level}") from None
            ops[etype] = _spec(spec, f"level {level} {etype.value}")
            only = _ONLY_FOR.get(ops[etype].operator)
            if only is not None and etype is not only:
                raise PolicyError(f"{ops[etype].operator} applies to {only.value} only (level {level} {etype.value})")
        levels[level] = Policy(level, ops, default)
    if sorted(levels) != [1, 2, 3]:
        raise PolicyError(f"preset {preset} must define levels 1, 2 and 3")
    return Policies(levels, digest_bytes(raw + f"\x00{preset}".encode()), preset, types)


def _spec(value, where: str) -> OperatorSpec:
    spec = OperatorSpec(value) if isinstance(value, str) else OperatorSpec(**value)
    if spec.operator not in OPERATORS:
        raise PolicyError(f"unknown operator {spec.operator!r} ({where}); choose from {', '.join(OPERATORS)}")
    if spec.keep not in _KEEP_LEVEL:
        raise PolicyError(f"generalize keep must be one of {', '.join(_KEEP_LEVEL)} ({where})")
    if spec.max_days < 1:
        raise PolicyError(f"shift max_days must be at least 1 ({where})")
    return spec


@dataclass(frozen=True)
class MaskResult:
    text: str
    masked_count: int
    masked: tuple   # the spans that were masked at this level


class Masker:
    def __init__(self, policies: Policies, secret: bytes | None = None):
        self.policies = policies
        if secret is None and os.environ.get(SECRET_ENV):
            secret = os.environ[SECRET_ENV].encode()
        if policies.uses_key and not secret:
            raise PolicyError(f"the surrogate and shift operators need a key: set {SECRET_ENV} in the environment "
                              "(for example: export DEID_SECRET="
                              "$(python3 -c 'import secrets; print(secrets.token_hex(32))'))")
        self._secret = secret

    def mask(self, text: str, spans: list[Span], level: int, context: NoteContext | None = None) -> MaskResult:
        policy = self.policies[level]
        context = context or NoteContext()
        out, pos, masked = [], 0, []
        for span in sorted(spans, key=lambda s: s.start):
            if span.tier > level:
                continue
            if span.start < pos:
                raise ValueError("spans overlap: merge them before masking")
            out.append(text[pos:span.start])
            out.append(self._replace(span, policy.spec(span.entity_type), context))
            pos = span.end
            masked.append(span)
        out.append(text[pos:])
        return MaskResult("".join(out), len(masked), tuple(masked))

    def _replace(self, span: Span, spec: OperatorSpec, context: NoteContext) -> str:
        tag = f"〔{span.entity_type.label_zh}〕"
        if spec.operator == "tag":
            return tag
        if spec.operator == "redact":
            return ""
        if spec.operator == "mask_chars":
            return "*" * len(span)
        if spec.operator == "generalize":
            return self._kept_prefix(span, spec.keep) + tag
        if spec.operator in ("shift", "year"):
            note_year = context.note_date.year if context.note_date else None
            written = read_date(span.text, note_year)
            if written is None:   # a date the LLM found in a form deid cannot read back
                return tag
            if spec.operator == "year":
                return year_of(written) or tag
            days = self.date_offset(context, spec)
            return (None if days is None else shift_date(written, days, note_year)) or tag
        if spec.operator == "top_code":
            return top_code(span.text) or tag
        if span.entity_type not in _SURROGATE_TYPES:
            return tag
        return surrogate(self._secret, span.entity_type, span.text)

    def date_offset(self, context: NoteContext, spec: OperatorSpec) -> int | None:
        """The days every date of this note's person moves, or None when the note names no person or note."""
        key = context.person_key
        return None if key is None else date_offset(self._secret, key, spec.max_days)

    def mask_date_value(self, value: date | None, level: int, context: NoteContext) -> date | None:
        """A NOTE row's own date (note_date, note_datetime) as this level's DATE operator writes dates: shifted by
        the person's offset, or 1 January of its year, or nothing; so that the row does not undo the text."""
        if value is None or EntityType.DATE not in self.policies.types:   # a preset that masks no date keeps it
            return value
        spec = self.policies[level].spec(EntityType.DATE)
        if spec.operator == "shift":
            days = self.date_offset(context, spec)
            return None if days is None else value + timedelta(days=days)
        if spec.operator == "year":
            return value.replace(month=1, day=1, **({"hour": 0, "minute": 0, "second": 0, "microsecond": 0}
                                                    if isinstance(value, datetime) else {}))
        return None

    def masked_intervals(self, spans: list[Span], level: int) -> list[tuple[int, int]]:
        """The character ranges that masking at `level` replaces (a generalized address keeps its prefix)."""
        policy = self.policies[level]
        out = []
        for span in spans:
            if span.tier > level:
                continue
            spec = policy.spec(span.entity_type)
            kept = len(self._kept_prefix(span, spec.keep)) if spec.operator == "generalize" else 0
            out.append((span.start + kept, span.end))
        return out

    @staticmethod
    def _kept_prefix(span: Span, keep: str) -> str:
        """The address's longest division prefix down to `keep` (never the whole span): what generalize keeps."""
        limit = _KEEP_LEVEL[keep]
        kept = ""
        for prefix, level in span.attrs.get("admin_parts", ()):
            if level > limit:
                break
            if span.text.startswith(prefix):
                kept = prefix
        return "" if kept == span.text else kept


# -- dates and ages ------------------------------------------------------------------------------------------
def date_offset(secret: bytes, person_key: str, max_days: int) -> int:
    """One offset per person and key, never 0: every interval between two dates of a person is kept."""
    digest = hmac.new(secret, f"date-shift\x00{person_key}".encode(), hashlib.sha256).digest()
    n = int.from_bytes(digest[:8], "big") % (2 * max_days)
    return n - max_days if n < max_days else n - max_days + 1


_AGE_UNIT = re.compile(r"(周岁|岁)$")


def top_code(age_text: str) -> str | None:
    """An age of 90 or more as ≥90 with its unit (93岁 -> ≥90岁, 年龄：95 -> ≥90); None for a birth year."""
    if m := _AGE_UNIT.search(age_text):
        return f"≥90{m.group(1)}"
    return "≥90" if normalize(age_text).strip().isdigit() and len(age_text.strip()) <= 3 else None


# -- surrogates: same input, same key, same fake; no key, no surrogate ------------------------------
_FAKE_SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜"
_FAKE_GIVEN = "安宁平康泰和嘉怡明远思雨晨曦文博子涵若溪景行知"


def _canonical(entity_type: EntityType, value: str) -> str:
    value = normalize(value)
    if entity_type in (EntityType.CONTACT, EntityType.ID_NUMBER):
        value = re.sub(r"[\s\-().]", "", value).upper()
    return value


def surrogate(secret: bytes, entity_type: EntityType, value: str) -> str:
    digest = hmac.new(secret, f"{entity_type.value}\x00{_canonical(entity_type, value)}".encode(),
                      hashlib.sha256).digest()
    n = int.from_bytes(digest[:8], "big")
    if entity_type is EntityType.NAME:
        return (_FAKE_SURNAMES[n % len(_FAKE_SURNAMES)] + _FAKE_GIVEN[(n >> 8) % len(_FAKE_GIVEN)]
                + _FAKE_GIVEN[(n >> 16) % len(_FAKE_GIVEN)])
    if entity_type is EntityType.CONTACT:
        return "199" + f"{n % 10**8:08d}"   # a reserved-looking mobile block, never the real number
    if entity_type is EntityType.ID_NUMBER:
        from deid.detectors.id_number import check_char
        body = "000000" + f"{n % 10**11:011d}"   # division 000000 does not exist: never a real person
        return body + check_char(body)
    return f"H{n % 10**4:04d}医院"
