"""Masking: operators chosen per entity type by a policy level. Knows nothing of how a span was found.

Level k masks spans with tier <= k. Text outside masked spans is copied unchanged.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field

import yaml

from deid.resources import digest_bytes
from deid.spans import EntityType, Span
from deid.text import normalize

SECRET_ENV = "DEID_SECRET"
OPERATORS = ("tag", "redact", "mask_chars", "surrogate", "generalize")
_SURROGATE_TYPES = {EntityType.NAME, EntityType.CONTACT, EntityType.ID_NUMBER, EntityType.HOSPITAL}
_KEEP_LEVEL = {"province": 1, "prefecture": 2, "county": 3}


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class OperatorSpec:
    operator: str = "tag"
    keep: str = "county"   # generalize only


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

    def __getitem__(self, level: int) -> Policy:
        return self.levels[level]

    @property
    def uses_surrogate(self) -> bool:
        return any(spec.operator == "surrogate" for p in self.levels.values() for spec in p.operators.values())


def load_policies(path: str) -> Policies:
    raw = open(path, "rb").read()
    doc = yaml.safe_load(raw)
    default = _spec(doc.get("default_operator", "tag"), "default")
    levels = {}
    for level, body in (doc.get("levels") or {}).items():
        level = int(level)
        if level not in (1, 2, 3):
            raise PolicyError(f"policy level must be 1, 2 or 3, not {level}")
        ops = {}
        for etype, spec in ((body or {}).get("operators") or {}).items():
            try:
                etype = EntityType(etype)
            except ValueError:
                raise PolicyError(f"unknown entity type {etype!r} in level {level}") from None
            ops[etype] = _spec(spec, f"level {level} {etype.value}")
            if ops[etype].operator == "generalize" and etype is not EntityType.ADDRESS:
                raise PolicyError(f"generalize applies to ADDRESS only (level {level} {etype.value})")
        levels[level] = Policy(level, ops, default)
    if sorted(levels) != [1, 2, 3]:
        raise PolicyError("policies must define levels 1, 2 and 3")
    return Policies(levels, digest_bytes(raw))


def _spec(value, where: str) -> OperatorSpec:
    spec = OperatorSpec(value) if isinstance(value, str) else OperatorSpec(**value)
    if spec.operator not in OPERATORS:
        raise PolicyError(f"unknown operator {spec.operator!r} ({where}); choose from {', '.join(OPERATORS)}")
    if spec.keep not in _KEEP_LEVEL:
        raise PolicyError(f"generalize keep must be one of {', '.join(_KEEP_LEVEL)} ({where})")
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
        if policies.uses_surrogate and not secret:
            raise PolicyError(f"the surrogate operator needs a key: set {SECRET_ENV} in the environment")
        self._secret = secret

    def mask(self, text: str, spans: list[Span], level: int) -> MaskResult:
        policy = self.policies[level]
        out, pos, masked = [], 0, []
        for span in sorted(spans, key=lambda s: s.start):
            if span.tier > level:
                continue
            if span.start < pos:
                raise ValueError("spans overlap: merge them before masking")
            out.append(text[pos:span.start])
            out.append(self._replace(span, policy.spec(span.entity_type)))
            pos = span.end
            masked.append(span)
        out.append(text[pos:])
        return MaskResult("".join(out), len(masked), tuple(masked))

    def _replace(self, span: Span, spec: OperatorSpec) -> str:
        tag = f"〔{span.entity_type.label_zh}〕"
        if spec.operator == "tag":
            return tag
        if spec.operator == "redact":
            return ""
        if spec.operator == "mask_chars":
            return "*" * len(span)
        if spec.operator == "generalize":
            return self._kept_prefix(span, spec.keep) + tag
        if span.entity_type not in _SURROGATE_TYPES:
            return tag
        return surrogate(self._secret, span.entity_type, span.text)

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


# -- surrogates: same input, same key, same fake; no key, no surrogate ------------------------------
_FAKE_SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜"
_FAKE_GIVEN = "安宁平康泰和嘉怡明远思雨晨曦文博子涵若溪景行知"


def _canonical(entity_type: EntityType, value: str) -> str:
    value = normalize(value)
    if entity_type in (EntityType.CONTACT, EntityType.ID_NUMBER):
        value = re.sub(r"[\s\-().]", "", value).upper()
    return value


def surrogate(secret: bytes, entity_type: EntityType, value: str) -> str:
    digest = hmac.new(secret, f"{entity_type.value}\x00{_canonical(entity_type, value)}".encode(), hashlib.sha256).digest()
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
