"""The allow list: terms reviewers decided are not PHI. Applied to merged spans, so it overrides every detector."""
from __future__ import annotations

from collections import defaultdict

from deid.resources import Resources, TextResource
from deid.spans import Span

NAME = "dictionaries/allow_list.tsv"
ANY_TYPE = "*"


class AllowList:
    def __init__(self, resource: TextResource | None = None):
        """resource: the allow list file of the pipeline's resources; the package's when None."""
        resource = resource or Resources.packaged().load(NAME)
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
