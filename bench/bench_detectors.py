"""Detector pipeline benchmark: deid vs Microsoft Presidio on the same synthetic notes, one core each.

Each engine runs in its own subprocess pinned to one CPU, so peak RSS and throughput are its own.
Presidio is set up as close to deid as it allows offline: a blank spaCy zh pipeline (no NER model can be
downloaded here), its PhoneRecognizer (CN region) and EmailRecognizer, pattern recognizers for 18/15-digit
IDs with the GB 11643 check digit, QQ/WeChat ids in context, and deny lists from deid's own dictionaries
(hospitals with aliases, STD and pregnancy terms, division names) compiled without word boundaries, since
Presidio's deny-list boundaries (\\W) never fire inside running Chinese text. Presidio has no Chinese name
detector without a downloadable model, so its NAME recall is what a surname-cue pattern gives it.

    python bench/bench_detectors.py --n 2000 --seed 20251127
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

TYPES = ["NAME", "ID_NUMBER", "CONTACT", "HOSPITAL", "ADDRESS", "STD", "PREGNANCY"]


def _notes(n: int, seed: int) -> list[dict]:
    from deid.synth.generator import generate
    return generate(n, seed)


def _pin_one_core():
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def _scores(notes, predictions):
    from deid.evaluate import Scores
    sc = Scores()
    for note, pred in zip(notes, predictions, strict=True):
        sc.add(note["id"], note["spans"], pred, {})
    per_type = sc.per_type()
    return {t: m["overlap"]["r"] for t, m in per_type.items()}, {t: m["overlap"]["p"] for t, m in per_type.items()}


def run_deid(notes, batch: int) -> dict:
    from deid.config import load_config
    from deid.pipeline import Pipeline
    t_load = time.perf_counter()
    pipeline = Pipeline(load_config(ner={"threads": 1}))
    load_s = time.perf_counter() - t_load
    texts = [n["text"] for n in notes]
    pipeline.process_many(texts[:32])
    pipeline.timings.clear()
    preds = []
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch):
        for res in pipeline.process_many(texts[i:i + batch]):
            preds.append([s.to_dict() for s in res.spans])
    elapsed = time.perf_counter() - t0
    recall, precision = _scores(notes, preds)
    per_component = {k: v / len(texts) * 1000 for k, v in sorted(pipeline.timings.items(), key=lambda kv: -kv[1])}
    return {"elapsed": elapsed, "load_s": load_s, "recall": recall, "precision": precision,
            "ms_per_note": per_component, "long_note_s": long_note_times(pipeline, texts)}


LONG_NOTE_CHARS = (10_000, 100_000, 1_000_000)


def long_note_times(pipeline, texts: list[str]) -> dict:
    """Seconds to process one note of each length in LONG_NOTE_CHARS, made by joining the benchmark's notes: a
    detector whose work grows with the square of a note's length shows as a rising time per character."""
    joined = "\n".join(texts)
    times = {}
    for size in LONG_NOTE_CHARS:
        note = (joined * (size // len(joined) + 1))[:size]
        t0 = time.perf_counter()
        pipeline.process(note)
        times[size] = time.perf_counter() - t0
    return times


def _presidio_analyzer():
    import spacy
    import tldextract
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import EmailRecognizer, PhoneRecognizer
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    from deid import resources
    from deid.detectors.id_number import check_char
    from deid.gazetteer import places

    # EmailRecognizer validates domains with tldextract, which fetches the public suffix list at first use;
    # offline, point it at the snapshot bundled in the tldextract wheel instead.
    offline_extract = tldextract.TLDExtract(suffix_list_urls=())
    email_recognizer.tldextract = type("Offline", (), {"extract": staticmethod(offline_extract)})

    model_dir = tempfile.mkdtemp(prefix="blank-zh-")
    spacy.blank("zh").to_disk(model_dir)
    nlp = SpacyNlpEngine(models=[{"lang_code": "zh", "model_name": model_dir}])

    class CnIdRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text):
            digits = pattern_text.replace(" ", "").replace("-", "").upper()
            return len(digits) == 15 or (len(digits) == 18 and check_char(digits[:17]) == digits[17])

    def deny(entity, terms, name):
        import re
        alternation = "|".join(re.escape(t) for t in sorted(set(terms), key=len, reverse=True))
        return PatternRecognizer(supported_entity=entity, name=name, supported_language="zh",
                                 patterns=[Pattern(name, f"(?:{alternation})", 0.6)])

    hospitals = []
    for row in resources.load("dictionaries/hospitals.tsv").rows():
        hospitals.append(row["name"])
        hospitals += [a.lstrip("~") for a in row["aliases"].split(";") if a]
        hospitals += [e for e in row["english"].split(";") if e]
    surnames = resources.load("dictionaries/surnames.txt").lines()
    registry = RecognizerRegistry(supported_languages=["zh"])
    registry.add_recognizer(PhoneRecognizer(supported_language="zh", supported_regions=("CN",),
                                            context=["电话", "手机"]))
    registry.add_recognizer(EmailRecognizer(supported_language="zh"))
    registry.add_recognizer(CnIdRecognizer(
        supported_entity="ID_NUMBER", name="cn_id", supported_language="zh", patterns=[
            Pattern("id18", r"(?<![0-9A-Za-z])\d{6}[ -]?\d{8}[ -]?\d{3}[\dXx](?![0-9A-Za-z])", 0.6),
            Pattern("id15", r"(?<![0-9A-Za-z])\d{15}(?![0-9A-Za-z])", 0.4)], context=["身份证"]))
    registry.add_recognizer(PatternRecognizer(
        supported_entity="CONTACT", name="qq_wechat", supported_language="zh", patterns=[
            Pattern("qq", r"(?<=QQ[:：])\s*\d{5,11}", 0.6),
            Pattern("wechat", r"(?<=微信[:：])\s*[A-Za-z][\w-]{5,19}", 0.6)]))
    registry.add_recognizer(PatternRecognizer(
        supported_entity="NAME", name="surname_cue", supported_language="zh", patterns=[
            Pattern("cue", r"(?<=(?:患者|姓名：|家属|医师：|记录者：|签名：))(?:" + "|".join(surnames)
                    + r")[\u4e00-\u9fa5]{1,2}", 0.5)]))
    registry.add_recognizer(deny("HOSPITAL", hospitals, "hospital_dict"))
    registry.add_recognizer(deny("STD", [r["term"] for r in resources.load("dictionaries/std_terms.tsv").rows()],
                                 "std_dict"))
    registry.add_recognizer(deny("PREGNANCY",
                                 [r["term"] for r in resources.load("dictionaries/pregnancy_terms.tsv").rows()],
                                 "preg_dict"))
    registry.add_recognizer(deny("ADDRESS", list(places()), "division_dict"))
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["zh"])


