"""deid command line: annotate, synth, eval, summary, serve, review."""
from __future__ import annotations

import argparse
import codecs
import csv
import errno
import functools
import itertools
import json
import logging
import os
import sys
from collections import Counter
from datetime import date
from pathlib import Path

from deid import __version__
from deid.exits import EXIT_FAILED, EXIT_USAGE, report

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _pipeline(args):
    from deid.config import load_config
    from deid.pipeline import Pipeline
    from deid.resources import Resources
    return Pipeline(load_config(args.config), resources=Resources.from_environment())


def _annotation(pipeline, note_id, text, person_id=None, note_date=None) -> dict:
    """As the job masks a note: dates shift by person_id's offset (the note's own id where it has none)."""
    result = pipeline.process(text, person_id=person_id, note_id=note_id, note_date=note_date)
    return {"id": note_id, "spans": [s.to_dict() for s in result.spans],
            "masked": {str(k): v for k, v in result.masked.items()}}


def _json_line(obj) -> str:
    """Readable UTF-8 JSON; a note with lone surrogates is written with \\u escapes instead (lossless)."""
    line = json.dumps(obj, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(obj, ensure_ascii=True)
    return line + "\n"


def _note_date(value) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError("note_date must be a date written YYYY-MM-DD") from None


NOTE_FORMATS = ("jsonl", "csv", "text", "folder")
_FORMAT_BY_SUFFIX = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".txt": "text"}
_ID_COLUMNS, _TEXT_COLUMNS = ("id", "note_id"), ("text", "note_text")


class UsageError(Exception):
    """A wrong or missing argument or input; the message names it and what to give instead."""


def _input_format(path: Path, given: str | None) -> str:
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    if given:
        return given
    if path.is_dir():
        return "folder"
    if path.suffix.lower() in _FORMAT_BY_SUFFIX:
        return _FORMAT_BY_SUFFIX[path.suffix.lower()]
    raise UsageError(f"cannot tell what kind of input {path} is from its name; give --input-format "
                     + "|".join(NOTE_FORMATS))


