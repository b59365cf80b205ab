"""The review loop on real Delta tables written by the real Spark job: sampling, decision storage, conflicts,
statistics against worked examples, both exports, the web application's security, and the whole workflow in a
real headless Chromium (Debian's chromium + chromedriver, driven by Selenium)."""
import dataclasses
import json
import multiprocessing
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from fastapi.testclient import TestClient
from support import free_port
from test_job import job, spark, write_notes  # noqa: F401 - spark is a fixture

from deid import io as dio
from deid.detectors.id_number import check_char
from deid.query import table
from deid.resources import resources_dir
from deid.review import app as review_app
from deid.review import export, stats
from deid.review.auth import hash_password, load_accounts, save_account, verify_password
from deid.review.export import write_dictionary_patch, write_gold
from deid.review.sampling import Queue, doubled, orders
from deid.review.source import ReviewSource
from deid.review.store import Decision, ReviewStore, effective
from deid.synth.generator import generate
from deid.synth.omop import note_table
from jobs.deid_notes import run

ROOT = Path(__file__).resolve().parent.parent
TERM = "仁心堂"                       # a clinic no dictionary knows: the reviewer adds it as a HOSPITAL
TERM_NOTES = 3                      # how many notes mention it
PASSWORDS = {"admin": "admin-pw-0", "rita": "rita-pw-0", "rolf": "rolf-pw-0"}


@pytest.fixture(scope="module")
def outputs(spark, tmp_path_factory):  # noqa: F811 - the fixture imported above
    """The job's tables for 12 notes; TERM appended to the first note of the random queue and two others."""
    base = tmp_path_factory.mktemp("review")
    rows = note_table(generate(12, 321)).to_pylist()
    ids = [r["note_id"] for r in rows]
    first = orders(pa.table({"note_id": ids}), pa.table({c: [] for c in
                   ["note_id", "entity_type", "tier", "detector", "score"]}), 0, 20)["random"][0]
    holders = [first] + [i for i in ids if i != first][:TERM_NOTES - 1]
    for r in rows:
        if r["note_id"] in holders:
            r["note_text"] += f"既往曾于{TERM}就诊。"
    write_notes(base, pa.Table.from_pylist(rows, schema=note_table(generate(1, 1)).schema))
    first_run = run(spark, job(base))
    assert first_run["notes_written"] == 12
    return base, holders


@pytest.fixture()
def site(outputs, tmp_path):
    """A private copy of the tables and an accounts file: each test's decisions are its own."""
    base, holders = outputs
    shutil.copytree(base / "note", tmp_path / "note")
    shutil.copytree(base / "out", tmp_path / "out", ignore=shutil.ignore_patterns("_staging"))
    accounts = tmp_path / "accounts.yaml"
    save_account(accounts, "admin", "admin", PASSWORDS["admin"])
    save_account(accounts, "rita", "reviewer", PASSWORDS["rita"])
    save_account(accounts, "rolf", "reviewer", PASSWORDS["rolf"])
    settings = review_app.Settings(root=str(tmp_path / "out"), notes_table=str(tmp_path / "note"),
                                   accounts=str(accounts))
    return settings, holders


def source_of(settings) -> ReviewSource:
    return ReviewSource(settings.root, settings.notes_table)


def decision(view, action, span=None, reviewer="rita", strategy="random", **kw) -> Decision:
    span_kw = {}
    if span is not None:
        span_kw = dict(field=span["field"], span_start=span["span_start"], span_end=span["span_end"],
                       old_type=span.get("entity_type"), old_tier=span.get("tier"))
    return Decision(reviewer=reviewer, note_id=view.note_id, note_digest=view.digest,
                    pipeline_version=view.pipeline_version, action=action, strategy=strategy, **span_kw, **kw)


def finish(view, reviewer="rita", strategy="random", decided=()) -> list[Decision]:
    """What the done action writes: confirms for spans not decided, then done."""
    keys = {(d.field, d.span_start, d.span_end) for d in decided}
    rows = [decision(view, "confirm", s, reviewer, strategy, new_type=s["entity_type"], new_tier=s["tier"])
            for s in view.spans if (s["field"], s["span_start"], s["span_end"]) not in keys]
    return rows + [decision(view, "done", None, reviewer, strategy)]


def text_of(view, field, term) -> dict:
    start = view.original[field].index(term)
    return {"field": field, "span_start": start, "span_end": start + len(term)}


def shared_values(source, entity_type) -> dict[str, list]:
    """Values the pipeline found as `entity_type` in two notes or more -> [(view, span)], one per note."""
    found = {}
    for note_id in sorted(source.processed_notes().column("note_id").to_pylist()):
        view = source.note(note_id)
        for s in view.spans:
            if s["entity_type"] == entity_type:
                value = view.original[s["field"]][s["span_start"]:s["span_end"]]
                found.setdefault(value, {}).setdefault(note_id, (view, s))
    return {value: list(at.values()) for value, at in found.items() if len(at) >= 2}


# ---------------------------------------------------------------------------------------------- statistics

def test_wilson_interval_matches_worked_examples():
    lo, hi = stats.wilson(8, 10)                     # Newcombe (1998), method 3: 0.4902 to 0.9433
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    lo, hi = stats.wilson(0, 10)
    assert lo == 0.0 and round(hi, 4) == 0.2775
    assert stats.wilson(0, 0) is None


def test_cohen_kappa_matches_worked_example():
    # 50 items: both yes 20, A yes B no 5, A no B yes 10, both no 15 -> p_o 0.70, p_e 0.50, kappa 0.40.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert stats.cohen_kappa(pairs) == pytest.approx(0.4)
    assert stats.cohen_kappa([("a", "a")] * 3) == 1.0
    assert stats.cohen_kappa([]) is None


