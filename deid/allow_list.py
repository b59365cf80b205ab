"""The allow list: terms reviewers decided are not PHI. Applied to merged spans, so it overrides every detector."""
from __future__ import annotations

from collections import defaultdict

from deid import resources
from deid.spans import Span

NAME = "dictionaries/allow_list.tsv"
ANY_TYPE = "*"


class AllowList:
    def __init__(self, resource: resources.TextResource | None = None):
        resource = resource or resources.load(NAME)
        self.version = resource.digest
        self.terms: dict[str, set[str]] = defaultdict(set)
        for row in resource.rows():
            if row.get("term"):
                self.terms[row.get("type") or ANY_TYPE].add(row["term"])

    def allows(self, span: Span) -> bool:
        text = span.text.strip()
        return text in self.terms.get(span.entity_type.value, ()) or text in self.terms.get(ANY_TYPE, ())

    def apply(self, spans: list[Span]) -> list[Span]:
        return [s for s in spans if not self.allows(s)] if self.terms else spans
