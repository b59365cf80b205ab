"""The Spark job's configuration (conf/local.yaml, conf/cluster.yaml): read, checked and overridden by the command
line. Pure Python; jobs/deid_notes.py is the Spark shell around it."""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deid import io as dio
from deid.config import ConfigError, deep_merge

ENGINES = ("auto", "native", "delta-rs")
REPROCESS = ("version", "affected")
# Every key a job config may hold: a dict names its sub-keys, None takes any value (a mapping of Spark settings, of
# pipeline overrides, of masked tables per level, of input columns: those are checked where they are read).
KEYS = {
    "extends": None,
    "spark": {"master": None, "app_name": None, "conf": None},
    "input": {"table": None, "format": None, "columns": None, "encoding": None},
    "output": {"root": None, "tables": {"spans": None, "masked": None, "runs": None, "quarantine": None,
                                        "answers": None},
               "staging": None, "state": None, "retention": {"deleted_files": None, "log": None}},
    "delta": {"engine": None, "jars": None},
    "pipeline": {"config": None, "overrides": None, "policies": None, "keep_span_text": None, "secret_env": None},
    "job": {"partitions": None, "notes_per_task": None, "reprocess": None, "verify": None, "optimize": None,
            "vacuum": None, "optimize_target_mb": None, "max_quarantine_share": None, "progress_interval_s": None,
            "llm_cache": None},
}
# Paths a config gives relative to its own file: resolved against the file that names them, so that a config
# which `extends` another elsewhere keeps the other's pipeline.yaml and jars.
RELATIVE_PATHS = (("pipeline", "config"), ("delta", "jars"))


@dataclass
class JobConfig:
    path: Path
    master: str | None
    app_name: str
    spark_conf: dict
    input_table: str
    output_root: str
    tables: dict
    staging: str
    state: str
    engine: str
    pipeline_config: Path
    pipeline_overrides: dict
    policies: list[int]
    keep_span_text: bool
    secret_env: str
    partitions: int
    notes_per_task: int
    reprocess: str
    input_format: str = "auto"          # deid.io.INPUT_FORMATS, or auto: told by the path
    input_columns: dict = field(default_factory=dict)   # NOTE column -> the input's column of another name
    input_encoding: str = "utf-8"       # CSV and JSON Lines files
    delta_jars: Path | None = None
    retention: dio.Retention = dio.Retention()
    full_refresh: bool = False
    optimize: bool = False
    vacuum: bool = False
    optimize_target_mb: int = 128
    limit: int | None = None
    verify: bool = True
    max_quarantine_share: float = 0.01  # over this share of the notes read in quarantine, the job exits 3
    progress_interval_s: float = 30.0   # a progress line during detection this often; 0: none
    llm_cache: bool = True              # keep the LLM stage's answers (tables.answers) and ask only what changed

    def location(self, name: str) -> str:
        if "/" in name or not self.output_root:
            return name
        return os.path.join(self.output_root, name)