def run_presidio(notes, batch: int) -> dict:
    t_load = time.perf_counter()
    analyzer = _presidio_analyzer()
    load_s = time.perf_counter() - t_load
    mapping = {"PHONE_NUMBER": "CONTACT", "EMAIL_ADDRESS": "CONTACT"}
    for n in notes[:16]:
        analyzer.analyze(n["text"], language="zh")
    preds = []
    t0 = time.perf_counter()
    for n in notes:
        found = analyzer.analyze(n["text"], language="zh")
        preds.append([{"start": r.start, "end": r.end, "type": mapping.get(r.entity_type, r.entity_type), "tier": 1,
                       "text": n["text"][r.start:r.end]} for r in found])
    elapsed = time.perf_counter() - t0
    recall, precision = _scores(notes, preds)
    return {"elapsed": elapsed, "load_s": load_s, "recall": recall, "precision": precision}


def child(engine: str, n: int, seed: int, batch: int) -> None:
    _pin_one_core()
    notes = _notes(n, seed)
    result = (run_deid if engine == "deid" else run_presidio)(notes, batch)
    result.update(notes=len(notes), chars=sum(len(x["text"]) for x in notes),
                  peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=20251127)
    ap.add_argument("--batch", type=int, default=64, help="notes per process_many call (one Arrow batch)")
    ap.add_argument("--engine", choices=["deid", "presidio"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.engine:
        child(args.engine, args.n, args.seed, args.batch)
        return 0
    results = {}
    for engine in ("deid", "presidio"):
        out = subprocess.run([sys.executable, __file__, "--engine", engine, "--n", str(args.n), "--seed",
                              str(args.seed), "--batch", str(args.batch)], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        results[engine] = json.loads(out.stdout.strip().splitlines()[-1])
    d, p = results["deid"], results["presidio"]
    mean_chars = d["chars"] / d["notes"]
    print(f"Detector benchmark: {d['notes']} synthetic notes (seed {args.seed}), mean {mean_chars:.0f} characters, "
          "one core each")
    print(f"{'':28}{'deid':>14}{'presidio':>14}{'ratio':>10}")
    nps = {k: r["notes"] / r["elapsed"] for k, r in results.items()}
    kcps = {k: r["chars"] / r["elapsed"] / 1000 for k, r in results.items()}
    print(f"{'notes/s':28}{nps['deid']:>14.1f}{nps['presidio']:>14.1f}{nps['deid'] / nps['presidio']:>9.2f}x")
    print(f"{'1k-char notes/s':28}{kcps['deid']:>14.1f}{kcps['presidio']:>14.1f}"
          f"{kcps['deid'] / kcps['presidio']:>9.2f}x")
    print(f"{'peak RSS (MiB)':28}{d['peak_rss_mib']:>14.0f}{p['peak_rss_mib']:>14.0f}")
    print(f"{'load time (s)':28}{d['load_s']:>14.2f}{p['load_s']:>14.2f}")
    print("recall per type (overlap)")
    for t in TYPES:
        print(f"  {t:26}{d['recall'][t]:>14.4f}{p['recall'][t]:>14.4f}")
    print("precision per type (overlap)")
    for t in TYPES:
        print(f"  {t:26}{d['precision'][t]:>14.4f}{p['precision'][t]:>14.4f}")
    print("deid time per component (ms/note)")
    for k, v in d["ms_per_note"].items():
        print(f"  {k:26}{v:>14.3f}")
    per_char = {int(size): t / int(size) * 1e6 for size, t in d["long_note_s"].items()}
    print("deid on one long note (time per character should not grow with length)")
    for size, us in per_char.items():
        print(f"  {size:>9,} characters{'':7}{d['long_note_s'][str(size)]:>12.2f} s{us:>10.1f} us/char")
    growth = max(per_char.values()) / min(per_char.values())
    print(f"linear within 2x per character from {min(per_char):,} to {max(per_char):,} characters: "
          f"{'met' if growth <= 2 else 'NOT met'} ({growth:.2f}x)")
    target_ok = kcps["deid"] >= 100 and d["peak_rss_mib"] <= 1024
    print("target >= 100 notes/s per core on ~1,000-character notes and <= 1 GiB RSS: "
          f"{'met' if target_ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
