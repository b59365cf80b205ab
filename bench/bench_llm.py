"""What the LLM stage costs, in one run:

1. Tokens per note for the paper's method (markup echo, then a second call that echoes the note again with
   tiers) and for deid's JSON format (entities only, tiered in the same call), every chunk of the note (`whole`) or
   only what the detectors cannot settle (`routed`), counted with the model's own tokenizer and chat template (the
   Qwen2.5 family shares one vocabulary, so the counts hold for the 72B model). Prompts are built exactly as the
   stage builds them (chunking or routing, retrieval); completions are the ideal answers written from the gold
   spans, so they measure the format, not the small model's mistakes.
2. The share of prompt tokens in the static prefix that a server's prefix cache reuses across notes.
3. Routing: of the gold spans the detectors miss (no detector span of the type covers the span, half of it for an
   address, before the merge), the share inside routed text; and the share of all text routed. On the test notes
   and on the real development splits under $DEID_REAL_DATA (deid/corpora.py) when they are there.
4. Client throughput against a local server with a fixed latency: achieved over theoretical (c / latency).
5. The GPU-hours those tokens imply for 4 million notes on Qwen2.5-72B-Instruct under vLLM (assumptions printed).

    python bench/bench_llm.py --n 300 [--json FILE]
"""
# No `from __future__ import annotations`: FastAPI must see the fixed-latency server's Request annotation as a class.
import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The real development splits routing is measured on (docs/evaluation.md: the other splits are held out).
DEVELOPMENT = ("cluener_train", "address_dev", "cmedqa_train")


# -- 1 and 2: tokens ------------------------------------------------------------------------------------
class ChatTokenizer:
    """The GGUF's tokenizer and chat template, loaded without weights."""

    def __init__(self):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        from deid.serving.gguf import model_path
        self.llm = Llama(model_path=str(model_path()), vocab_only=True, verbose=False)
        eos = self.llm._model.token_get_text(self.llm.token_eos())
        self.formatter = Jinja2ChatFormatter(self.llm.metadata["tokenizer.chat_template"], eos_token=eos, bos_token="")

    def tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def prompt(self, messages: list[dict]) -> list[int]:
        return self.tokens(self.formatter(messages=messages).prompt)

    def answer(self, text: str) -> int:
        return len(self.tokens(text)) + 1          # + the end-of-turn token


