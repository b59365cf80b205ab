"""Async client for the OpenAI-compatible endpoint: bounded concurrency (so the server's batches stay full
without flooding it), per-request timeouts, retries with exponential backoff and full jitter, and token
counts. A failure is returned as a result, never raised into the caller's loop, and carries no note text.

aiohttp, not httpx: httpcore's connection pool scans every connection on every request event, so at 64
requests in flight an httpx client spent 18 ms of CPU per request and reached 45% of the throughput a
fixed-latency server allows (bench/bench_llm.py)."""
from __future__ import annotations

import asyncio
import json
import os
import random
import time
from dataclasses import dataclass

import aiohttp

RETRYABLE = {408, 409, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class ClientConfig:
    base_url: str = "http://127.0.0.1:8765"
    model: str = "qwen2.5-coder-0.5b-instruct-q4_k_m"
    concurrency: int = 8
    timeout_s: float = 60.0
    retries: int = 3
    backoff_s: float = 0.5
    max_tokens: int = 512
    api_key_env: str = "DEID_LLM_API_KEY"   # sent as a bearer token when set
    # > 1 discourages repeating tokens (vLLM's repetition_penalty): the small local model otherwise loops, listing
    # the same entities until max_tokens; not sent when None
    repetition_penalty: float | None = None


@dataclass(frozen=True)
class Completion:
    ok: bool
    content: str = ""
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0
    error: str = ""          # class of failure only: timeout, http_500, connect, invalid_response
    seconds: float = 0.0


class LlmClient:
    def __init__(self, config: ClientConfig = ClientConfig()):
        self.config = config

    async def _one(self, http: aiohttp.ClientSession, gate: asyncio.Semaphore, messages: list[dict],
                   response_format: dict | None) -> Completion:
        body = {"model": self.config.model, "messages": messages, "temperature": 0.0,
                "max_tokens": self.config.max_tokens}
        if response_format:
            body["response_format"] = response_format
        if self.config.repetition_penalty is not None:
            body["repetition_penalty"] = self.config.repetition_penalty
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        url = self.config.base_url.rstrip("/") + "/v1/chat/completions"
        t0, error = time.perf_counter(), ""
        for attempt in range(1, self.config.retries + 2):
            try:
                async with gate, http.post(url, data=payload) as r:
                    if r.status == 200:
                        data = await r.json(content_type=None)
                        choice = data["choices"][0]
                        usage = data.get("usage") or {}
                        return Completion(True, choice["message"].get("content") or "", choice.get("finish_reason", ""),
                                          usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), attempt,
                                          seconds=time.perf_counter() - t0)
                    error = f"http_{r.status}"
                    if r.status not in RETRYABLE:
                        break
            except TimeoutError:
                error = "timeout"
            except aiohttp.ClientError:
                error = "connect"
            except (ValueError, KeyError, IndexError, TypeError):
                error = "invalid_response"
                break
            if attempt <= self.config.retries:
                await asyncio.sleep(random.uniform(0, self.config.backoff_s * 2 ** (attempt - 1)))
        return Completion(False, attempts=attempt, error=error, seconds=time.perf_counter() - t0)

    async def complete_many_async(self, requests: list[list[dict]], response_format: dict | None = None):
        gate = asyncio.Semaphore(self.config.concurrency)
        headers = {"Content-Type": "application/json"}
        if os.environ.get(self.config.api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[self.config.api_key_env]}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
                                         connector=aiohttp.TCPConnector(limit=self.config.concurrency),
                                         headers=headers) as http:
            return await asyncio.gather(*(self._one(http, gate, m, response_format) for m in requests))

    def complete_many(self, requests: list[list[dict]], response_format: dict | None = None) -> list[Completion]:
        """From synchronous code (a Spark task): run the requests concurrently and wait for all."""
        return asyncio.run(self.complete_many_async(requests, response_format))