def test_precision_recall_and_agreement_from_decisions(site):
    settings, holders = site
    source = source_of(settings)
    view = source.note(holders[0])
    spans = view.spans
    assert len(spans) >= 3
    retyped_to = "ADDRESS" if spans[1]["entity_type"] != "ADDRESS" else "NAME"
    rita = [decision(view, "reject", spans[0]),
            decision(view, "retype", spans[1], new_type=retyped_to, new_tier=spans[1]["tier"]),
            decision(view, "add", text_of(view, "note_text", TERM), new_type="HOSPITAL", new_tier=1)]
    rolf = [decision(view, "reject", spans[0], reviewer="rolf")]
    rows = [asdict_row(d) for d in rita + finish(view, decided=rita) + rolf + finish(view, "rolf", decided=rolf)]
    per_type = stats.precision_recall(rows)
    kept = len(spans) - 2                            # one rejected, one retyped away
    assert sum(t["found"] for t in per_type.values()) == 2 * len(spans)     # two reviewers, every span judged
    assert sum(t["right"] for t in per_type.values()) == kept + (len(spans) - 1)
    assert per_type["HOSPITAL"]["missed"] >= 1
    assert per_type[retyped_to]["missed"] >= 1      # the retyped span counts as missed under its new type
    agreement = stats.agreement(rows)
    assert agreement["notes"] == 1 and agreement["spans"] == len(spans) + 1     # the added span is a unit too
    pairs = [(stats.NOT_PHI, stats.NOT_PHI)] + [(s["entity_type"], s["entity_type"]) for s in spans[2:]] + \
        [(retyped_to, spans[1]["entity_type"]), ("HOSPITAL", stats.NOT_PHI)]   # they differ on two units
    assert agreement["kappa"] == pytest.approx(stats.cohen_kappa(pairs)) and 0 < agreement["kappa"] < 1
    # Notes from the other queues do not enter precision and recall.
    assert stats.precision_recall([dict(r, strategy="low_score") for r in rows]) == {}


def asdict_row(d: Decision) -> dict:
    from dataclasses import asdict
    return asdict(d)


# ---------------------------------------------------------------------------------------------- storage

def _append_many(root: str, reviewer: str, n: int) -> None:
    store = ReviewStore(root)
    for i in range(n):
        store.append([Decision(reviewer=reviewer, note_id=i, note_digest="d", pipeline_version="v", action="comment",
                               comment=str(i))])


def test_two_writers_at_once_lose_nothing(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_append_many, args=(str(tmp_path), who, 15)) for who in ("rita", "rolf")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
        assert w.exitcode == 0
    rows = ReviewStore(tmp_path).decisions()
    assert len(rows) == 30
    store = ReviewStore(tmp_path)
    store.compact()                                  # what the server does at start-up
    assert len(DeltaTable(str(tmp_path / "deid_review")).file_uris()) == 1
    assert sorted(map(str, store.decisions())) == sorted(map(str, rows))
    assert {(r["reviewer"], r["comment"]) for r in rows} == {(w, str(i)) for w in ("rita", "rolf") for i in range(15)}


def test_undo_takes_back_exactly_one_decision(site):
    settings, holders = site
    view = source_of(settings).note(holders[0])
    store = ReviewStore(settings.root)
    first, second = decision(view, "reject", view.spans[0]), decision(view, "confirm", view.spans[1])
    store.append([first, second])
    store.append([decision(view, "undo", undoes=second.decision_id)])
    live = effective(store.decisions(view.note_id))
    assert [r["decision_id"] for r in live] == [first.decision_id]


def test_decision_needs_offsets_and_known_action():
    with pytest.raises(ValueError):
        Decision(reviewer="r", note_id=1, note_digest="d", pipeline_version="v", action="confirm")
    with pytest.raises(ValueError):
        Decision(reviewer="r", note_id=1, note_digest="d", pipeline_version="v", action="approve")


# ---------------------------------------------------------------------------------------------- sampling

def test_sampling_strategies(site):
    settings, holders = site
    source = source_of(settings)
    notes, spans = source.processed_notes(), source.span_index()
    got = orders(notes, spans, seed=5, quota=2)
    assert sorted(got["random"]) == sorted(notes.column("note_id").to_pylist())      # notes without spans too
    assert got == orders(notes, spans, seed=5, quota=2) and got["random"] != orders(notes, spans, 6, 2)["random"]
    lowest = {}
    for r in spans.to_pylist():
        lowest[r["note_id"]] = min(lowest.get(r["note_id"], 1), r["score"])
    assert [lowest[n] for n in got["low_score"]] == sorted(lowest.values())
    assert got["llm_only"] == []                     # no LLM stage in this run
    lone = {r["note_id"] for r in spans.to_pylist() if "+" not in r["detector"]}
    assert set(got["disagreement"]) <= lone and got["disagreement"]
    cells = {(r["entity_type"], r["tier"]) for r in spans.to_pylist()}
    covered = {(r["entity_type"], r["tier"]) for r in spans.to_pylist() if r["note_id"] in got["quota"]}
    assert covered == cells and len(got["quota"]) <= 2 * len(cells)


def test_queue_gives_each_note_once_and_doubles_a_share(site):
    settings, _ = site
    source, store = source_of(settings), ReviewStore(settings.root)
    queue = Queue(source, store, seed=0, double_share=0.0)
    a = queue.next("rita", "random")
    assert queue.next("rita", "random") == a                 # unfinished: it comes back to her
    b = queue.next("rolf", "random")
    assert b != a                                            # claimed by rita, not doubled
    store.append(finish(source.note(a), "rita"))
    queue.release("rita", a)
    c = queue.next("rita", "random")
    assert c not in (a, b)                                   # finished notes never come back to her
    assert queue.progress()["random"]["finished"] == 1
    # Every note doubled: the second reviewer gets the note the first finished.
    both = Queue(source, store, seed=0, double_share=1.0)
    assert both.next("rolf", "random") == a
    assert sum(doubled(n, 0, 0.1) for n in range(10000)) == pytest.approx(1000, abs=100)


# ---------------------------------------------------------------------------------------------- conflicts

