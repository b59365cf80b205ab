"""What the LLM stage costs, in one run:

1. Tokens per note for the paper's method (markup echo, then a second call that echoes the note again with
   tiers) and for deid's JSON format (entities only, tiered in the same call), counted with the model's own
   tokenizer and chat template (the Qwen2.5 family shares one vocabulary, so the counts hold for the 72B model).
   Prompts are built exactly as the stage builds them (chunking, retrieval); completions are the ideal answers
   written from the gold spans, so they measure the format, not the small model's mistakes.
2. The share of prompt tokens in the static prefix that a server's prefix cache reuses across notes.
3. Client throughput against a local server with a fixed latency: achieved over theoretical (c / latency).
4. The GPU-hours those tokens imply for 4 million notes on Qwen2.5-72B-Instruct under vLLM (assumptions printed).

    python bench/bench_llm.py --n 300
"""
# No `from __future__ import annotations`: FastAPI must see the fixed-latency server's Request annotation as a class.
import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


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


def ideal_answers(chunk, spans: list[dict]) -> tuple[str, str, str]:
    """(markup echo, markup echo with tiers, JSON entity list) for the gold spans inside the chunk."""
    inside = sorted((s for s in spans if chunk.start <= s["start"] and s["end"] <= chunk.end), key=lambda s: s["start"])
    markup, tiered, pos = [], [], chunk.start
    text = chunk.text
    entities = []
    for s in inside:
        a, b = s["start"] - chunk.start, s["end"] - chunk.start
        plain = text[pos - chunk.start:a]
        markup += [plain, f"<<{text[a:b]}: {_label(s['type'])}>>"]
        tiered += [plain, f"<<{text[a:b]}: {_label(s['type'])}: {s['tier']}>>"]
        entities.append({"type": _label(s["type"]), "text": text[a:b], "tier": s["tier"],
                         "left": text[max(0, a - 8):a]})
        pos = s["end"]
    markup.append(text[pos - chunk.start:])
    tiered.append(text[pos - chunk.start:])
    return "".join(markup), "".join(tiered), json.dumps(entities, ensure_ascii=False)


def token_costs(n: int, seed: int) -> tuple[Costs, Costs, float]:
    from deid import resources
    from deid.llm.prompts import TIER_PROMPT
    from deid.llm.retrieval import build_index
    from deid.llm.stage import LlmConfig, LlmStage
    from deid.synth.generator import generate

    tok = ChatTokenizer()
    index = build_index()
    tier_system = resources.load(TIER_PROMPT).content.strip()
    stages = {fmt: LlmStage(LlmConfig(enabled=True, fmt=fmt), index) for fmt in ("markup", "json")}
    paper, deid_json = Costs(), Costs()
    chars = []
    for note in generate(n, seed):
        # As the job sends it: title and text as one string, gold offsets shifted past the title.
        joined = f"{note['note_title']}\n{note['text']}"
        shift = len(note["note_title"]) + 1
        spans = [{**s, "start": s["start"] + shift, "end": s["end"] + shift} for s in note["spans"]]
        chars.append(len(joined))
        requests = []
        for _, c, messages in stages["markup"].requests([joined]):
            markup, tiered, _ = ideal_answers(c, spans)
            # The paper's two calls: tag (echo with markers), then tier (the marked note in, echoed with tiers).
            requests += [("tag", tok.prompt(messages), tok.answer(markup)),
                         ("tier", tok.prompt([{"role": "system", "content": tier_system},
                                              {"role": "user", "content": markup}]), tok.answer(tiered))]
        paper.add(requests)
        deid_json.add([("tag+tier", tok.prompt(messages), tok.answer(ideal_answers(c, spans)[2]))
                       for _, c, messages in stages["json"].requests([joined])])
    return paper, deid_json, statistics.mean(chars)


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
    ap.add_argument("--serve-fixed", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_fixed:
        fixed_latency_server(args.serve_fixed, args.latency)
        return 0

    t0 = time.perf_counter()
    paper, ours, mean_chars = token_costs(args.n, args.seed)
    print(f"\nLLM tokens per note: {args.n} test-set notes (seed {args.seed}, mean {mean_chars:.0f} characters), "
          f"Qwen2.5 tokenizer and chat template, ideal answers from the gold spans ({time.perf_counter() - t0:.0f} s)")
    print(f"{'':34}{'requests':>9}{'prompt':>9}{'p95':>7}{'static':>8}{'share':>7}{'uncached':>9}{'completion':>11}{'p95':>7}")
    for name, c in (("paper: markup tag + markup tier", paper), ("deid: JSON tag+tier", ours)):
        static = c.static_tokens_per_note()
        print(f"{name:34}{statistics.mean(c.requests):9.2f}{statistics.mean(c.prompt):9.0f}{_p95(c.prompt):7d}"
              f"{static:8.0f}{static / statistics.mean(c.prompt):7.0%}{c.uncached_prompt():9.0f}"
              f"{statistics.mean(c.completion):11.0f}{_p95(c.completion):7d}")
    print("  per note. static = prompt tokens that every request of the same kind shares from its start (system "
          "prompt, few-shot examples, template head); share = static / prompt; uncached = left to prefill when the "
          "static prefix is cached")

    levels = [int(x) for x in args.concurrency.split(",")]
    print(f"\nClient throughput against a local server answering in exactly {args.latency} s "
          f"(theoretical = concurrency / latency)")
    print(f"{'concurrency':>12}{'requests':>10}{'achieved/s':>12}{'theoretical/s':>15}{'ratio':>8}")
    for c, n, achieved, ratio in client_throughput(args.latency, levels, args.per_level):
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
    for name, c in (("paper: markup tag + markup tier", paper), ("deid: JSON tag+tier", ours)):
        completion = statistics.mean(c.completion)
        cold = gpu.gpu_hours(args.notes, statistics.mean(c.prompt), completion)
        warm = gpu.gpu_hours(args.notes, c.uncached_prompt(), completion)
        hours[name] = (cold, warm)
        print(f"{name:34}{cold:16,.0f}{warm:14,.0f}")
    (p_cold, p_warm), (o_cold, o_warm) = hours.values()
    print(f"{'deid / paper':34}{o_cold / p_cold:16.2f}{o_warm / p_warm:14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
