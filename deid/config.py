"""Pipeline configuration: a YAML file naming the components and their settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deid.merge import DEFAULT_PRIORITY, DEFAULT_TIER_RULE, TIER_RULES
from deid.resources import data_dir, digest_bytes
from deid.spans import EntityType

DEFAULT_CONFIG = data_dir("conf") / "pipeline.yaml"


# Settings that change how the work is done, not what is found: left out of the digest (and so of
# pipeline_version), so that moving the LLM endpoint or tuning concurrency does not re-process every note.
# The policies' content has its own digest; its path differs between the driver and the workers. The time budget
# decides only whether a slow note finishes, not what is found in the notes that do. A component's own are
# declared by it (`operational`, deid.detectors.registry).
OPERATIONAL = {"llm": {"base_url", "concurrency", "timeout_s", "retries", "backoff_s", "api_key_env", "on_failure"},
               "limits": {"note_time_budget_s"},
               "policies": None}


class ConfigError(ValueError):
    pass


def output_digest(doc: dict) -> str:
    """Digest of the settings that decide the output."""
    from deid.detectors.registry import COMPONENTS
    operational = {**{name: c.operational for name, c in COMPONENTS.items() if c.operational}, **OPERATIONAL}
    kept = {}
    for key, value in doc.items():
        if key in operational and operational[key] is None:
            continue
        if key in operational and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in operational[key]}
        kept[key] = value
    return digest_bytes(yaml.safe_dump(kept, sort_keys=True, allow_unicode=True).encode())


@dataclass(frozen=True)
class PipelineConfig:
    components: tuple[str, ...]
    settings: dict = field(default_factory=dict)   # component -> its settings, defaults filled in
    type_priority: tuple[EntityType, ...] = ()
    policies_path: str = ""
    policy_preset: str | None = None   # None: the policy file's own `preset`
    max_chars: int = 2_000_000
    note_time_budget_s: float = 60.0   # 0: no budget
    tier_rule: str = DEFAULT_TIER_RULE
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
    from deid.detectors.registry import COMPONENTS
    from deid.llm.stage import LlmConfig
    components = tuple(doc.get("components", COMPONENTS))
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ConfigError(f"unknown pipeline components {unknown}; known: {', '.join(COMPONENTS)}")
    for i, name in enumerate(components):
        for needed in COMPONENTS[name].requires:
            if needed in components[i:]:
                raise ConfigError(f"components: {name} reads the {needed} annotation, so it must come after {needed}")
    settings = {name: component_settings(name, cls.settings, doc.get(name)) for name, cls in COMPONENTS.items()}
    priority = tuple(EntityType(t) for t in (doc.get("merge") or {}).get("type_priority",
                                                                      [t.value for t in DEFAULT_PRIORITY]))
    if len(priority) != len(EntityType) or set(priority) != set(EntityType):
        raise ConfigError("merge.type_priority must list every entity type once")
    tier_rule = (doc.get("merge") or {}).get("tier_rule", DEFAULT_TIER_RULE)
    if tier_rule not in TIER_RULES:
        raise ConfigError(f"merge.tier_rule must be one of {', '.join(TIER_RULES)}")
    try:
        llm = LlmConfig.from_flat(doc.get("llm") or {})
    except TypeError as exc:
        raise ConfigError(f"llm: {exc}") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
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
        settings=settings,
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


def component_settings(name: str, declared, given) -> dict:
    """A component's settings: its declared defaults, with what the config gives; a setting it does not declare,
    or a value of another type than the default's, is refused."""
    given = given or {}
    if not isinstance(given, dict):
        raise ConfigError(f"{name}: settings must be a mapping")
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        raise ConfigError(f"{name}: unknown settings {unknown}; it has: {known}")
    out = dict(declared)
    for key, value in given.items():
        kind = type(declared[key])
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):   # True is an int too
            raise ConfigError(f"{name}.{key} must be {kind.__name__}, not {type(value).__name__}")
        out[key] = value
    return out