def test_changed_note_refuses_decisions_and_old_ones_are_not_applied(site):
    settings, holders = site
    client = signed_in(settings, "rita")
    source = source_of(settings)
    view = source.note(holders[0])
    store = ReviewStore(settings.root)
    rejected = decision(view, "reject", view.spans[0])
    store.append([rejected] + finish(view, decided=[rejected]))
    original = table(settings.notes_table)
    notes = original.to_pylist()
    for r in notes:
        if r["note_id"] == view.note_id:
            r["note_text"] = r["note_text"].replace(TERM, "另一诊所")
    write_deltalake(settings.notes_table, pa.Table.from_pylist(notes, schema=original.schema), mode="overwrite")
    changed = source.note(view.note_id)
    assert changed.changed and changed.digest != view.digest
    page = client.get(f"/note/{view.note_id}")
    assert "changed after the job processed it" in page.text and "not applied" in page.text
    answer = client.post(f"/api/note/{view.note_id}/decide", headers=client.csrf_header,
                         json={"action": "confirm", "field": "note_text", "start": view.spans[0]["span_start"],
                               "end": view.spans[0]["span_end"], "digest": view.digest})
    assert answer.status_code == 409 and "changed" in answer.json()["error"]
    summary = write_gold(store.decisions(), source, Path(settings.root) / "gold.jsonl")
    assert summary["notes"] == 0 and summary["stale_decisions"] > 0


# ---------------------------------------------------------------------------------------------- exports

def test_dictionary_export_proposes_allow_list_and_entries_and_the_patch_applies(site, tmp_path, monkeypatch):
    settings, holders = site
    source, store = source_of(settings), ReviewStore(settings.root)
    first, second = source.note(holders[0]), source.note(holders[1])
    # A detected name rejected by two reviewers on two notes (a name that is not one, say): allow-listed; a term
    # rejected once is not.
    term, [(named, rejected), (named_too, rejected_too), *_] = next(iter(shared_values(source, "NAME").items()))
    once = next(s for s in second.spans if s["field"] == "note_text"
                and second.original["note_text"][s["span_start"]:s["span_end"]] != term)
    store.append([decision(named, "reject", rejected), decision(named_too, "reject", rejected_too, reviewer="rolf"),
                  decision(second, "reject", once),
                  decision(first, "add", text_of(first, "note_text", TERM), new_type="HOSPITAL", new_tier=1),
                  decision(second, "add", text_of(second, "note_text", second.original["note_text"][:2]),
                           new_type="NAME", new_tier=1)])
    out = tmp_path / "export"
    summary = write_dictionary_patch(store.decisions(), source, out)
    assert summary["allow_list_entries"] == 1 and summary["dictionary_entries"] == 1
    assert summary["rejections_below_threshold"] == 1
    assert summary["patient_specific_missed_not_written"] == {"NAME": 1}
    assert sorted(summary["files_changed"]) == ["dictionaries/allow_list.tsv", "dictionaries/hospitals.tsv"]
    patch = (out / "dictionaries.patch").read_text(encoding="utf-8")
    assert f"+{term}\t{rejected['entity_type']}" in patch and f"+{TERM}\t\t\t" in patch
    allow_list = (resources_dir() / "dictionaries" / "allow_list.tsv").read_text(encoding="utf-8")
    assert allow_list.count("\n") < 6  # untouched
    site_dir = tmp_path / "site"
    shutil.copytree(resources_dir(), site_dir / "resources")
    subprocess.run(["git", "apply", "--unsafe-paths", str(out / "dictionaries.patch")], cwd=site_dir, check=True)
    assert (site_dir / "resources" / "dictionaries" / "hospitals.tsv").read_text(encoding="utf-8") == \
        (out / "resources" / "dictionaries" / "hospitals.tsv").read_text(encoding="utf-8")
    # With the patched dictionaries the pipeline no longer tags the rejected term and does find the clinic.
    monkeypatch.setenv("DEID_RESOURCES", str(site_dir / "resources"))
    from deid.pipeline import Pipeline
    pipeline = Pipeline()
    assert not any(s.text == term and s.entity_type.value == "NAME"
                   for s in pipeline.analyze(named.original[rejected["field"]]))
    assert any(s.text == TERM and s.entity_type.value == "HOSPITAL"
               for s in pipeline.analyze(first.original["note_text"]))


def test_gold_export_is_read_by_deid_eval(site, tmp_path):
    settings, holders = site
    source, store = source_of(settings), ReviewStore(settings.root)
    view = source.note(holders[0])
    decided = [decision(view, "reject", view.spans[0]),
               decision(view, "add", text_of(view, "note_text", TERM), new_type="HOSPITAL", new_tier=1)]
    store.append(decided + finish(view, decided=decided))
    gold = tmp_path / "gold.jsonl"
    assert write_gold(store.decisions(), source, gold)["notes"] == 1
    assert oct(gold.stat().st_mode & 0o777) == "0o600"
    note = json.loads(gold.read_text(encoding="utf-8"))
    assert note["id"] == view.note_id and note["text"] == view.original["note_text"]
    assert any(s["text"] == TERM and s["type"] == "HOSPITAL" for s in note["spans"])
    gone = view.spans[0]
    assert not any((s["start"], s["end"]) == (gone["span_start"], gone["span_end"]) for s in note["spans"]
                   if gone["field"] == "note_text")
    assert all(note["text"][s["start"]:s["end"]] == s["text"] for s in note["spans"])
    scored = subprocess.run([sys.executable, "-m", "deid.cli", "eval", "--gold", str(gold)], capture_output=True,
                            text=True, cwd=ROOT)
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert "HOSPITAL" in scored.stdout


def exported(store, source, out) -> tuple[dict, str]:
    summary = write_dictionary_patch(store.decisions(), source, out)
    return summary, (out / "dictionaries.patch").read_text(encoding="utf-8")


