"""Tier rules that depend on context rather than on the term itself.

The term's own tier comes from its dictionary row (STD, PREGNANCY) or from address granularity. One
rule overrides it: a routine negative screening result or a denied history (HIV抗体阴性, 梅毒 (-),
否认乙肝病史) is still found, but gets tier 3, so policy levels 1 and 2 keep it: masking it would be the
over-redaction the paper warns about.
"""
from __future__ import annotations

import re

NEGATIVE_RESULT = re.compile(
    r"^[^，。；;,\n阳]{0,10}?(?:阴性|\(-\)|（-）|\(−\)|[:：]\s*-(?![0-9])|未检出|未见|negative|NEG|neg|无反应|不反应|均阴|阴)")
NEGATED_BEFORE = re.compile(r"(?:否认|排除|无|未见|未发现|未诉|不伴|未曾|从未)[^，。；;,\n]{0,16}$")
POSITIVE_RESULT = re.compile(r"^[^，。；;,\n]{0,10}?(?:阳性|\(\+\)|（\+）|\+|positive|POS|感染|携带)")
CLAUSE_END = re.compile(r"[。；;\n]")


def is_negative_context(norm: str, start: int, end: int) -> bool:
    """True when the term at [start, end) is reported negative or denied in its clause."""
    right = norm[end:end + 14]
    left = norm[max(0, start - 18):start]
    cut = max((m.end() for m in CLAUSE_END.finditer(left)), default=0)
    left = left[cut:]
    if POSITIVE_RESULT.match(right) and not NEGATIVE_RESULT.match(right):
        return False
    return bool(NEGATIVE_RESULT.match(right) or NEGATED_BEFORE.search(left))


def address_tier(fine: bool) -> int:
    """Tier 1 when the address reaches below county level, tier 2 when it stops at a division."""
    return 1 if fine else 2
