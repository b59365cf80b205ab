"""The LLM client against a real HTTP server on 127.0.0.1 that misbehaves on request: down, HTTP 500, flaky,
slower than the timeout, malformed output; and the concurrency bound."""
import asyncio
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from support import free_port

from deid.llm.client import ClientConfig, LlmClient

STATE = {"inflight": 0, "peak": 0, "calls": {}}
app = FastAPI()


@app.post("/v1/chat/completions")
async def chat(request: Request):
    body = await request.json()
    fault = body["messages"][-1]["content"]
    STATE["calls"][fault] = STATE["calls"].get(fault, 0) + 1
    work = fault.startswith("work")   # only these count for the concurrency gauge
    STATE["inflight"] += work
    STATE["peak"] = max(STATE["peak"], STATE["inflight"])
    try:
        if fault == "500":
            return JSONResponse({"error": {"message": "boom"}}, 500)
        if fault == "flaky" and STATE["calls"][fault] < 3:
            return JSONResponse({"error": {"message": "busy"}}, 503)
        if fault == "slow":
            await asyncio.sleep(2.0)
        if fault == "malformed":
            return PlainTextResponse("not json at all")
        if fault.startswith("work"):
            await asyncio.sleep(0.05)
        return {"choices": [{"message": {"role": "assistant", "content": f"echo {fault}"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}
    finally:
        STATE["inflight"] -= work


@pytest.fixture(scope="module")
def server():
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(5)


def ask(url, *faults, **cfg):
    client = LlmClient(ClientConfig(base_url=url, backoff_s=0.01, **cfg))
    return client.complete_many([[{"role": "user", "content": f}] for f in faults])


def test_ok_counts_tokens(server):
    (r,) = ask(server, "hello")
    assert r.ok and r.content == "echo hello" and (r.prompt_tokens, r.completion_tokens) == (7, 3)


def test_http_500_is_retried_then_reported(server):
    (r,) = ask(server, "500", retries=2)
    assert not r.ok and r.error == "http_500" and r.attempts == 3


def test_flaky_server_succeeds_after_backoff(server):
    (r,) = ask(server, "flaky", retries=3)
    assert r.ok and r.attempts == 3


def test_slower_than_timeout(server):
    (r,) = ask(server, "slow", timeout_s=0.3, retries=1)
    assert not r.ok and r.error == "timeout" and r.seconds < 1.5


def test_malformed_response(server):
    (r,) = ask(server, "malformed")
    assert not r.ok and r.error == "invalid_response" and r.attempts == 1


def test_server_down():
    (r,) = ask(f"http://127.0.0.1:{free_port()}", "hello", retries=1)
    assert not r.ok and r.error == "connect"


def test_concurrency_is_bounded(server):
    STATE["peak"] = 0
    results = ask(server, *[f"work{i}" for i in range(30)], concurrency=4)
    assert all(r.ok for r in results) and [r.content for r in results] == [f"echo work{i}" for i in range(30)]
    assert 2 <= STATE["peak"] <= 4