def test_a_name_is_allow_listed_only_after_two_reviewers_on_two_notes(site, tmp_path):
    settings, _ = site
    source, store = source_of(settings), ReviewStore(settings.root)
    name, [(a, on_a), (b, on_b), *_] = next(iter(shared_values(source, "NAME").items()))
    store.append([decision(a, "reject", on_a), decision(a, "reject", on_a)])       # one reviewer, twice on one note
    summary, patch = exported(store, source, tmp_path / "once")
    assert f"+{name}\t" not in patch and summary["rejections_below_threshold"] == 1     # one rejection, not two
    store.append([decision(b, "reject", on_b)])                                    # the same reviewer on a second note
    summary, patch = exported(store, source, tmp_path / "one-reviewer")
    assert f"+{name}\t" not in patch and summary["rejections_not_independent"] == 1
    store.append([decision(a, "reject", on_a, reviewer="rolf")])                   # a second reviewer
    summary, patch = exported(store, source, tmp_path / "two")
    assert f"+{name}\tNAME\n" in patch and summary["allow_list_entries"] == 1


def test_values_with_a_structure_are_never_allow_listed(site, tmp_path):
    settings, holders = site
    source, store = source_of(settings), ReviewStore(settings.root)
    id_number = "11010519491231002" + check_char("11010519491231002")     # a valid check character
    values = {id_number: "ID_NUMBER", "13812345678": "CONTACT", "zhang.wei@example.com": "CONTACT"}
    # Two notes that hold the values (written into them here: which values the synthetic notes repeat varies).
    notes = table(settings.notes_table)
    rows = notes.to_pylist()
    for r in rows:
        if r["note_id"] in holders[:2]:
            r["note_text"] += "身份证号" + id_number + "，电话13812345678，邮箱zhang.wei@example.com。"
    write_deltalake(settings.notes_table, pa.Table.from_pylist(rows, schema=notes.schema), mode="overwrite")
    a, b = (source.note(n) for n in holders[:2])
    for value, entity_type in values.items():             # each rejected by two reviewers on two notes
        store.append([decision(a, "reject", dict(text_of(a, "note_text", value), entity_type=entity_type, tier=1)),
                      decision(b, "reject", dict(text_of(b, "note_text", value), entity_type=entity_type, tier=1),
                               reviewer="rolf")])
    summary, patch = exported(store, source, tmp_path / "export")
    assert patch == "" and summary["allow_list_entries"] == 0 and summary["files_changed"] == []
    assert summary["structural_values_not_allowed"] == len(values)


def test_the_word_before_names_reviewers_added_on_two_notes_becomes_a_cue(site, tmp_path):
    """Missed names after the same word (护工王小明), added by two reviewers on two notes, propose the word as a cue
    of lexicons/person_context.tsv; with the patch applied, the name detector finds a name after it."""
    from deid.detectors.base import Document
    from deid.detectors.name import NameDetector
    from deid.resources import Resources
    settings, holders = site
    source, store = source_of(settings), ReviewStore(settings.root)
    notes = table(settings.notes_table)
    rows = notes.to_pylist()
    for r in rows:
        if r["note_id"] in holders[:2]:
            r["note_text"] += "护工王小明在旁。"
    write_deltalake(settings.notes_table, pa.Table.from_pylist(rows, schema=notes.schema), mode="overwrite")
    a, b = (source.note(n) for n in holders[:2])
    added = {"new_type": "NAME", "new_tier": 1}
    store.append([decision(a, "add", text_of(a, "note_text", "王小明"), **added)])
    summary, patch = exported(store, source, tmp_path / "one")
    assert summary["cue_entries"] == 0 and "lexicons" not in patch          # one reviewer on one note: no cue
    store.append([decision(b, "add", text_of(b, "note_text", "王小明"), reviewer="rolf", **added)])
    summary, patch = exported(store, source, tmp_path / "two")
    assert summary["cue_entries"] == 1 and "+护工\tcue\n" in patch
    assert "王小明" not in patch                                                # the name itself is never written
    site_dir = tmp_path / "site"
    shutil.copytree(resources_dir(), site_dir / "resources")
    subprocess.run(["git", "apply", "--unsafe-paths", str(tmp_path / "two" / "dictionaries.patch")], cwd=site_dir,
                   check=True)
    edited = Resources(site_dir / "resources")
    assert [s.text for s in NameDetector(resources=edited).detect(Document("护工李建军陪同"))] == ["李建军"]
    assert NameDetector().detect(Document("护工李建军陪同")) == []


def test_a_span_across_a_line_break_never_reaches_a_dictionary(site, tmp_path):
    settings, holders = site
    source, store = source_of(settings), ReviewStore(settings.root)
    view = source.note(holders[0])
    text = view.original["note_text"]
    cut = text.index("\n")
    across = {"field": "note_text", "span_start": cut - 2, "span_end": cut + 3}      # e.g. 病历\n姓名
    # The page refuses it.
    rita = signed_in(settings, "rita")
    answer = rita.post(f"/api/note/{view.note_id}/decide", headers=rita.csrf_header,
                       json={"action": "add", "field": "note_text", "start": cut - 2, "end": cut + 3,
                             "new_type": "HOSPITAL", "new_tier": 1, "digest": view.digest})
    assert answer.status_code == 400 and text[cut - 2:cut + 3] not in answer.text
    assert ReviewStore(settings.root).decisions() == []
    # Decisions recorded before that check existed are left out of the export.
    store.append([decision(view, "add", across, reviewer="admin", new_type="HOSPITAL", new_tier=1),
                  decision(view, "reject", dict(across, entity_type="HOSPITAL", tier=1)),
                  decision(view, "reject", dict(across, entity_type="HOSPITAL", tier=1), reviewer="rolf")])
    summary, patch = exported(store, source, tmp_path / "export")
    assert summary["unsafe_span_texts"] == 3 and summary["files_changed"] == [] and patch == ""
    terms = ("仁心堂", "仁心 堂", "仁\t心堂", "仁\u200b心堂", "仁\u2028心堂", " ", "")
    assert [export.safe_term(t) for t in terms] == [True, True, False, False, False, False, False]