def _text_encoding(encoding: str) -> str:
    """UTF-8 files saved by Excel or Notepad start with a byte-order mark; read it as such, not as text."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _encoding(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding {name!r}; e.g. utf-8, gb18030") from None


def _decode_error_text(exc: UnicodeDecodeError) -> str:
    """What went wrong decoding, without the undecodable bytes themselves (they are note text)."""
    return f"not {exc.encoding} text ({exc.reason} at byte {exc.start}); give --encoding, e.g. --encoding gb18030"


def _jsonl_note(line: str) -> dict:
    row = json.loads(line)
    if not isinstance(row, dict):
        raise ValueError("line is not a JSON object")
    return row


def _jsonl_notes(path: Path, encoding: str):
    # surrogateescape: an undecodable byte stays in its note as a lone surrogate instead of failing the line
    with open(path, encoding=_text_encoding(encoding), errors="surrogateescape") as src:
        for lineno, line in enumerate(src, 1):
            if line.strip():
                yield {"line": lineno}, functools.partial(_jsonl_note, line)


def _csv_notes(path: Path, encoding: str):
    csv.field_size_limit(2**31 - 1)   # a long note is one field; the default limit is 128 KiB
    with open(path, encoding=_text_encoding(encoding), newline="") as src:
        rows = csv.DictReader(src)
        try:
            columns = rows.fieldnames or []
            id_column = next((c for c in _ID_COLUMNS if c in columns), None)
            text_column = next((c for c in _TEXT_COLUMNS if c in columns), None)
            if text_column is None:
                raise UsageError(f"{path} has no text or note_text column in its header (it has: "
                                 f"{', '.join(columns) or 'no header'}); name the note column text")
            for row in rows:
                note = {"id": row.get(id_column) if id_column else None, "text": row[text_column],
                        "person_id": row.get("person_id") or None, "note_date": row.get("note_date") or None}
                yield {"line": rows.line_num}, functools.partial(dict, note)
        except UnicodeDecodeError as exc:
            raise UsageError(f"{path} is {_decode_error_text(exc)}") from None
        except csv.Error as exc:
            raise UsageError(f"{path} line {rows.line_num} is not CSV: {exc}") from None


def _text_file_note(path: Path, encoding: str) -> dict:
    try:
        return {"id": path.stem, "text": path.read_text(encoding=_text_encoding(encoding))}
    except UnicodeDecodeError as exc:
        raise ValueError(_decode_error_text(exc)) from None


def _text_notes(paths, encoding: str):
    for path in paths:   # the id is known even when the file cannot be read
        yield {"id": path.stem, "file": path.name}, functools.partial(_text_file_note, path, encoding)


def _read_notes(path: Path, input_format: str, encoding: str):
    """(where, read) per note, in input order: where is what an error row names it by (its line, or its id and
    file); read() gives its fields or raises ValueError."""
    if input_format == "folder":
        if not path.is_dir():
            raise UsageError(f"{path} is not a folder; give a folder of .txt notes or another --input-format")
        return _text_notes(sorted(path.glob("*.txt")), encoding)
    if input_format == "text":
        return _text_notes([path], encoding)
    return (_csv_notes if input_format == "csv" else _jsonl_notes)(path, encoding)


def _note_error_text(exc: Exception) -> str:
    msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)   # never the line itself
    return f"{type(exc).__name__}: {msg}"


def cmd_annotate(args) -> int:
    if args.text is not None:
        print(json.dumps(_annotation(_pipeline(args), None, args.text), ensure_ascii=False, indent=2))
        return 0
    if not args.input or not args.output:
        raise UsageError("give --text, or both --input and --output")
    source = Path(args.input)
    notes = _read_notes(source, _input_format(source, args.input_format), args.encoding)
    first = next(notes, None)   # input errors before the pipeline loads and before the output is created
    if first is None:
        raise UsageError(f"no notes in {source}; give JSON Lines, CSV with a text column, a .txt file or a folder "
                         "of .txt files")
    from deid.pipeline import NoteError
    pipeline = _pipeline(args)
    ok = bad = 0
    with open(args.output, "w", encoding="utf-8") as dst:
        for where, read in itertools.chain([first], notes):
            note_id = None
            try:
                note = read()
                note_id = note.get("id")
                if note.get("text") is None:
                    raise NoteError("note has no text")
                out = _annotation(pipeline, note_id, note["text"], note.get("person_id"),
                                  _note_date(note.get("note_date")))
                ok += 1
            except (ValueError, NoteError) as exc:   # messages never quote the text
                out = {"id": note_id, **where, "error": _note_error_text(exc)}
                bad += 1
            dst.write(_json_line(out))
    if bad:
        print(f"error: annotated {ok} notes, {bad} errors; the error rows in {args.output} say why", file=sys.stderr)
        return EXIT_FAILED
    print(f"annotated {ok} notes, 0 errors -> {args.output}", file=sys.stderr)
    return 0


def cmd_synth(args) -> int:
    from deid.resources import Resources
    from deid.synth.generator import generate
    from deid.synth.omop import write_note_delta, write_outputs
    notes = generate(args.n, args.seed, Resources.from_environment())
    paths = write_outputs(notes, Path(args.out))
    if args.delta:
        paths.append(write_note_delta(notes, Path(args.delta)))
    counts = Counter(s["type"] for n in notes for s in n["spans"])
    print(f"wrote {len(notes)} notes ({sum(counts.values())} gold spans: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")")
    for p in paths:
        print(f"  {p}")
    return 0


def cmd_eval(args) -> int:
    from deid.evaluate import evaluate
    pipeline = _pipeline(args)
    with open(args.gold, encoding="utf-8") as f:
        notes = [json.loads(line) for line in f if line.strip()]
    if args.limit:
        notes = notes[: args.limit]
    if args.llm:
        from deid.evaluate import evaluate_with_llm, side_by_side
        from deid.llm.retrieval import build_index
        from deid.llm.stage import LlmConfig, LlmStage
        stage = LlmStage(LlmConfig.from_flat({"enabled": True, "base_url": args.llm, "format": args.llm_format,
                                              "timeout_s": 600, "concurrency": 2}),
                         build_index(resources=pipeline.resources), pipeline.resources)
        print(f"pipeline {pipeline.version}, LLM {stage.version} at {args.llm}, {len(notes)} notes "
              f"(overlap P/R per type; tier micro P/R; leak per level)")
        print(side_by_side(evaluate_with_llm(notes, pipeline, stage)))
        return 0
    scores = evaluate(notes, pipeline)
    print(f"pipeline {pipeline.version}  gold {args.gold}")
    print(scores.to_text())
    if args.errors:
        print(f"\nfirst {args.errors} errors (synthetic text):")
        for kind, t, text, nid in scores.errors[: args.errors]:
            print(f"  {kind:<10} {t:<10} {text!r}  note {nid}")
    if args.json:
        Path(args.json).write_text(json.dumps(scores.to_dict(), ensure_ascii=False, indent=2))
    return 0


def cmd_eval_real(args) -> int:
    """Score the pipeline on the public real-text corpora found under --data (see deid.corpora)."""
    import os

    from deid.corpora import REAL_DATA_ENV, SOURCES, load_corpora
    from deid.evaluate import evaluate_real
    root = args.data or os.environ.get(REAL_DATA_ENV)
    if not root or not Path(root).is_dir():
        print(f"no real-text data: set ${REAL_DATA_ENV} (or --data) to a folder holding these files "
              f"(skipping, nothing to score):")
        for key, src in SOURCES.items():
            print(f"  {key:<14} <folder>/{src.repo.split('/')[1]}/{src.path}   "
                  f"(github {src.repo}, sha256 {src.sha256})")
        return 0
    corpora = load_corpora(Path(root), args.corpus)
    if not corpora:
        print(f"none of the corpora is under {root}; expected e.g. {next(iter(SOURCES.values())).location(Path(root))}")
        return 0
    pipeline = _pipeline(args)
    print(f"pipeline {pipeline.version}  real text under {root}")
    results = {}
    for key, notes in corpora.items():
        if args.write_gold:
            out = Path(args.write_gold) / f"{key}.jsonl"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("".join(_json_line(n) for n in notes), encoding="utf-8")
        scores = evaluate_real(notes[: args.limit] if args.limit else notes, pipeline, key)
        results[key] = scores.to_dict()
        print(scores.to_text())
        for kind, t, text, nid in scores.errors[: args.errors]:
            print(f"    {kind:<8} {t:<10} {text!r}  {nid}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"pipeline": pipeline.version, "corpora": results},
                                              ensure_ascii=False, indent=2))
    return 0


def cmd_icd_dictionary(args) -> int:
    """Write resources/dictionaries/icd10_sensitive.tsv from the ICD-10 clinical edition 2.0 table."""
    import os

    from deid.corpora import REAL_DATA_ENV, write_icd_dictionary
    root = args.data or os.environ.get(REAL_DATA_ENV)
    if not root:
        raise UsageError(f"give --data or set ${REAL_DATA_ENV}")
    n = write_icd_dictionary(Path(root), Path(args.out))
    print(f"wrote {n} diagnoses to {args.out}")
    return 0


def cmd_summary(args) -> int:
    """What a run left behind, read with plain deltalake (no Spark)."""
    from deltalake import DeltaTable

    from deid.io import LLM_TABLE_SCHEMAS, TABLE_SCHEMAS
    from deid.query import table
    root = Path(args.root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder; give --root the folder the job wrote its tables into")
    tables = {name: DeltaTable(str(root / name)) for name in {**TABLE_SCHEMAS, **LLM_TABLE_SCHEMAS}
              if DeltaTable.is_deltatable(str(root / name))}
    if not tables:
        raise UsageError(f"none of the job's tables ({', '.join(TABLE_SCHEMAS)}) is under {root}; give --root the "
                         "folder the job wrote them into")
    print("Delta tables:")
    for name, delta in tables.items():
        print(f"  {name:<16} {(root / name).resolve()}  (version {delta.version()}, {delta.count()} rows)")
    if "deid_runs" in tables:
        runs = table(root / "deid_runs").sort_by([("started_at", "descending")]).to_pylist()
        last = runs[0]
        print(f"\nlast run {last['run_id']}: {last['status']}; read {last['notes_read']}, "
              f"written {last['notes_written']}, unchanged {last['notes_unchanged']}, moved {last['notes_moved']}, "
              f"quarantined {last['notes_quarantined']},"
              f" spans {last['spans_written']}  ({len(runs)} runs in deid_runs)")
        if (last.get("model") or "").startswith("detectors+"):
            print(f"LLM {last['model'].removeprefix('detectors+')}: {last.get('llm_calls') or 0} requests sent, "
                  f"{last.get('llm_cache_hits') or 0} answered from deid_llm_answers, "
                  f"{last['notes_llm_fallback']} notes fell back to the detectors")
    if "note_phi_spans" in tables:
        spans = table(root / "note_phi_spans", columns=["entity_type", "tier"])
        grouped = spans.group_by(["entity_type", "tier"]).aggregate([("tier", "count")]).sort_by(
            [("entity_type", "ascending"), ("tier", "ascending")])
        print("\nspans per entity type and tier:")
        for row in grouped.to_pylist():
            print(f"  {row['entity_type']:<11} tier {row['tier']}  {row['tier_count']:>7}")
        found = sorted({row["entity_type"] for row in grouped.to_pylist()})
        preset = (runs[0].get("policy_preset") if "deid_runs" in tables else None) or None
        print(f"\nhow each type is masked per policy level (preset {preset or 'as in conf/policies.yaml'}; a span is"
              " masked at level k when its tier <= k):")
        for line in _masking_table(found, preset):
            print("  " + line)
    levels = {k: table(root / f"note_deid_l{k}", columns=["note_id", "note_text", "masked_count"])
              .sort_by("note_id").to_pylist() for k in (1, 2, 3) if f"note_deid_l{k}" in tables}
    if len(levels) == 3 and args.show:
        by_id = {k: {r["note_id"]: r for r in rows} for k, rows in levels.items()}
        common = [i for i in by_id[1]
                  if i in by_id[3] and (by_id[3][i]["masked_count"] or 0) > (by_id[1][i]["masked_count"] or 0)]
        examples = sorted(common, key=lambda i: by_id[1][i]["masked_count"] - by_id[3][i]["masked_count"])[:args.show]
        print(f"\n{len(examples)} notes at each policy level (from where levels 1 and 3 first differ):")
        for note_id in examples:
            t1, t3 = by_id[1][note_id]["note_text"] or "", by_id[3][note_id]["note_text"] or ""
            cut = next((i for i, (a, b) in enumerate(zip(t1, t3, strict=False)) if a != b), 0)
            start = max(0, cut - 12)
            for k in (1, 2, 3):
                row = by_id[k][note_id]
                text = (row["note_text"] or "")[start:start + args.width].replace("\n", " ")
                print(f"  note {note_id} level {k} ({row['masked_count']:>2} masked): ...{text}...")
    print("\nquery them:")
    print(f"  Spark SQL : PATH=.venv/bin:$PATH spark-submit jobs/sql.py --root {root} "
          f"\"SELECT entity_type, tier, count(*) FROM note_phi_spans GROUP BY 1, 2\"")
    print(f"  Arrow     : .venv/bin/python -c \"from deid.query import table; "
          f"print(table('{root}/note_deid_l3', columns=['note_id', 'note_text']).slice(0, 5))\"")
    print(f"  DuckDB    : .venv/bin/python -c \"from deid.query import duckdb; "
          f"print(duckdb().sql(\\\"SELECT note_id, masked_count FROM delta_scan('{root}/note_deid_l1') LIMIT 5\\\"))\"")
    return 0


def _masking_table(types: list[str], preset: str | None) -> list[str]:
    """One line per entity type: the operator each policy level applies to it."""
    from deid.config import load_config
    from deid.masking import load_policies
    from deid.spans import EntityType
    policies = load_policies(load_config().policies_path, preset)
    lines = [f"{'':12}{'level 1':<24}{'level 2':<24}level 3"]
    for name in types:
        specs = [policies[k].spec(EntityType(name)) for k in (1, 2, 3)]
        cells = [s.operator + (f" to {s.keep}" if s.operator == "generalize" else
                               f" ±{s.max_days} days" if s.operator == "shift" else "") for s in specs]
        lines.append(f"{name:<12}" + "".join(f"{c:<23} " for c in cells[:2]) + cells[2])
    return lines


def cmd_build_index(args) -> int:
    from deid.llm.retrieval import alias_accuracy, build_index, make_embedder
    from deid.resources import Resources
    embedder = make_embedder(args.embedder)
    resources = Resources.from_environment()
    index = build_index(embedder, resources=resources)
    data = index.to_bytes()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(data)
    acc, n = alias_accuracy(embedder, resources)
    print(f"wrote {args.out}: {len(index.entries)} entries, {len(data)} bytes, embedder {embedder.name}; "
          f"held-out alias -> hospital top-1 {acc:.3f} on {n} aliases")
    return 0


def cmd_serve(args) -> int:
    import yaml

    from deid.serving.app import serve_forever
    with open(args.config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if args.port:
        config["port"] = args.port
    serve_forever(config)
    return 0


def _review_settings(args):
    from deid.resources import Resources
    from deid.review.app import Settings
    return Settings(root=args.root, notes_table=args.notes or str(Path(args.root) / "omop" / "note"),
                    accounts=args.accounts or str(Path(args.root) / "_review" / "accounts.yaml"),
                    tls=bool(args.tls_cert and args.tls_key), trusted_proxy_header=args.trusted_proxy_header,
                    trusted_proxies=tuple(args.trusted_proxy or ()), allowed_hosts=tuple(args.allowed_host or ()),
                    seed=args.seed, double_share=args.double_share, quota=args.quota,
                    min_rejections=args.min_rejections, resources=str(Resources.from_environment().root))


def cmd_review(args) -> int:
    """The review page (serve), its exports, and its accounts."""
    settings = _review_settings(args)
    if args.action == "add-user":
        import getpass
        import secrets

        from deid.review.auth import save_account
        if not args.user:
            raise UsageError("add-user needs --user")
        password = os.environ.get("DEID_REVIEW_PASSWORD") or (secrets.token_urlsafe(12) if args.generate else None)
        if password is None:
            password = getpass.getpass(f"password for {args.user}: ")
        Path(settings.accounts).parent.mkdir(parents=True, exist_ok=True)
        save_account(settings.accounts, args.user, args.role, password)
        print(f"account {args.user} ({args.role}) saved in {settings.accounts}")
        if args.generate and not os.environ.get("DEID_REVIEW_PASSWORD"):
            print(f"generated password (shown once): {password}")
        return 0
    if args.action == "export":
        from deid.review.export import write_dictionary_patch, write_gold
        from deid.review.source import ReviewSource
        from deid.review.store import ReviewStore
        if not (args.dictionaries or args.gold):
            raise UsageError("export needs --dictionaries OUT and/or --gold FILE")
        store = ReviewStore(settings.root)
        rows = store.decisions()
        source = ReviewSource(settings.root, settings.notes_table)
        if args.dictionaries:
            summary = write_dictionary_patch(rows, source, args.dictionaries, settings.min_rejections,
                                             settings.resource_folder())
            store.audit(getpass_user(), "export dictionaries.patch", detail=json.dumps(summary, ensure_ascii=False))
            print(f"dictionary patch in {args.dictionaries}/dictionaries.patch (edited files under "
                  f"{args.dictionaries}/resources): {json.dumps(summary, ensure_ascii=False)}")
            print("nothing changed in resources/ -- review the patch, `git apply` it, then run "
                  "spark-submit jobs/deid_notes.py --reprocess affected")
        if args.gold:
            summary = write_gold(rows, source, args.gold)
            store.audit(getpass_user(), "export gold", detail=json.dumps(summary, ensure_ascii=False))
            print(f"gold JSONL ({summary['notes']} notes, {summary['stale_decisions']} stale decisions left out) in "
                  f"{args.gold}; it holds raw note text (mode 0600). Score with: deid eval --gold {args.gold}")
        return 0
    from deid.review.app import serve
    if not Path(settings.accounts).exists():
        raise UsageError(f"no accounts file at {settings.accounts}; create one with "
                         f"deid review add-user --root {args.root} --user NAME --role admin")
    serve(settings, args.host, args.port, args.tls_cert, args.tls_key)
    return 0


def getpass_user() -> str:
    """Who ran a command-line export, for the audit table."""
    import getpass
    return f"cli:{getpass.getuser()}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deid", description="De-identify Chinese clinical notes.")
    parser.add_argument("--version", action="version", version=f"deid {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    parser.add_argument("--log-level", default="WARNING", choices=LOG_LEVELS, type=str.upper)
    parser.add_argument("--quiet", action="store_true", help="log errors only (same as --log-level ERROR)")
    sub = parser.add_subparsers(dest="command", required=True)

    a = sub.add_parser("annotate", help="find, tier and mask; notes in, JSONL out, or one --text")
    a.add_argument("--input", help="JSON Lines ({\"id\": ..., \"text\": ...} per line), CSV with a header (id or "
                                   "note_id, text or note_text, optional person_id, note_date), a .txt file (one "
                                   "note) or a folder of .txt files (one note each; the file name is the id)")
    a.add_argument("--input-format", choices=NOTE_FORMATS, help="the kind of --input (default: from its name)")
    a.add_argument("--encoding", default="utf-8", type=_encoding, help="of the input (e.g. gb18030; default utf-8)")
    a.add_argument("--output", help="JSONL, one {id, spans, masked} per line")
    a.add_argument("--text", help="annotate this one note and pretty-print the result")
    a.add_argument("--config", help="pipeline config (default conf/pipeline.yaml)")
    a.set_defaults(func=cmd_annotate)

    s = sub.add_parser("synth", help="generate synthetic OMOP NOTE rows with gold spans")
    s.add_argument("--n", type=int, default=2000)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--out", required=True, help="output folder (notes.jsonl, notes.parquet)")
    s.add_argument("--delta", help="also write the NOTE rows as a Delta table here")
    s.set_defaults(func=cmd_synth)

    e = sub.add_parser("eval", help="score the pipeline against gold spans (paper's Tables 1 and 2)")
    e.add_argument("--gold", required=True, help="JSONL with id, text, spans (as written by deid synth)")
    e.add_argument("--config", help="pipeline config (default conf/pipeline.yaml)")
    e.add_argument("--errors", type=int, default=0, help="print the first N errors")
    e.add_argument("--json", help="also write the scores as JSON here")
    e.add_argument("--limit", type=int, help="score only the first N notes")
    e.add_argument("--llm", help="an OpenAI-compatible endpoint: score detectors, LLM and ensemble side by side")
    e.add_argument("--llm-format", default="json", choices=["json", "markup"])
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("eval-real",
                       help="score on public real-text corpora (addresses, names, EMR, questions, real context)")
    r.add_argument("--data", help="folder holding the corpora (default $DEID_REAL_DATA)")
    r.add_argument("--corpus", action="append", help="only this corpus (repeatable)")
    r.add_argument("--config", help="pipeline config (default conf/pipeline.yaml)")
    r.add_argument("--errors", type=int, default=0, help="print the first N errors per corpus")
    r.add_argument("--limit", type=int, help="score only the first N notes of each corpus")
    r.add_argument("--json", help="also write the scores as JSON here")
    r.add_argument("--write-gold", help="also write each corpus as gold JSONL (what deid eval reads) here")
    r.set_defaults(func=cmd_eval_real)

    d = sub.add_parser("icd-dictionary", help="make the STD/pregnancy ICD-10 dictionary from the clinical edition 2.0")
    d.add_argument("--data", help="folder holding the corpora (default $DEID_REAL_DATA)")
    d.add_argument("--out", default="resources/dictionaries/icd10_sensitive.tsv")
    d.set_defaults(func=cmd_icd_dictionary)

    m = sub.add_parser("summary", help="summarize the Delta outputs of the Spark job (no Spark needed)")
    m.add_argument("--root", default="data", help="folder holding the output tables")
    m.add_argument("--width", type=int, default=110, help="characters of each masked example to show")
    m.add_argument("--show", type=int, default=0, metavar="N",
                   help="also print N masked notes at each level (masked text: keep it out of scheduler logs)")
    m.set_defaults(func=cmd_summary)

    b = sub.add_parser("build-index", help="embed dictionary entries into a FAISS index (bytes on disk)")
    b.add_argument("--out", default="data/index/entries.faiss")
    b.add_argument("--embedder", default="hashing", help="hashing, or a sentence-transformers model name")
    b.set_defaults(func=cmd_build_index)

    v = sub.add_parser("serve", help="run the Ray Serve LLM application (OpenAI-compatible HTTP) until stopped")
    v.add_argument("--config", default="conf/serve-local.yaml")
    v.add_argument("--port", type=int, help="override the config's port")
    v.set_defaults(func=cmd_serve)

    w = sub.add_parser("review", help="the review web page over the job's tables, its exports and accounts")
    w.add_argument("action", nargs="?", default="serve", choices=["serve", "export", "add-user"])
    w.add_argument("--root", default="data", help="folder holding the job's output tables")
    w.add_argument("--notes", help="the NOTE Delta table (default ROOT/omop/note)")
    w.add_argument("--accounts", help="accounts file (default ROOT/_review/accounts.yaml)")
    w.add_argument("--host", default="127.0.0.1")
    w.add_argument("--port", type=int, default=8787)
    w.add_argument("--tls-cert", help="TLS certificate (PEM); with --tls-key, required off loopback")
    w.add_argument("--tls-key", help="TLS private key (PEM)")
    w.add_argument("--trusted-proxy-header",
                   help="trust this header (e.g. X-Remote-User) as the signed-in user: only "
                        "behind a reverse proxy that authenticates and strips it from clients")
    w.add_argument("--trusted-proxy", action="append", metavar="ADDR",
                   help="the reverse proxy's address (repeatable): the proxy header is believed from these only")
    w.add_argument("--allowed-host", action="append", metavar="NAME",
                   help="a host name requests may be addressed to "
                        "(repeatable; default on loopback: the loopback names)")
    w.add_argument("--seed", type=int, default=0, help="seed of the sampling orders")
    w.add_argument("--double-share", type=float, default=0.1, help="share of notes given to two reviewers")
    w.add_argument("--quota", type=int, default=20, help="notes per (type, tier) in the quota queue")
    w.add_argument("--min-rejections", type=int, default=2, help="rejections before a term is allow-listed")
    w.add_argument("--dictionaries", help="export: write the proposed dictionary patch into this folder")
    w.add_argument("--gold", help="export: write reviewed notes as gold JSONL here")
    w.add_argument("--user", help="add-user: account name")
    w.add_argument("--role", default="reviewer", choices=["reviewer", "admin"])
    w.add_argument("--generate", action="store_true", help="add-user: generate the password and print it once "
                                                            "(else $DEID_REVIEW_PASSWORD, else a prompt)")
    w.set_defaults(func=cmd_review)
    return parser


def _user_errors() -> tuple:
    """The project's own errors whose message says what to fix; imported only once something failed."""
    from deid.config import ConfigError
    from deid.corpora import SourceMismatch
    from deid.io import MissingSecret, SchemaError
    from deid.masking import PolicyError
    from deid.pipeline import NoteError
    from deid.serving.gguf import ModelFileError
    return UsageError, ConfigError, PolicyError, MissingSecret, SchemaError, SourceMismatch, NoteError, ModelFileError


