"""The LLM stage: notes -> chunks -> retrieved dictionary entries -> prompt -> model -> parsed spans.

All chunks of a batch of notes go to the server concurrently (bounded by the client), so the server's batches
stay full. Each note gets a status: "ok"; "truncated" when an answer hit max_tokens (what it holds is used;
a rerun would cut it the same way, so it is not a failure: raise max_tokens or lower chunk_chars); or
"failed:<reason>" when any of its chunks failed, and the caller decides whether such a note falls back to
the detectors or is quarantined. Spans say detector "llm".

With an AnswerCache (deid.llm.cache) a request whose key it knows is not sent; the same request twice in one
batch is sent once; every answer that parsed is put in the cache for the caller to keep.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from deid.llm.cache import AnswerCache, KeptAnswer
from deid.llm.chunking import Chunk, chunk, merge_found
from deid.llm.client import ClientConfig, LlmClient
from deid.llm.parse import ENTITY_SCHEMA, parse_json, parse_markup
from deid.llm.prompts import load_prompts
from deid.spans import FIXED_TIER, Span

# OpenAI's response_format for the JSON prompt: json_schema needs a name beside the schema (vLLM's OpenAI server,
# which Ray Serve LLM runs, refuses one without: tests/test_serve_vllm_api.py); it becomes constrained decoding.
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "phi_entities", "schema": ENTITY_SCHEMA}}


@dataclass(frozen=True)
class LlmConfig:
    enabled: bool = False
    fmt: str = "json"                 # json | markup
    client: ClientConfig = ClientConfig()
    chunk_chars: int = 1500
    chunk_overlap: int = 200
    retrieved: int = 8
    on_failure: str = "fallback"      # fallback (detectors only, re-run next time) | quarantine
    default_tier: int = 1             # for a tiered type the model did not tier: the protective choice

    @classmethod
    def from_flat(cls, doc: dict) -> LlmConfig:
        """The `llm:` section is one flat mapping; the client's keys (base_url, model, ...) go to ClientConfig."""
        doc = dict(doc)
        if "format" in doc:
            doc["fmt"] = doc.pop("format")
        client_keys = set(ClientConfig.__dataclass_fields__)
        client = ClientConfig(**{k: doc.pop(k) for k in list(doc) if k in client_keys})
        return cls(client=client, **doc)

    @property
    def model(self) -> str:
        return self.client.model


@dataclass
class NoteOutcome:
    spans: list[Span] = field(default_factory=list)
    status: str = "ok"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    dropped: int = 0
    cache_hits: int = 0       # requests answered from the cache
    calls: int = 0            # requests sent to the model


class LlmStage:
    name = "llm"

    def __init__(self, config: LlmConfig, index=None):
        self.config = config
        self.prompts = load_prompts(config.fmt)
        self.version = f"{config.fmt}:{self.prompts.version}:{config.model}"
        self.index = index
        self.client = LlmClient(config.client)

    def requests(self, texts: list[str]) -> list[tuple[int, Chunk, list[dict]]]:
        """(note index, chunk, chat messages) for every non-blank chunk of every note."""
        plan = []
        for i, text in enumerate(texts):
            for c in chunk(text, self.config.chunk_chars, self.config.chunk_overlap):
                if not c.text.strip():
                    continue
                entries = self.index.for_text(c.text, self.config.retrieved) if self.index is not None else []
                plan.append((i, c, self.prompts.messages(c.text, [e.prompt_line() for e in entries])))
        return plan

    @property
    def decoding(self) -> dict:
        """What, besides the messages, decides an answer: the model and how it decodes (temperature is 0)."""
        c = self.config.client
        return {"model": c.model, "max_tokens": c.max_tokens, "temperature": 0.0, "format": self.config.fmt}

    def run(self, texts: list[str], cache: AnswerCache | None = None) -> list[NoteOutcome]:
        plan = self.requests(texts)
        outcomes = [NoteOutcome() for _ in texts]
        keys = [cache.key(self.decoding, m) if cache else str(n) for n, (_, _, m) in enumerate(plan)]
        answers = self._answers(plan, keys, outcomes, cache)
        per_note: dict[int, list] = {}
        for (i, c, _), key in zip(plan, keys, strict=True):
            out, answer = outcomes[i], answers[key]
            if isinstance(answer, str):          # the request failed
                out.status = answer
                continue
            out.dropped += answer.dropped
            if answer.truncated and out.status == "ok":
                out.status = "truncated"     # the answer hit max_tokens: entities after the cut are missing
            per_note.setdefault(i, []).append((c, answer.report(c.text).found))
        for i, found_lists in per_note.items():
            text = texts[i]
            for f in merge_found(found_lists):
                tier = FIXED_TIER.get(f.entity_type) or f.tier or self.config.default_tier
                outcomes[i].spans.append(Span(f.start, f.end, f.entity_type, text[f.start:f.end], tier, "llm", 0.8,
                                              f"llm.{self.config.fmt}", attrs={"llm_tier": f.tier}))
        return outcomes

    def _answers(self, plan, keys: list[str], outcomes: list[NoteOutcome],
                 cache: AnswerCache | None) -> dict[str, KeptAnswer | str]:
        """key -> the parsed answer, or "failed:<reason>"; each distinct request the cache does not know is sent
        once, its tokens and the call counted on the first note that asked."""
        answers: dict[str, KeptAnswer | str] = {}
        ask: dict[str, int] = {}                 # key -> the plan entry that sends it
        for n, ((i, _, _), key) in enumerate(zip(plan, keys, strict=True)):
            kept = cache.get(key) if cache else None
            if kept is not None:
                answers[key] = kept
                outcomes[i].cache_hits += 1
            elif key not in ask:
                ask[key] = n
        fmt = RESPONSE_FORMAT if self.config.fmt == "json" else None
        sent = list(ask.items())
        replies = self.client.complete_many([plan[n][2] for _, n in sent], response_format=fmt) if sent else []
        parse = parse_json if self.config.fmt == "json" else parse_markup
        for (key, n), reply in zip(sent, replies, strict=True):
            i, c, _ = plan[n]
            out = outcomes[i]
            out.calls += 1
            out.prompt_tokens += reply.prompt_tokens
            out.completion_tokens += reply.completion_tokens
            if not reply.ok:
                answers[key] = f"failed:{reply.error}"
                continue
            report = parse(c.text, reply.content)
            if report.invalid:
                answers[key] = "failed:unparseable"
                continue
            answers[key] = KeptAnswer.of(report, truncated=reply.finish_reason == "length")
            if cache:
                cache.put(key, answers[key])
        return answers
