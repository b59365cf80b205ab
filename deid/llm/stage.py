"""The LLM stage: notes -> chunks -> retrieved dictionary entries -> prompt -> model -> parsed spans.

All chunks of a batch of notes go to the server concurrently (bounded by the client), so the server's batches
stay full. Each note gets a status: "ok"; "truncated" when an answer hit max_tokens (what it holds is used;
a rerun would cut it the same way, so it is not a failure: raise max_tokens or lower chunk_chars); or
"failed:<reason>" when any of its chunks failed, and the caller decides whether such a note falls back to
the detectors or is quarantined. Spans say detector "llm".

What is sent: with `routing: routed` only the segments the detectors cannot settle (deid.llm.routing), given the
detectors' spans and the NER tokens; with `routing: whole` every chunk of every note.

With an AnswerCache (deid.llm.cache) a request whose key it knows is not sent; the same request twice in one
batch is sent once; every answer that parsed is put in the cache for the caller to keep.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from deid.llm.cache import AnswerCache, KeptAnswer
from deid.llm.chunking import Chunk, chunk, merge_found
from deid.llm.client import ClientConfig, LlmClient
from deid.llm.parse import ENTITY_SCHEMA, Found, parse_json, parse_markup
from deid.llm.prompts import load_prompts
from deid.llm.routing import Router
from deid.spans import FIXED_TIER, Span

# OpenAI's response_format for the JSON prompt: json_schema needs a name beside the schema (vLLM's OpenAI server,
# which Ray Serve LLM runs, refuses one without: tests/test_serve_vllm_api.py); it becomes constrained decoding.
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "phi_entities", "schema": ENTITY_SCHEMA}}


ROUTING = ("routed", "whole")
SEPARATOR = "\n"       # between the segments of a note in one request: each starts a line


@dataclass(frozen=True)
class LlmConfig:
    enabled: bool = False
    fmt: str = "json"                 # json | markup
    routing: str = "routed"           # routed (what the detectors cannot settle) | whole (every chunk)
    client: ClientConfig = ClientConfig()
    chunk_chars: int = 1500
    chunk_overlap: int = 200
    retrieved: int = 8
    on_failure: str = "fallback"      # fallback (detectors only, re-run next time) | quarantine
    default_tier: int = 1             # for a tiered type the model did not tier: the protective choice

    def __post_init__(self):
        """One check for every way a stage's config is made: the pipeline's YAML, a test's or a benchmark's."""
        if self.routing not in ROUTING:
            raise ValueError(f"llm.routing must be one of {', '.join(ROUTING)}")

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


@dataclass(frozen=True)
class Request:
    """What one request asks about: one chunk, or (routed) several segments of a note, one line each; the model's
    spans in `text` map back to the parts they fall in (one across a line break is dropped)."""
    parts: tuple[Chunk, ...]

    @property
    def text(self) -> str:
        return SEPARATOR.join(p.text for p in self.parts)

    def split(self, found: list[Found]) -> list[tuple[Chunk, list[Found]]]:
        """Spans in `text`, as (part, spans in that part's offsets) for merge_found."""
        out, offset = [], 0
        for part in self.parts:
            end = offset + len(part.text)
            out.append((part, [replace(f, start=f.start - offset, end=f.end - offset)
                               for f in found if offset <= f.start and f.end <= end]))
            offset = end + len(SEPARATOR)
        return out


def bundle(segments: list[Chunk], max_chars: int) -> list[Request]:
    """A note's segments in as few requests as fit max_chars, in order."""
    out: list[list[Chunk]] = []
    for c in segments:
        if out and sum(len(p.text) + len(SEPARATOR) for p in out[-1]) + len(c.text) <= max_chars:
            out[-1].append(c)
        else:
            out.append([c])
    return [Request(tuple(parts)) for parts in out]


class LlmStage:
    name = "llm"

    def __init__(self, config: LlmConfig, index=None, resources=None, names=None):
        """resources: the pipeline's resources folder; names: its name detector (routing uses both)."""
        self.config = config
        self.prompts = load_prompts(config.fmt, resources)
        self.router = Router(resources, names) if config.routing == "routed" else None
        routing = f"routed-{self.router.version}" if self.router else "whole"
        self.version = f"{config.fmt}:{self.prompts.version}:{config.model}:{routing}"
        self.index = index
        self.client = LlmClient(config.client)

    def note_requests(self, text: str, detected: list[Span] | None = None, doc=None) -> list[Request]:
        """What of one note goes to the model: its routed segments, bundled; or each non-blank chunk alone
        (chunks overlap, so they are never joined). Without the detectors' spans (None: `deid eval --llm` scores
        the LLM alone) nothing is settled, so every chunk goes, routed or not."""
        if self.router is not None and detected is not None:
            return bundle(self.router.segments(text, detected, doc, self.config.chunk_chars),
                          self.config.chunk_chars)
        return [Request((c,)) for c in chunk(text, self.config.chunk_chars, self.config.chunk_overlap)
                if c.text.strip()]

    def requests(self, texts: list[str], detected: list[list[Span]] | None = None,
                 docs: list | None = None) -> list[tuple[int, Request, list[dict]]]:
        """(note index, request, chat messages) for every request of every note; detected and docs (the detectors'
        spans and Documents, per note) are what routing reads."""
        plan = []
        for i, text in enumerate(texts):
            for r in self.note_requests(text, detected[i] if detected else None, docs[i] if docs else None):
                entries = self.index.for_text(r.text, self.config.retrieved) if self.index is not None else []
                plan.append((i, r, self.prompts.messages(r.text, [e.prompt_line() for e in entries])))
        return plan

    @property
    def decoding(self) -> dict:
        """What, besides the messages, decides an answer: the model and how it decodes (temperature is 0)."""
        c = self.config.client
        return {"model": c.model, "max_tokens": c.max_tokens, "temperature": 0.0, "format": self.config.fmt,
                "repetition_penalty": c.repetition_penalty}

    def run(self, texts: list[str], detected: list[list[Span]] | None = None, docs: list | None = None,
            cache: AnswerCache | None = None) -> list[NoteOutcome]:
        plan = self.requests(texts, detected, docs)
        outcomes = [NoteOutcome() for _ in texts]
        keys = [cache.key(self.decoding, m) if cache else str(n) for n, (_, _, m) in enumerate(plan)]
        answers = self._answers(plan, keys, outcomes, cache)
        per_note: dict[int, list] = {}
        for (i, r, _), key in zip(plan, keys, strict=True):
            out, answer = outcomes[i], answers[key]
            if isinstance(answer, str):          # the request failed
                out.status = answer
                continue
            out.dropped += answer.dropped
            if answer.truncated and out.status == "ok":
                out.status = "truncated"     # the answer hit max_tokens: entities after the cut are missing
            per_note.setdefault(i, []).extend(r.split(answer.report(r.text).found))
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
            i, r, _ = plan[n]
            out = outcomes[i]
            out.calls += 1
            out.prompt_tokens += reply.prompt_tokens
            out.completion_tokens += reply.completion_tokens
            if not reply.ok:
                answers[key] = f"failed:{reply.error}"
                continue
            report = parse(r.text, reply.content)
            if report.invalid:
                answers[key] = "failed:unparseable"
                continue
            answers[key] = KeptAnswer.of(report, truncated=reply.finish_reason == "length")
            if cache:
                cache.put(key, answers[key])
        return answers