# The errors of a path the user gave, and what to do about each.
_PATH_ERROR_FIXES = {FileNotFoundError: "does not exist; check the path",
                     IsADirectoryError: "is a folder; give a file",
                     NotADirectoryError: "is not a folder; give a folder",
                     PermissionError: "cannot be opened: permission denied; check who may read or write it"}


def _failure(exc: Exception) -> tuple[int, str]:
    """The exit status and the one line for a failure; never a message that could hold note text."""
    for kind, fix in _PATH_ERROR_FIXES.items():
        if isinstance(exc, kind):
            return EXIT_USAGE, f"{exc.filename or 'a path'} {fix}"
    if isinstance(exc, UnicodeDecodeError):
        return EXIT_USAGE, f"an input is {_decode_error_text(exc)}"
    if isinstance(exc, _user_errors()):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, OSError):   # disk full, network: nothing wrong with the command, the run failed
        return EXIT_FAILED, f"{exc.strerror or type(exc).__name__}{f': {exc.filename}' if exc.filename else ''}"
    return EXIT_FAILED, f"unexpected {type(exc).__name__}; run deid --debug ... for the traceback"


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel("ERROR" if args.quiet else args.log_level)   # also where handlers already exist
    try:
        return args.func(args)
    except Exception as exc:
        return report(exc, _failure, args.debug)


if __name__ == "__main__":
    sys.exit(main())
