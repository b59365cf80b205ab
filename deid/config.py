"""Pipeline configuration: a YAML file naming the components and their settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deid.resources import data_dir, digest_bytes
from deid.spans import EntityType

DEFAULT_CONFIG = data_dir("conf") / "pipeline.yaml"
KNOWN_COMPONENTS = ("ner", "id_number", "contact", "hospital", "address", "name", "std", "pregnancy", "date", "age",
                    "identifiers", "workplace")


# Settings that change how the work is done, not what is found: left out of the digest (and so of
# pipeline_version), so that moving the LLM endpoint or tuning concurrency does not re-process every note.
# The policies' content has its own digest; its path differs between the driver and the workers. The time budget
# decides only whether a slow note finishes, not what is found in the notes that do.
OPERATIONAL = {"ner": {"threads", "batch_size"},
               "llm": {"base_url", "concurrency", "timeout_s", "retries", "backoff_s", "api_key_env", "on_failure"},
               "limits": {"note_time_budget_s"},
               "policies": None}


class ConfigError(ValueError):
    pass


def output_digest(doc: dict) -> str:
    """Digest of the settings that decide the output."""
    kept = {}
    for key, value in doc.items():
        if key in OPERATIONAL and OPERATIONAL[key] is None:
            continue
        if key in OPERATIONAL and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in OPERATIONAL[key]}
        kept[key] = value
    return digest_bytes(yaml.safe_dump(kept, sort_keys=True, allow_unicode=True).encode())


@dataclass(frozen=True)
class PipelineConfig:
    components: tuple[str, ...]
    ner_threads: int = 1
    ner_batch_size: int = 64
    ner_gate: bool = True
    ner_model: str = "lac"   # deid.detectors.ner.MODELS
    type_priority: tuple[EntityType, ...] = ()
    policies_path: str = ""
    policy_preset: str | None = None   # None: the policy file's own `preset`
    max_chars: int = 2_000_000
    note_time_budget_s: float = 60.0   # 0: no budget
    tier_rule: str = "detectors_first"
    llm: object = None            # deid.llm.stage.LlmConfig
    digest: str = ""
    raw: dict = field(default_factory=dict, compare=False)


def deep_merge(base: dict, changes: dict) -> dict:
    """A copy of base with changes applied; nested dicts are merged, anything else replaced."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(path: str | Path | None = None, **overrides) -> PipelineConfig:
    path = Path(path or DEFAULT_CONFIG)
    doc = deep_merge(yaml.safe_load(path.read_bytes()) or {}, overrides)
    return parse_config(doc, path.parent)


def parse_config(doc: dict, base_dir: Path) -> PipelineConfig:
    """A config from its YAML document; a relative policies path is resolved against base_dir."""
    components = tuple(doc.get("components", KNOWN_COMPONENTS))
    unknown = [c for c in components if c not in KNOWN_COMPONENTS]
    if unknown:
        raise ConfigError(f"unknown pipeline components {unknown}; known: {', '.join(KNOWN_COMPONENTS)}")
    ner = doc.get("ner") or {}
    priority = tuple(EntityType(t) for t in (doc.get("merge") or {}).get("type_priority", [t.value for t in EntityType]))
    if set(priority) != set(EntityType):
        raise ConfigError("merge.type_priority must list every entity type once")
    from deid.llm.stage import LlmConfig
    from deid.merge import TIER_RULES
    tier_rule = (doc.get("merge") or {}).get("tier_rule", "detectors_first")
    if tier_rule not in TIER_RULES:
        raise ConfigError(f"merge.tier_rule must be one of {', '.join(TIER_RULES)}")
    try:
        llm = LlmConfig.from_flat(doc.get("llm") or {})
    except TypeError as exc:
        raise ConfigError(f"llm: {exc}") from None
    if llm.on_failure not in ("fallback", "quarantine"):
        raise ConfigError("llm.on_failure must be fallback or quarantine")
    limits = doc.get("limits") or {}
    budget = float(limits.get("note_time_budget_s", 60.0))
    if budget < 0:
        raise ConfigError("limits.note_time_budget_s must be 0 (no budget) or more")
    policies = Path(doc.get("policies", "policies.yaml"))
    if not policies.is_absolute():
        policies = Path(base_dir) / policies
    return PipelineConfig(
        components=components,
        ner_threads=int(ner.get("threads", 1)),
        ner_batch_size=int(ner.get("batch_size", 64)),
        ner_gate=bool(ner.get("gate", True)),
        ner_model=str(ner.get("model", "lac")),
        type_priority=priority,
        policies_path=str(policies),
        policy_preset=doc.get("policy_preset"),
        max_chars=int(limits.get("max_chars", 2_000_000)),
        note_time_budget_s=budget,
        tier_rule=tier_rule,
        llm=llm,
        digest=output_digest(doc),
        raw=doc,
    )