def test_exports_are_readable_by_their_owner_only(site, tmp_path):
    settings, holders = site
    source, store = source_of(settings), ReviewStore(settings.root)
    view = source.note(holders[0])
    added = decision(view, "add", text_of(view, "note_text", TERM), new_type="HOSPITAL", new_tier=1)
    store.append([added] + finish(view, decided=[added]))
    out, gold = tmp_path / "export", tmp_path / "gold.jsonl"
    out.mkdir()
    for older in (out / "dictionaries.patch", gold):     # files left by an earlier export, readable by all
        older.write_text("")
        older.chmod(0o644)
    umask = os.umask(0o022)
    try:
        write_dictionary_patch(store.decisions(), source, out)
        write_gold(store.decisions(), source, gold)
    finally:
        os.umask(umask)
    written = [p for p in out.rglob("*") if p.is_file()] + [gold]
    assert len(written) == 4 and (out / "resources" / "dictionaries" / "hospitals.tsv") in written
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in written} == {p.name: "0o600" for p in written}


# ---------------------------------------------------------------------------------------------- security

class Client(TestClient):
    csrf_header: dict = {}


def signed_in(settings, user: str) -> Client:
    client = Client(review_app.create_app(settings), follow_redirects=False)
    answer = client.post("/login", data={"user": user, "password": PASSWORDS[user]})
    assert answer.status_code == 303, answer.text
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)
    client.csrf_header = {"X-CSRF-Token": token}
    client.csrf = token
    return client


def test_scrypt_hashes_and_accounts_file(tmp_path):
    stored = hash_password("s3cret")
    assert stored.startswith("scrypt$") and verify_password("s3cret", stored) and not verify_password("x", stored)
    assert hash_password("s3cret") != stored                                  # salted
    bad = tmp_path / "bad.yaml"
    bad.write_text("users: {eve: {role: reviewer, password: plain}}\n")
    with pytest.raises(ValueError, match="hash"):
        load_accounts(bad)


def test_every_page_and_action_refused_without_sign_in(site):
    settings, holders = site
    app = review_app.create_app(settings)
    client = TestClient(app, follow_redirects=False)
    note = holders[0]
    text = source_of(settings).note(note).original["note_text"]
    gets = ["/", "/progress", f"/note/{note}", "/export/gold.jsonl", "/export/dictionaries.patch"]
    posts = ["/next", "/logout", f"/api/note/{note}/decide", f"/api/note/{note}/undo", f"/api/note/{note}/done"]
    for path in gets:
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/login", path
        assert TERM not in answer.text and text[:20] not in answer.text
    for path in posts:
        answer = client.post(path, json={"action": "confirm"})
        assert answer.status_code == 401, path
        assert TERM not in answer.text
    # Every route of the application is in one of the two lists (or is the sign-in page or static files).
    routes = {(m, r.path) for r in app.routes if hasattr(r, "methods") for m in r.methods}
    tested = {("GET", p) for p in ["/", "/progress", "/note/{note_id}", "/export/{kind}", "/login"]} | \
             {("POST", p) for p in ["/next", "/logout", "/login", "/api/note/{note_id}/decide",
                                    "/api/note/{note_id}/undo", "/api/note/{note_id}/done"]}
    assert {r for r in routes if r[0] in ("GET", "POST")} <= tested | {("HEAD", "/")}


