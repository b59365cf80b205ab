"""Tier rules that depend on context rather than on the term itself.

The term's own tier comes from its dictionary row (STD, PREGNANCY) or from address granularity. One
rule overrides it: a routine negative screening result or a denied history (HIV抗体阴性, 梅毒 (-),
否认乙肝病史) is still found, but gets tier 3, so policy levels 1 and 2 keep it: masking it would be the
over-redaction the paper warns about.
"""
from __future__ import annotations

import re

from deid.resources import Resources, alternation

CLAUSE_END = re.compile(r"[。；;\n]")
NEGATION_CUES = "lexicons/negation_cues.tsv"


class NegationRule:
    """Whether a term is reported negative or denied in its clause, from the cue words of lexicons/negation_cues.tsv
    (the signs (-), (+) and a colon before a dash are structure, kept here)."""

    def __init__(self, resources: Resources | None = None):
        cues = (resources or Resources.packaged()).load(NEGATION_CUES)
        self.digest = cues.digest
        self._negative_result = re.compile(r"^[^，。；;,\n阳]{0,10}?(?:\(-\)|（-）|\(−\)|[:：]\s*-(?![0-9])|"
                                           rf"{alternation(cues.words('negative_after'))})")
        self._negated_before = re.compile(rf"(?:{alternation(cues.words('denied_before'))})[^，。；;,\n]{{0,16}}$")
        self._positive_result = re.compile(r"^[^，。；;,\n]{0,10}?(?:\(\+\)|（\+）|\+|"
                                           rf"{alternation(cues.words('positive_after'))})")

    def is_negative(self, norm: str, start: int, end: int) -> bool:
        """True when the term at [start, end) is reported negative or denied in its clause."""
        right = norm[end:end + 14]
        left = norm[max(0, start - 18):start]
        cut = max((m.end() for m in CLAUSE_END.finditer(left)), default=0)
        left = left[cut:]
        if self._positive_result.match(right) and not self._negative_result.match(right):
            return False
        return bool(self._negative_result.match(right) or self._negated_before.search(left))


def address_tier(fine: bool) -> int:
    """Tier 1 when the address reaches below county level, tier 2 when it stops at a division."""
    return 1 if fine else 2