def check_keys(doc: dict, known: dict, where: str = "") -> None:
    """A key the job does not read is a typo or a setting of another version: name it and the keys it could be."""
    for key, value in doc.items():
        name = f"{where}{key}"
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {where}{close[0]}?" if close else f"known here: {', '.join(known)}"
            raise ConfigError(f"unknown key {name}; {hint}")
        if isinstance(known[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a mapping of {', '.join(known[key])}")
            check_keys(value, known[key], f"{name}.")


def _read_job_yaml(path: Path) -> dict:
    """A job config; `extends: other.yaml` (relative to it) is read first and this file merged over it."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{at}; fix the file") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} is not a job config (a YAML mapping of spark, input, output, ...)")
    try:
        check_keys(doc, KEYS)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for section, key in RELATIVE_PATHS:
        value = (doc.get(section) or {}).get(key)
        if value and not os.path.isabs(value) and "://" not in value:
            doc[section][key] = str(path.parent / value)
    base = doc.pop("extends", None)
    return deep_merge(_read_job_yaml(path.parent / base), doc) if base else doc


def _choice(value, allowed: tuple, name: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{name} is {value!r}; give one of {', '.join(allowed)}")
    return value


def _number(value, name: str, kind=int, low: float = 0, high: float | None = None):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} is {value!r}; give a number") from None
    if number < low or (high is not None and number > high):
        upto = f" to {high}" if high is not None else ""
        raise ConfigError(f"{name} is {value!r}; give a number from {low}{upto}")
    return number


def input_columns(value) -> dict[str, str]:
    """input.columns: NOTE column -> the input's column holding it."""
    if not value:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
        raise ConfigError("input.columns must map NOTE columns to input column names, e.g. {note_text: body}")
    unknown = [k for k in value if k not in dio.NOTE_COLUMNS]
    if unknown:
        raise ConfigError(f"input.columns names {', '.join(map(str, unknown))}, not NOTE column(s); the NOTE columns "
                          f"are {', '.join(dio.NOTE_COLUMNS)}")
    return dict(value)


def load_job_config(path: str | Path, args=None) -> JobConfig:
    """The config at `path`, with the job's command-line options (`args`, from jobs/deid_notes.py's parser) over it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config {path} does not exist; give --config with a job config (e.g. conf/local.yaml)")
    doc = _read_job_yaml(path)
    spark, out, pipe = doc.get("spark") or {}, doc.get("output") or {}, doc.get("pipeline") or {}
    job, delta, source = doc.get("job") or {}, doc.get("delta") or {}, doc.get("input") or {}
    tables = out.get("tables") or {}
    cfg = JobConfig(
        path=path, master=spark.get("master"), app_name=spark.get("app_name", "deid-notes"),
        spark_conf={k: str(v) for k, v in (spark.get("conf") or {}).items()},
        input_table=source.get("table", "data/omop/note"),
        input_format=_choice(source.get("format", "auto"), ("auto", *dio.INPUT_FORMATS), "input.format"),
        input_columns=input_columns(source.get("columns")),
        input_encoding=dio.encoding_name(source.get("encoding", "utf-8")),
        output_root=out.get("root", ""),
        tables={"spans": tables.get("spans", "note_phi_spans"),
                "masked": {int(k): v for k, v in (tables.get("masked") or {1: "note_deid_l1", 2: "note_deid_l2",
                                                                          3: "note_deid_l3"}).items()},
                "runs": tables.get("runs", "deid_runs"), "quarantine": tables.get("quarantine", "deid_quarantine"),
                "answers": tables.get("answers", "deid_llm_answers")},
        staging=out.get("staging", "data/_staging"), state=out.get("state", ""),
        engine=_choice(delta.get("engine", "auto"), ENGINES, "delta.engine"),
        delta_jars=Path(delta["jars"]) if delta.get("jars") else None,   # resolved by _read_job_yaml
        retention=dio.Retention(**{k: str(v) for k, v in (out.get("retention") or {}).items()}),
        pipeline_config=Path(pipe["config"]) if pipe.get("config") else path.parent / "pipeline.yaml",
        pipeline_overrides=pipe.get("overrides") or {},
        policies=[int(p) for p in pipe.get("policies", [1, 2, 3])],
        keep_span_text=bool(pipe.get("keep_span_text", False)), secret_env=pipe.get("secret_env", "DEID_SECRET"),
        partitions=_number(job.get("partitions", 4), "job.partitions", low=1),
        notes_per_task=_number(job.get("notes_per_task", 25000), "job.notes_per_task", low=1),
        reprocess=_choice(job.get("reprocess", "version"), REPROCESS, "job.reprocess"),
        verify=bool(job.get("verify", True)), optimize=bool(job.get("optimize", False)),
        vacuum=bool(job.get("vacuum", False)),
        optimize_target_mb=_number(job.get("optimize_target_mb", 128), "job.optimize_target_mb", low=1),
        max_quarantine_share=_number(job.get("max_quarantine_share", 0.01), "job.max_quarantine_share", float, 0, 1),
        progress_interval_s=_number(job.get("progress_interval_s", 30), "job.progress_interval_s", float),
        llm_cache=bool(job.get("llm_cache", True)),
    )
    if args is not None:
        if args.input:
            cfg.input_table = args.input
        if args.input_format:
            cfg.input_format = args.input_format
        if args.encoding:
            cfg.input_encoding = dio.encoding_name(args.encoding)
        if args.output:
            cfg.output_root = args.output
            cfg.staging = os.path.join(args.output, "_staging")
        if args.policies:
            cfg.policies = [int(p) for p in args.policies.split(",")]
        cfg.limit = args.limit
        cfg.full_refresh = args.full_refresh
        cfg.optimize = cfg.optimize or args.optimize
        cfg.vacuum = cfg.vacuum or args.vacuum
        if args.reprocess:
            cfg.reprocess = args.reprocess
        if args.policy_preset:
            cfg.pipeline_overrides = {**cfg.pipeline_overrides, "policy_preset": args.policy_preset}
    bad = [p for p in cfg.policies if p not in cfg.tables["masked"]]
    if bad:
        raise ConfigError(f"no masked table configured for policy level(s) {bad}; add them to output.tables.masked")
    if not cfg.state:
        cfg.state = os.path.join(cfg.output_root or ".", "_deid_state")
    return cfg


def quarantine_exceeded(row: dict, share: float) -> str | None:
    """What is wrong when the run left more than `share` of the notes it read in quarantine, else None."""
    read, quarantined = row["notes_read"] or 0, row["notes_quarantined"] or 0
    if not read or quarantined / read <= share:
        return None
    return (f"{quarantined} of {read} notes ({quarantined / read:.1%}) are in quarantine, over "
            f"job.max_quarantine_share {share:.1%}; deid_quarantine's error_class says why (fix the input, or raise "
            "job.max_quarantine_share)")
