"""The generation engine behind the local Serve deployment (deid/serving/deployment.py): llama-cpp-python on CPU
with a small Qwen2.5 GGUF and JSON-schema constrained output (`[local-llm]`). It takes OpenAI chat requests and
returns OpenAI chat completions, the contract Ray Serve LLM's vLLM server keeps in production
(conf/serve-vllm.yaml), so the client and the Spark job cannot tell them apart. vLLM has no engine here: Ray's
`ray.serve.llm` runs it.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from typing import Protocol


class Engine(Protocol):
    model_name: str

    async def complete(self, request: dict) -> dict: ...


def completion(model: str, content: str, finish: str, prompt_tokens: int, completion_tokens: int) -> dict:
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def _json_schema(request: dict) -> dict | None:
    fmt = request.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema")
    if fmt.get("type") == "json_object":
        return fmt.get("schema") or {"type": "object"}
    return None


class LlamaCppEngine:
    def __init__(self, model_name: str, model_path: str | None = None, n_ctx: int = 4096, n_threads: int = 2,
                 seed: int = 0):
        from llama_cpp import Llama

        from deid.serving.gguf import model_path as verified_model
        # ggml forks a debugger (gdb -p) before it aborts on a failed assertion; see REPLICA_ENV in
        # deid/serving/deployment.py, which sets this from the replica's start. Set here too for use outside Serve.
        os.environ.setdefault("GGML_NO_BACKTRACE", "1")
        self.model_name = model_name
        self._llm = Llama(model_path=str(model_path or verified_model()), n_ctx=n_ctx, n_threads=n_threads,
                          seed=seed, verbose=False)
        # Held by the thread that runs llama.cpp, not by its caller: a caller that goes away cannot release it
        # while a generation still runs, which would start the next one beside it on the same, not thread-safe,
        # llama.cpp context.
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _generate(self, cancelled: threading.Event, kwargs: dict) -> dict:
        with self._lock:
            if cancelled.is_set():
                raise asyncio.CancelledError
            return self._llm.create_chat_completion(**kwargs)

    async def complete(self, request: dict) -> dict:
        # Set when the caller goes away: a generation still waiting for the model never starts (a running one
        # cannot be interrupted: create_chat_completion takes no stopping criteria).
        cancelled = threading.Event()
        kwargs = {"messages": request["messages"], "max_tokens": int(request.get("max_tokens") or 512),
                  "temperature": float(request.get("temperature", 0.0)), "seed": int(request.get("seed", 0))}
        schema = _json_schema(request)
        if schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        if request.get("repetition_penalty") is not None:   # vLLM's name for llama.cpp's repeat_penalty
            kwargs["repeat_penalty"] = float(request["repetition_penalty"])
        try:
            out = await asyncio.to_thread(self._generate, cancelled, kwargs)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return completion(self.model_name, choice["message"]["content"] or "", choice.get("finish_reason") or "stop",
                          usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))


def make_engine(config: dict) -> Engine:
    kind = config.get("engine", "llama_cpp")
    name = config.get("model_name", "qwen2.5")
    if kind == "llama_cpp":
        return LlamaCppEngine(name, **(config.get("llama_cpp") or {}))
    raise ValueError(f"unknown engine {kind!r}: llama_cpp (vLLM runs through ray.serve.llm: conf/serve-vllm.yaml)")
