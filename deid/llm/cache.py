"""Answers kept across runs: the LLM stage's parsed answer to one request, keyed by everything that decides it.

An answer can change only when what is sent changes: the text of the chunk or segment, the prompt, the retrieved
dictionary entries (all three are the request's messages), the model and the decoding settings. The key is an
HMAC-SHA256 of the messages and the decoding settings (model included), keyed by the job's secret, so a table of
keys holds no unkeyed digest of note text; the value is what the parser made of the answer, in offsets relative
to the request's text (start, end, type, tier), never the text itself. Only answers that parsed are kept: a
failed request is asked again next time.

The job looks the keys of a batch up in its answer table before the batch (a join, `jobs/deid_notes.py`), hands
the hits to the stage in an `AnswerCache`, and appends the answers the stage had to ask for.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field

from deid.llm.parse import Found, ParseReport
from deid.spans import EntityType


def request_key(secret: bytes, decoding: dict, messages: list[dict]) -> str:
    """The key of one request: the same for the same messages (prompt, retrieved entries, text), model and
    decoding settings, whatever note they came from."""
    message = json.dumps([sorted(decoding.items()), messages], ensure_ascii=False, sort_keys=True,
                         separators=(",", ":"))
    return hmac.new(secret, message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class KeptAnswer:
    """A parsed answer without its text: offsets into the request's text, and what the parser counted."""
    found: tuple[tuple[int, int, str, int | None], ...]
    truncated: bool = False
    dropped: int = 0

    @classmethod
    def of(cls, report: ParseReport, truncated: bool) -> KeptAnswer:
        return cls(tuple((f.start, f.end, f.entity_type.value, f.tier) for f in report.found), truncated,
                   report.dropped + report.unknown_type)

    def to_json(self) -> str:
        return json.dumps({"found": [list(f) for f in self.found], "truncated": self.truncated,
                           "dropped": self.dropped}, separators=(",", ":"))

    @classmethod
    def from_json(cls, value: str) -> KeptAnswer:
        doc = json.loads(value)
        return cls(tuple((int(s), int(e), str(t), None if r is None else int(r)) for s, e, t, r in doc["found"]),
                   bool(doc.get("truncated")), int(doc.get("dropped", 0)))

    def report(self, text: str) -> ParseReport:
        """The parse report this answer stands for, on the request's text."""
        found = [Found(s, e, EntityType(t), r, text[s:e]) for s, e, t, r in self.found if 0 <= s < e <= len(text)]
        return ParseReport(found=found, dropped=self.dropped)


@dataclass
class AnswerCache:
    """The known answers for a batch (key -> KeptAnswer JSON) and the answers it learnt (key -> JSON)."""
    secret: bytes
    known: dict[str, str] = field(default_factory=dict)
    learnt: dict[str, str] = field(default_factory=dict)

    def key(self, decoding: dict, messages: list[dict]) -> str:
        return request_key(self.secret, decoding, messages)

    def get(self, key: str) -> KeptAnswer | None:
        value = self.known.get(key) or self.learnt.get(key)
        return KeptAnswer.from_json(value) if value else None

    def put(self, key: str, answer: KeptAnswer) -> None:
        self.learnt[key] = answer.to_json()
