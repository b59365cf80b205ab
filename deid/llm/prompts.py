"""Prompts are files in resources/prompts/, editable without code and versioned by their digest.

Messages put the static instructions (and few-shot examples) first and the per-note part (retrieved
dictionary entries, then the note) last, so a server's prefix cache reuses the static part across notes.
"""
from __future__ import annotations

from dataclasses import dataclass

from deid.resources import Resources, combine_digests

FORMATS = {"markup": "prompts/tag_markup.md", "json": "prompts/tag_tier_json.md"}
TIER_PROMPT = "prompts/tier_markup.md"
USER_TEMPLATE = "prompts/note_user.md"


@dataclass(frozen=True)
class PromptSet:
    fmt: str
    system: str
    user_template: str
    version: str

    def messages(self, note: str, retrieved: list[str]) -> list[dict]:
        entries = "\n".join(f"- {e}" for e in retrieved) if retrieved else "（无）"
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": self.user_template.replace("{retrieved}", entries).replace("{note}", note)}]


def load_prompts(fmt: str = "json", resources: Resources | None = None) -> PromptSet:
    """The prompts of `resources`, the package's when None."""
    if fmt not in FORMATS:
        raise ValueError(f"prompt format must be one of {', '.join(FORMATS)}")
    resources = resources or Resources.packaged()
    system = resources.load(FORMATS[fmt])
    user = resources.load(USER_TEMPLATE)
    version = combine_digests({"system": system.digest, "user": user.digest})
    return PromptSet(fmt, system.content.strip(), user.content.strip(), version)