def test_writes_need_the_csrf_token(site):
    settings, holders = site
    client = signed_in(settings, "rita")
    view = source_of(settings).note(holders[0])
    body = {"action": "confirm", "field": view.spans[0]["field"], "start": view.spans[0]["span_start"],
            "end": view.spans[0]["span_end"], "digest": view.digest}
    assert client.post(f"/api/note/{view.note_id}/decide", json=body).status_code == 403
    assert client.post(f"/api/note/{view.note_id}/decide", json=body,
                       headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post("/next", data={"strategy": "random"}).status_code == 403
    assert client.post("/logout", data={}).status_code == 403
    assert ReviewStore(settings.root).decisions() == []
    assert client.post(f"/api/note/{view.note_id}/decide", json=body, headers=client.csrf_header).status_code == 200


def test_only_admins_export_and_cookies_are_strict(site):
    settings, _ = site
    rita = signed_in(settings, "rita")
    assert rita.get("/export/gold.jsonl").status_code == 403
    assert rita.get("/export/dictionaries.patch").status_code == 403
    admin = Client(review_app.create_app(settings), follow_redirects=False)
    answer = admin.post("/login", data={"user": "admin", "password": PASSWORDS["admin"]})
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    assert admin.get("/export/gold.jsonl").status_code == 200
    events = [r["event"] for r in ReviewStore(settings.root).audit_rows()]
    assert "export gold.jsonl" in events and "sign_in" in events
    tls = Client(review_app.create_app(review_app.Settings(**{**settings.__dict__, "tls": True})),
                 follow_redirects=False, base_url="https://testserver")
    assert "secure" in tls.post("/login", data={"user": "admin", "password": PASSWORDS["admin"]}
                                ).headers["set-cookie"].lower()


def test_failed_sign_ins_slow_the_client_down_and_never_lock_the_account(site):
    settings, _ = site
    app = review_app.create_app(settings)           # the defaults: 5 attempts at once, then waits of 1 s doubling
    guesser = TestClient(app, follow_redirects=False, client=("203.0.113.9", 40000))
    owner = TestClient(app, follow_redirects=False, client=("198.51.100.7", 40000))
    guess, right = {"user": "admin", "password": "guess"}, {"user": "admin", "password": PASSWORDS["admin"]}
    for _ in range(5):
        assert guesser.post("/login", data=guess).status_code == 200
    refused = guesser.post("/login", data=right)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1" and "set-cookie" not in refused.headers
    assert owner.post("/login", data=right).status_code == 303       # the guesses kept only their own address out
    time.sleep(1)
    assert guesser.post("/login", data=guess).status_code == 200     # a wait, not a lock
    assert guesser.post("/login", data=guess).headers["retry-after"] == "2"   # and the next wait is twice as long
    time.sleep(2)
    # Signing in to an account of one's own does not clear the failures before it.
    assert guesser.post("/login", data={"user": "rita", "password": PASSWORDS["rita"]}).status_code == 303
    assert guesser.post("/login", data=guess).status_code == 429


def test_unknown_users_are_refused_as_slowly_as_known_ones(site):
    settings, _ = site
    app = review_app.create_app(settings)
    answers = set()

    def refusal_time(user: str, address: str) -> float:
        client = TestClient(app, follow_redirects=False, client=(address, 40000))   # a fresh address: no wait
        start = time.perf_counter()
        answer = client.post("/login", data={"user": user, "password": "wrong"})
        took = time.perf_counter() - start
        assert answer.status_code == 200 and "set-cookie" not in answer.headers
        answers.add(re.search(r'class="message"[^>]*>([^<]*)<', answer.text).group(1))
        return took

    known, unknown = [], []
    for i in range(7):
        known.append(refusal_time("admin", f"192.0.2.{2 * i}"))
        unknown.append(refusal_time("nobody", f"192.0.2.{2 * i + 1}"))
    hashing = []
    for _ in range(3):
        start = time.perf_counter()
        hash_password("wrong")
        hashing.append(time.perf_counter() - start)
    assert abs(statistics.median(known) - statistics.median(unknown)) < statistics.median(hashing) / 2
    assert answers == {"Unknown user or wrong password."}


def test_failed_sign_ins_reach_the_audit_table_in_batches(site):
    settings, _ = site
    audit = str(Path(settings.root) / "deid_review_audit")
    with TestClient(review_app.create_app(settings), follow_redirects=False) as client:   # runs start-up, shutdown
        for _ in range(12):
            assert client.post("/login", data={"user": "rita", "password": "wrong"}).status_code in (200, 429)
        assert not DeltaTable.is_deltatable(audit)               # nothing written while they come in
    assert DeltaTable(audit).version() == 0                      # one commit at shutdown holds them all
    rows = ReviewStore(settings.root).audit_rows()
    assert len(rows) == 12 and {r["event"] for r in rows} == {"sign_in_failed", "sign_in_refused"}
    assert {r["detail"] for r in rows} == {"testclient"}          # the client's address, to tell guessers apart
    # A batch is written when it is full, and a while after its first row.
    quick = review_app.create_app(dataclasses.replace(settings, audit_batch_rows=5, audit_batch_s=0.3))
    client = TestClient(quick, follow_redirects=False)
    for _ in range(7):
        client.post("/login", data={"user": "rita", "password": "wrong"})
    assert DeltaTable(audit).version() == 1
    time.sleep(1)
    assert DeltaTable(audit).version() == 2 and len(ReviewStore(settings.root).audit_rows()) == 19


def test_posts_from_another_origin_or_to_another_host_are_refused(site):
    settings, holders = site
    client = TestClient(review_app.create_app(settings), follow_redirects=False)
    login = {"user": "rita", "password": PASSWORDS["rita"]}
    for foreign in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = client.post("/login", data=login, headers=foreign)
        assert answer.status_code == 403 and "set-cookie" not in answer.headers, foreign
    assert client.post("/login", data=login, headers={"Origin": "http://testserver"}).status_code == 303
    rita = signed_in(settings, "rita")
    view = source_of(settings).note(holders[0])
    body = {"action": "confirm", "field": view.spans[0]["field"], "start": view.spans[0]["span_start"],
            "end": view.spans[0]["span_end"], "digest": view.digest}
    answer = rita.post(f"/api/note/{view.note_id}/decide", json=body,
                       headers={**rita.csrf_header, "Origin": "http://evil.example"})
    assert answer.status_code == 403 and ReviewStore(settings.root).decisions() == []
    # With its host names set the page answers to no other (a DNS-rebound name reaches the same address).
    app = review_app.create_app(dataclasses.replace(settings, allowed_hosts=("review.example.org",)))
    assert TestClient(app, base_url="http://review.example.org").get("/login").status_code == 200
    rebound = TestClient(app, base_url="http://attacker.example", follow_redirects=False)
    assert rebound.post("/login", data=login, headers={"Origin": "http://attacker.example"}).status_code == 403
    assert rebound.get("/login").status_code == 403


def test_trusted_proxy_header_only_from_the_proxy_and_bind_refusal(site):
    settings, _ = site
    header = dict(trusted_proxy_header="X-Remote-User")
    as_admin = {"X-Remote-User": "admin"}
    # No proxy address given: the header signs in no one (it signed in any client that sent it).
    unconfigured = TestClient(review_app.create_app(dataclasses.replace(settings, **header)), follow_redirects=False,
                              client=("127.0.0.1", 40000))
    assert unconfigured.get("/export/gold.jsonl", headers=as_admin).status_code == 303
    app = review_app.create_app(dataclasses.replace(settings, trusted_proxies=("10.0.0.2",), **header))
    proxy = TestClient(app, follow_redirects=False, client=("10.0.0.2", 40000))
    local = TestClient(app, follow_redirects=False, client=("127.0.0.1", 40000))
    assert proxy.get("/", headers={"X-Remote-User": "rita"}).status_code == 200
    assert proxy.get("/", headers={"X-Remote-User": "mallory"}).status_code == 303
    assert proxy.get("/").status_code == 303
    assert local.get("/export/gold.jsonl", headers=as_admin).status_code == 303
    with pytest.raises(SystemExit, match="refusing"):
        review_app.check_bind("0.0.0.0", tls=False, trusted_proxy_header=None)
    with pytest.raises(SystemExit, match="proxy's addresses"):
        review_app.check_bind("10.0.0.5", tls=False, trusted_proxy_header="X-Remote-User")
    review_app.check_bind("0.0.0.0", tls=True, trusted_proxy_header=None)
    review_app.check_bind("10.0.0.5", tls=False, trusted_proxy_header="X-Remote-User", trusted_proxies=("10.0.0.2",))
    review_app.check_bind("127.0.0.1", tls=False, trusted_proxy_header=None)


def test_reviewers_cannot_open_quarantined_notes(site):
    settings, _ = site
    notes = table(settings.notes_table)
    held = dict(notes.to_pylist()[0], note_id=max(notes.column("note_id").to_pylist()) + 1,
                note_text="患者王某某的记录，处理失败。")
    write_deltalake(settings.notes_table, pa.Table.from_pylist([held], schema=notes.schema), mode="append")
    # What the job writes for a note it could not process.
    write_deltalake(str(Path(settings.root) / "deid_quarantine"), pa.Table.from_pylist([{
        "note_id": held["note_id"], "person_id": held["person_id"],
        "note_digest": dio.note_digest(held["note_title"], held["note_text"]), "stage": "validate",
        "error_class": "NoteTooLarge", "message": "note too large", "pipeline_version": "v", "run_id": "r",
        "quarantined_at": datetime.now(UTC)}], schema=dio.QUARANTINE), mode="append")
    rita, admin = signed_in(settings, "rita"), signed_in(settings, "admin")
    page = rita.get(f"/note/{held['note_id']}")
    assert page.status_code == 404 and held["note_text"] not in page.text
    answer = rita.post(f"/api/note/{held['note_id']}/decide", headers=rita.csrf_header,
                       json={"action": "comment", "comment": "seen",
                             "digest": dio.note_digest(held["note_title"], held["note_text"])})
    assert answer.status_code == 409 and ReviewStore(settings.root).decisions() == []
    assert held["note_text"] in admin.get(f"/note/{held['note_id']}").text


def test_cli_refuses_other_addresses_without_tls(site):
    settings, _ = site
    out = subprocess.run([sys.executable, "-m", "deid.cli", "review", "--root", settings.root, "--notes",
                          settings.notes_table, "--accounts", settings.accounts, "--host", "0.0.0.0"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode != 0 and "refusing to listen on 0.0.0.0" in out.stderr


# ---------------------------------------------------------------------------------------------- real servers

def cli_command(settings, port: int) -> list[str]:
    """`deid review` on the site's tables."""
    return [sys.executable, "-m", "deid.cli", "review", "--root", settings.root, "--notes", settings.notes_table,
            "--accounts", settings.accounts, "--port", str(port)]


def serve_command(settings, port: int) -> list[str]:
    """The same server with settings the command line does not offer."""
    code = ("import json, sys; from deid.review.app import Settings, serve; "
            "serve(Settings(**json.loads(sys.argv[1])), port=int(sys.argv[2]))")
    return [sys.executable, "-c", code, json.dumps(dataclasses.asdict(settings)), str(port)]


@contextmanager
def running(command: list[str], log: Path):
    """The server `command` starts (its last argument the port; its output in `log`), from the moment it listens
    until it is stopped as a service manager stops it (SIGTERM); yields its URL."""
    port = int(command[-1])
    with open(log, "w") as f:
        proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def test_errors_carry_the_headers_and_the_log_names_only_their_class(site, tmp_path):
    settings, holders = site
    log = tmp_path / "server.log"
    with running(cli_command(settings, free_port()), log) as url, httpx.Client(base_url=url) as client:
        assert client.post("/login", data={"user": "rita", "password": PASSWORDS["rita"]}).status_code == 303
        missing = client.get("/no-such-page")
        shutil.move(settings.notes_table, tmp_path / "moved")    # the NOTE table gone: reading a note fails
        with pytest.raises(Exception) as raised:
            source_of(settings).note(holders[0])
        failed = client.get(f"/note/{holders[0]}")
        rebound = client.get("/login", headers={"Host": f"attacker.example:{url.rsplit(':', 1)[1]}"})
    assert (missing.status_code, failed.status_code, rebound.status_code) == (404, 500, 403)
    for answer in (missing, failed, rebound):
        assert {k: answer.headers.get(k) for k in review_app.SECURITY_HEADERS} == review_app.SECURITY_HEADERS
    logged = log.read_text(encoding="utf-8")
    assert f"request failed: {type(raised.value).__name__} (ref " in logged
    assert "Traceback" not in logged and str(raised.value) not in logged and settings.notes_table not in logged


def test_a_local_client_cannot_pass_for_the_proxy(site, tmp_path):
    settings, _ = site
    proxied = dataclasses.replace(settings, trusted_proxy_header="X-Remote-User", trusted_proxies=["10.0.0.2"])
    with running(serve_command(proxied, free_port()), tmp_path / "server.log") as url:
        answer = httpx.get(url + "/export/gold.jsonl",
                           headers={"X-Remote-User": "admin", "X-Forwarded-For": "10.0.0.2"})
    assert answer.status_code == 303 and answer.headers["location"] == "/login"


# ---------------------------------------------------------------------------------------------- browser

@pytest.fixture()
def server(site, tmp_path):
    settings, holders = site
    log = tmp_path / "server.log"
    with running(cli_command(settings, free_port()), log) as url:
        yield url, log, settings, holders


@pytest.fixture()
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "chromium and chromedriver are installed by `make install` (Debian packages)"
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1100"):
        options.add_argument(arg)
    options.binary_location = binary
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()


def wait_for(browser, css, timeout=20):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(browser, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def reloaded(browser, action, timeout=20):
    """Run an action that reloads the note page, and wait for the new page."""
    from selenium.webdriver.support.ui import WebDriverWait
    marker = browser.execute_script("return window.__marker = Math.random()")
    action()
    WebDriverWait(browser, timeout).until(lambda b: b.execute_script("return window.__marker") != marker
                                          and b.execute_script("return document.readyState") == "complete")
    wait_for(browser, "#spans")


def test_review_workflow_in_a_real_browser(server, browser, tmp_path, spark, monkeypatch):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
    url, log, settings, holders = server
    browser.get(url + "/")
    wait_for(browser, "#login")
    assert browser.current_url.endswith("/login")
    browser.find_element(By.ID, "user").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys(PASSWORDS["admin"] + Keys.ENTER)
    wait_for(browser, "#next-random").click()
    wait_for(browser, "#spans")
    note_id = int(re.search(r"/note/(\d+)", browser.current_url).group(1))
    assert note_id == holders[0]
    view = source_of(settings).note(note_id)
    n = len(view.spans)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#spans tbody tr")) == n >= 4
    screenshot = tmp_path / "review-note.png"
    browser.save_screenshot(str(screenshot))
    if os.environ.get("DEID_REVIEW_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["DEID_REVIEW_SCREENSHOT"])

    def row(i):
        return browser.find_element(By.ID, f"span-{i}")
    reloaded(browser, lambda: row(0).find_element(By.CSS_SELECTOR, "button.confirm").click())
    retyped_to = "ADDRESS" if view.spans[1]["entity_type"] != "ADDRESS" else "NAME"
    reloaded(browser, lambda: Select(row(1).find_element(By.CSS_SELECTOR, "select.retype")).select_by_value(retyped_to))
    reloaded(browser, lambda: row(2).find_element(By.CSS_SELECTOR, "button.reject").click())
    assert "rejected" in row(2).find_element(By.CSS_SELECTOR, ".decision").text
    # Add a missed span by selecting its text with the mouse's API and pressing the shortcut.
    browser.execute_script("""
        const term = arguments[0];
        const seg = Array.from(document.querySelectorAll('#text-note_text .seg'))
            .find(s => s.textContent.includes(term));
        const node = seg.firstChild, at = node.data.indexOf(term);
        const range = document.createRange();
        range.setStart(node, at); range.setEnd(node, at + term.length);
        const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);""", TERM)
    wait_for(browser, "#add-panel:not(.hidden)")
    assert browser.find_element(By.ID, "add-text").text == TERM
    Select(browser.find_element(By.ID, "add-type")).select_by_value("HOSPITAL")
    Select(browser.find_element(By.ID, "add-tier")).select_by_value("1")
    reloaded(browser, lambda: browser.find_element(By.TAG_NAME, "body").send_keys("a"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#spans tbody tr")) == n + 1
    # A mistaken reject by keyboard (j moves to the next span), then undone by keyboard.
    row(3).find_element(By.TAG_NAME, "td").click()          # the row becomes the current span
    reloaded(browser, lambda: browser.find_element(By.TAG_NAME, "body").send_keys("x"))
    assert "rejected" in row(3).find_element(By.CSS_SELECTOR, ".decision").text
    reloaded(browser, lambda: browser.find_element(By.TAG_NAME, "body").send_keys("u"))
    assert "rejected" not in row(3).find_element(By.CSS_SELECTOR, ".decision").text
    browser.find_element(By.ID, "done").click()
    wait_for(browser, "#next-random")

    rows = ReviewStore(settings.root).decisions(note_id)
    live = effective(rows)
    actions = [r["action"] for r in live]
    assert actions.count("done") == 1 and {"confirm", "retype", "reject", "add"} <= set(actions)
    assert [r["action"] for r in rows if r["action"] == "undo"] == ["undo"]
    by_key = {(r["field"], r["span_start"], r["span_end"]): r for r in live if r["action"] != "done"}
    s1, s2 = view.spans[1], view.spans[2]
    assert by_key[(s1["field"], s1["span_start"], s1["span_end"])]["new_type"] == retyped_to
    assert by_key[(s2["field"], s2["span_start"], s2["span_end"])]["action"] == "reject"
    added = [r for r in live if r["action"] == "add"]
    assert len(added) == 1 and view.original["note_text"][added[0]["span_start"]:added[0]["span_end"]] == TERM
    assert all(r["reviewer"] == "admin" and r["note_digest"] == view.digest for r in live)
    assert sum(r["action"] in ("confirm", "retype", "retier", "reject") for r in live) == n   # every span judged

    # The progress page shows the random sample's figures; the admin downloads both exports.
    browser.get(url + "/progress")
    assert "Cohen's kappa" in wait_for(browser, "#agreement").text
    assert "HOSPITAL" in browser.find_element(By.ID, "quality").text

    # Both exports from the command line, then the accepted patch and an affected-only re-run.
    export = tmp_path / "export"
    gold = tmp_path / "gold.jsonl"
    out = subprocess.run([sys.executable, "-m", "deid.cli", "review", "export", "--root", settings.root, "--notes",
                          settings.notes_table, "--dictionaries", str(export), "--gold", str(gold)],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(gold.read_text(encoding="utf-8").splitlines()[0])["id"] == note_id
    site_dir = tmp_path / "site"
    shutil.copytree(resources_dir(), site_dir / "resources")
    subprocess.run(["git", "apply", str(export / "dictionaries.patch")], cwd=site_dir, check=True)
    monkeypatch.setenv("DEID_RESOURCES", str(site_dir / "resources"))
    base = Path(settings.root).parent
    before = {r["note_id"]: r for r in table(Path(settings.root) / "note_deid_l3").to_pylist()}
    rerun = run(spark, job(base, reprocess="affected"))
    assert (rerun["notes_written"], rerun["notes_moved"]) == (TERM_NOTES, 12 - TERM_NOTES)
    after = {r["note_id"]: r for r in table(Path(settings.root) / "note_deid_l3").to_pylist()}
    changed = {i for i in after if after[i]["note_text"] != before[i]["note_text"]}
    assert changed == set(holders)
    assert all(TERM not in after[i]["note_text"] for i in holders)

    # The server's log never holds note text.
    logged = log.read_text(encoding="utf-8")
    assert "GET /note/" in logged
    for span in view.spans:
        assert view.original[span["field"]][span["span_start"]:span["span_end"]] not in logged
    assert TERM not in logged


def test_every_entity_type_has_a_colour_and_a_label_on_the_page():
    """A privacy officer records a leaked 住院号 or date with the add-a-missed-span menu: every type is offered."""
    from deid.review import app as review_app
    from deid.spans import LABELS_ZH, EntityType
    css = (Path(review_app.__file__).parent / "static" / "review.css").read_text(encoding="utf-8")
    assert [t.value for t in EntityType if f".t-{t.value} " not in css] == []
    assert review_app.TYPES == [t.value for t in EntityType] and set(LABELS_ZH) == set(EntityType)