@dataclass
class Costs:
    """Per note: prompt and completion tokens and requests; per kind of request (each kind has its own system
    prompt), every request's token ids, to find the prefix all requests of that kind share."""
    prompt: list[int] = field(default_factory=list)
    completion: list[int] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    by_kind: dict[str, list[list[int]]] = field(default_factory=dict)

    def add(self, requests: list[tuple[str, list[int], int]]) -> None:
        """requests: (kind, prompt token ids, completion tokens) for one note."""
        for kind, prompt, _ in requests:
            self.by_kind.setdefault(kind, []).append(prompt)
        self.prompt.append(sum(len(p) for _, p, _ in requests))
        self.completion.append(sum(c for _, _, c in requests))
        self.requests.append(len(requests))

    @staticmethod
    def _shared_prefix(prompts: list[list[int]]) -> int:
        first, shared = prompts[0], len(prompts[0])
        for p in prompts[1:]:
            n = 0
            while n < min(shared, len(p)) and p[n] == first[n]:
                n += 1
            shared = n
        return shared

    def static_tokens_per_note(self, block: int = 1) -> float:
        """Prompt tokens per note that every request of its kind shares from its start (what a prefix cache
        serves to all notes), counted in whole cache blocks."""
        notes = len(self.prompt)
        return sum(self._shared_prefix(ps) // block * block * len(ps) / notes for ps in self.by_kind.values())

    def uncached_prompt(self, block: int = 16) -> float:
        """Mean prompt tokens per note left to prefill with the static prefixes cached (vLLM caches whole
        blocks of 16 tokens)."""
        return statistics.mean(self.prompt) - self.static_tokens_per_note(block)


def _label(span_type: str) -> str:
    from deid.spans import EntityType
    return EntityType(span_type).label_zh


def _inside(chunk, spans: list[dict]) -> list[dict]:
    return sorted((s for s in spans if chunk.start <= s["start"] and s["end"] <= chunk.end), key=lambda s: s["start"])


def ideal_markup(chunk, spans: list[dict]) -> tuple[str, str]:
    """(markup echo, markup echo with tiers) for the gold spans inside the chunk."""
    markup, tiered, pos = [], [], chunk.start
    text = chunk.text
    for s in _inside(chunk, spans):
        a, b = s["start"] - chunk.start, s["end"] - chunk.start
        plain = text[pos - chunk.start:a]
        markup += [plain, f"<<{text[a:b]}: {_label(s['type'])}>>"]
        tiered += [plain, f"<<{text[a:b]}: {_label(s['type'])}: {s['tier']}>>"]
        pos = s["end"]
    markup.append(text[pos - chunk.start:])
    tiered.append(text[pos - chunk.start:])
    return "".join(markup), "".join(tiered)


def ideal_json(request, spans: list[dict]) -> str:
    """The JSON answer (the prompt's [type, text, tier] triples, in order) for the gold spans inside the request's
    parts, as json.dumps writes it (what a model held to the schema writes, spaces included)."""
    return json.dumps([[s["type"], s["text"], s["tier"]] for part in request.parts for s in _inside(part, spans)],
                      ensure_ascii=False)


def long_form_json(request, spans: list[dict]) -> str:
    """The same answer in the earlier long form: objects with keys and an 8-character left context."""
    out = []
    for part in request.parts:
        for s in _inside(part, spans):
            a = s["start"] - part.start
            out.append({"type": s["type"], "text": s["text"], "tier": s["tier"], "left": part.text[max(0, a - 8):a]})
    return json.dumps(out, ensure_ascii=False)


def test_notes(n: int, seed: int) -> list[dict]:
    """The test notes as the job sends them: title and text as one string, gold offsets shifted past the title."""
    from deid.synth.generator import generate
    notes = []
    for note in generate(n, seed):
        shift = len(note["note_title"]) + 1
        notes.append({"text": f"{note['note_title']}\n{note['text']}", "types": None,
                      "spans": [{**s, "start": s["start"] + shift, "end": s["end"] + shift} for s in note["spans"]]})
    return notes


@dataclass
class Routing:
    """Per corpus: gold spans the detectors missed, how many of them lie inside routed text, characters routed."""
    missed: int = 0
    routed_missed: int = 0
    chars: int = 0
    routed_chars: int = 0

    @property
    def recall(self) -> float:
        return self.routed_missed / self.missed if self.missed else 1.0

    @property
    def share(self) -> float:
        return self.routed_chars / self.chars if self.chars else 0.0


def detector_missed(note: dict, found) -> list[dict]:
    """The note's gold spans (of the types it is scored on) that the detectors' spans of that type do not cover:
    every character, or half of an address (the whole-mention criterion of deid eval)."""
    from deid.spans import EntityType
    out = []
    for g in note["spans"]:
        if note["types"] and g["type"] not in note["types"]:
            continue
        covered = set()
        for s in found:
            if s.entity_type == EntityType(g["type"]):
                covered.update(range(max(s.start, g["start"]), min(s.end, g["end"])))
        need = (g["end"] - g["start"]) / 2 if g["type"] == "ADDRESS" else g["end"] - g["start"]
        if len(covered) < need:
            out.append(g)
    return out


def detected(pipeline, notes: list[dict], batch: int = 64):
    """(note, its spans found by the detectors in note offsets, its routed requests' parts in note offsets, the
    stage's requests) per note, the detectors run as the pipeline runs them."""
    from deid.llm.chunking import Chunk
    for b in range(0, len(notes), batch):
        part = notes[b:b + batch]
        views, docs, found = pipeline.detect([n["text"] for n in part])
        for note, view, doc, spans in zip(part, views, docs, found, strict=True):
            requests = pipeline.llm.note_requests(view.text, spans, doc)
            in_note = []
            for s in spans:
                start, end = view.span_in_note(s.start, s.end)
                in_note.append(s.with_(start=start, end=end))
            parts = [Chunk(*view.span_in_note(c.start, c.end), "") for r in requests for c in r.parts]
            yield note, in_note, parts, requests


def routing_costs(tok, notes: list[dict]) -> tuple[Costs, Routing]:
    """Tokens of the routed JSON requests, and routing recall, on the test notes."""
    pipeline = _routed_pipeline()
    costs, routing = Costs(), Routing()
    for note, found, parts, requests in detected(pipeline, notes):
        _count_routing(routing, note, found, parts)
        costs.add([("tag+tier", tok.prompt(pipeline.llm.prompts.messages(r.text, _retrieved(pipeline, r.text))),
                    tok.answer(ideal_json(r, note["spans"]))) for r in requests])
    return costs, routing


def routing_recall(corpora: dict[str, list[dict]]) -> dict[str, Routing]:
    pipeline = _routed_pipeline()
    out = {}
    for name, notes in corpora.items():
        out[name] = routing = Routing()
        for note, found, parts, _ in detected(pipeline, notes):
            _count_routing(routing, note, found, parts)
    return out


def _count_routing(routing: Routing, note: dict, found, parts) -> None:
    routing.chars += len(note["text"])
    routing.routed_chars += sum(c.end - c.start for c in parts)
    for g in detector_missed(note, found):
        routing.missed += 1
        routing.routed_missed += any(c.start <= g["start"] and g["end"] <= c.end for c in parts)


def _routed_pipeline():
    from deid.config import load_config
    from deid.pipeline import Pipeline
    return Pipeline(load_config(llm={"enabled": True, "routing": "routed"}))


def _retrieved(pipeline, text: str) -> list[str]:
    return [e.prompt_line() for e in pipeline.llm.index.for_text(text, pipeline.llm.config.retrieved)]


def token_costs(notes: list[dict]) -> tuple[Costs, Costs, Costs, Routing, float]:
    """Tokens per note: the paper's method, whole-note JSON, routed JSON; routing on these notes; and the mean
    completion tokens of the whole-note answers in the long form."""
    from deid import resources
    from deid.llm.prompts import TIER_PROMPT
    from deid.llm.retrieval import build_index
    from deid.llm.stage import LlmConfig, LlmStage

    tok = ChatTokenizer()
    index = build_index()
    tier_system = resources.load(TIER_PROMPT).content.strip()
    stages = {fmt: LlmStage(LlmConfig(enabled=True, fmt=fmt, routing="whole"), index) for fmt in ("markup", "json")}
    paper, whole = Costs(), Costs()
    long_form = []
    for note in notes:
        requests = []
        for _, r, messages in stages["markup"].requests([note["text"]]):
            markup, tiered = ideal_markup(r.parts[0], note["spans"])
            # The paper's two calls: tag (echo with markers), then tier (the marked note in, echoed with tiers).
            requests += [("tag", tok.prompt(messages), tok.answer(markup)),
                         ("tier", tok.prompt([{"role": "system", "content": tier_system},
                                              {"role": "user", "content": markup}]), tok.answer(tiered))]
        paper.add(requests)
        plan = stages["json"].requests([note["text"]])
        whole.add([("tag+tier", tok.prompt(messages), tok.answer(ideal_json(r, note["spans"])))
                   for _, r, messages in plan])
        long_form.append(sum(tok.answer(long_form_json(r, note["spans"])) for _, r, _ in plan))
    routed, routing = routing_costs(tok, notes)
    return paper, whole, routed, routing, statistics.mean(long_form)


# -- 3: client throughput against a fixed-latency server -----------------------------------------------
def fixed_latency_server(port: int, latency: float) -> None:
    """An OpenAI-shaped endpoint that answers every request after exactly `latency` seconds."""
    import uvicorn
    from fastapi import FastAPI, Request

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        await request.json()
        await asyncio.sleep(latency)
        return {"choices": [{"message": {"role": "assistant", "content": "[]"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 2, "total_tokens": 1002}}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def client_throughput(latency: float, levels: list[int], per_level: int) -> list[tuple[int, int, float, float]]:
    import socket

    from deid.llm.client import ClientConfig, LlmClient
    from deid.llm.prompts import load_prompts
    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve-fixed", str(port), "--latency", str(latency)])
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("the fixed-latency server did not start") from None
                time.sleep(0.2)
        messages = load_prompts("json").messages("患者张建国，男，52岁。" * 40, ["北京协和医院（医院名称）"] * 8)
        rows = []
        for c in levels:
            client = LlmClient(ClientConfig(base_url=f"http://127.0.0.1:{port}", concurrency=c, timeout_s=30))
            n = per_level * c
            t0 = time.perf_counter()
            replies = client.complete_many([messages] * n)
            wall = time.perf_counter() - t0
            assert all(r.ok for r in replies)
            achieved, theoretical = n / wall, c / latency
            rows.append((c, n, achieved, achieved / theoretical))
        return rows
    finally:
        server.terminate()
        server.wait(10)


def _p95(values: list[int]) -> int:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- 4: GPU-hours for 4 million notes ---------------------------------------------------------------------
@dataclass(frozen=True)
class GpuModel:
    """Qwen2.5-72B-Instruct in BF16, tensor parallel 4 on H100 SXM 80 GB under vLLM. Prefill is compute
    bound (2 FLOPs per parameter per token at a model-FLOPs utilisation); decode is bound by reading the
    weights once per step for a whole batch of sequences."""
    params: float = 72.7e9
    gpus_per_replica: int = 4
    peak_flops: float = 989e12          # dense BF16 per GPU
    prefill_mfu: float = 0.45
    hbm_bytes_per_s: float = 3.35e12
    bandwidth_efficiency: float = 0.7
    decode_batch: int = 64              # sequences decoded together per replica

    def prefill_tokens_per_gpu_s(self) -> float:
        return self.peak_flops * self.prefill_mfu / (2 * self.params)

    def decode_tokens_per_gpu_s(self) -> float:
        step_s = 2 * self.params / self.gpus_per_replica / (self.hbm_bytes_per_s * self.bandwidth_efficiency)
        return self.decode_batch / step_s / self.gpus_per_replica

    def gpu_hours(self, notes: float, prompt_tokens: float, completion_tokens: float) -> float:
        seconds = prompt_tokens / self.prefill_tokens_per_gpu_s() + completion_tokens / self.decode_tokens_per_gpu_s()
        return notes * seconds / 3600


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="test-set notes to count tokens on")
    ap.add_argument("--seed", type=int, default=20251127)
    ap.add_argument("--latency", type=float, default=0.5, help="the fixed server latency, seconds")
    ap.add_argument("--concurrency", default="1,8,32,64")
    ap.add_argument("--per-level", type=int, default=10, help="requests per unit of concurrency")
    ap.add_argument("--notes", type=float, default=4e6, help="notes to cost")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--no-throughput", action="store_true", help="skip the client throughput measurement")
    ap.add_argument("--serve-fixed", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_fixed:
        fixed_latency_server(args.serve_fixed, args.latency)
        return 0

    t0 = time.perf_counter()
    notes = test_notes(args.n, args.seed)
    paper, whole, routed, test_routing, long_form = token_costs(notes)
    kinds = (("paper: markup tag + markup tier", paper), ("deid: JSON, whole note", whole),
             ("deid: JSON, routed", routed))
    print(f"\nLLM tokens per note: {args.n} test-set notes (seed {args.seed}, mean "
          f"{statistics.mean(len(n['text']) for n in notes):.0f} characters), Qwen2.5 tokenizer and chat template, "
          f"ideal answers from the gold spans ({time.perf_counter() - t0:.0f} s)")
    print(f"{'':34}{'requests':>9}{'prompt':>9}{'p95':>7}{'static':>8}{'share':>7}{'uncached':>9}{'completion':>11}{'p95':>7}")
    for name, c in kinds:
        static = c.static_tokens_per_note()
        print(f"{name:34}{statistics.mean(c.requests):9.2f}{statistics.mean(c.prompt):9.0f}{_p95(c.prompt):7d}"
              f"{static:8.0f}{static / max(1e-9, statistics.mean(c.prompt)):7.0%}{c.uncached_prompt():9.0f}"
              f"{statistics.mean(c.completion):11.0f}{_p95(c.completion):7d}")
    print("  per note. static = prompt tokens that every request of the same kind shares from its start (system "
          "prompt, few-shot examples, template head); share = static / prompt; uncached = left to prefill when the "
          "static prefix is cached")
    print(f"  the whole-note answers in the earlier long form (objects with keys and an 8-character left context): "
          f"{long_form:.0f} completion tokens per note, against {statistics.mean(whole.completion):.0f} as triples")

    t0 = time.perf_counter()
    routing = {"test": test_routing}
    real = os.environ.get("DEID_REAL_DATA")
    if real:
        from deid.corpora import load_corpora
        routing.update(routing_recall(load_corpora(Path(real), list(DEVELOPMENT))))
    print(f"\nRouting ({time.perf_counter() - t0:.0f} s): of the gold spans the detectors miss, the share inside "
          "routed text; the share of all text routed")
    print(f"{'corpus':16}{'notes':>8}{'missed':>8}{'routed':>8}{'recall':>8}{'text routed':>13}")
    for name, r in routing.items():
        size = len(notes) if name == "test" else "-"
        print(f"{name:16}{size:>8}{r.missed:8d}{r.routed_missed:8d}{r.recall:8.3f}{r.share:13.1%}")
    missing = [k for k in DEVELOPMENT if k not in routing]
    if missing:
        print(f"  not measured ($DEID_REAL_DATA {'unset' if not real else 'lacks them'}): {', '.join(missing)}")

    levels = [] if args.no_throughput else [int(x) for x in args.concurrency.split(",")]
    print(f"\nClient throughput against a local server answering in exactly {args.latency} s "
          f"(theoretical = concurrency / latency)")
    print(f"{'concurrency':>12}{'requests':>10}{'achieved/s':>12}{'theoretical/s':>15}{'ratio':>8}")
    for c, n, achieved, ratio in client_throughput(args.latency, levels, args.per_level) if levels else ():
        print(f"{c:12d}{n:10d}{achieved:12.1f}{c / args.latency:15.1f}{ratio:8.2f}{'':2}"
              f"{'ok' if ratio >= 0.9 else 'BELOW 0.9'}")

    gpu = GpuModel()
    print(f"\nGPU-hours for {args.notes:,.0f} notes: Qwen2.5-72B-Instruct BF16, TP {gpu.gpus_per_replica} "
          "on H100 80 GB, "
          f"vLLM; assumed prefill {gpu.prefill_tokens_per_gpu_s():,.0f} tokens/s per GPU (MFU {gpu.prefill_mfu}), "
          f"decode {gpu.decode_tokens_per_gpu_s():,.0f} tokens/s per GPU (batch {gpu.decode_batch}, "
          f"{gpu.bandwidth_efficiency:.0%} of HBM bandwidth)")
    print(f"{'':34}{'no prefix cache':>16}{'prefix cache':>14}")
    hours = {}
    for name, c in kinds:
        completion = statistics.mean(c.completion)
        cold = gpu.gpu_hours(args.notes, statistics.mean(c.prompt), completion)
        warm = gpu.gpu_hours(args.notes, c.uncached_prompt(), completion)
        hours[name] = (cold, warm)
        print(f"{name:34}{cold:16,.0f}{warm:14,.0f}")
    (p_cold, p_warm), (w_cold, w_warm), (r_cold, r_warm) = hours.values()
    print(f"{'routed / paper':34}{r_cold / p_cold:16.2f}{r_warm / p_warm:14.2f}")
    print(f"{'routed / whole note':34}{r_cold / w_cold:16.2f}{r_warm / w_warm:14.2f}")
    print("  the figures to compare with a deployment are those with the prefix cache (vLLM's is on in "
          "deploy/; the static prefix is computed once per replica)")
    if args.json:
        recall = {name: round(r.recall, 4) for name, r in routing.items()}
        report = {"notes": args.n, "seed": args.seed, "notes_costed": args.notes,
                  "h100_hours_4m_routed": round(r_warm, 1), "h100_hours_4m_whole": round(w_warm, 1),
                  "h100_hours_4m_paper": round(p_warm, 1), "completion_whole_long_form": round(long_form, 1),
                  "h100_hours_4m_routed_no_prefix_cache": round(r_cold, 1),
                  "h100_hours_4m_whole_no_prefix_cache": round(w_cold, 1),
                  "h100_hours_4m_paper_no_prefix_cache": round(p_cold, 1),
                  "routing_recall": {**recall, "min": min(recall.values())},
                  "routed_share": {name: round(r.share, 4) for name, r in routing.items()},
                  "tokens_per_note": {name: {"requests": round(statistics.mean(c.requests), 3),
                                             "prompt": round(statistics.mean(c.prompt), 1),
                                             "uncached_prompt": round(c.uncached_prompt(), 1),
                                             "completion": round(statistics.mean(c.completion), 1)}
                                      for name, c in kinds}}
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
