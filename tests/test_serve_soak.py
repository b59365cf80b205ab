"""Soak: a few hundred requests, 16 in flight, through the real local server (`deid serve` on
conf/serve-local.yaml: Ray Serve, llama.cpp, the real model), with short prompts and small max_tokens so that it
fits in `make test` (about three minutes on two cores). A third are constrained to the JSON schema (llama.cpp's
grammar), and one in ten is abandoned by its caller (a client timeout). Then, ten times, a generation is
abandoned while it runs and the next request follows at once: the path that once let two generations share one
llama.cpp context (the lock was released with the cancelled caller), which made ggml's get_rows assertion fail in
both compute threads, both fork a debugger, and gRPC's fork check abort the replica ("Check failed: is_forking
!= was_forking"); with that lock back, this test fails at its first pair (docs/llm.md).

Passes when no replica was restarted or replaced (the replica's pid and Ray actor id from /health, and the
ServeReplica processes of the server's tree, are the same after as before) and every request was answered (200
with a completion and its token counts) or failed cleanly: only the abandoned ones, by our own timeout, never a
5xx, a dropped connection or a malformed body. DEID_SOAK_REQUESTS sets the count (default 240).
"""
import asyncio
import os
import statistics
import time

import aiohttp
import httpx
import psutil
from test_serving_network import serve_tree

from deid.llm.stage import RESPONSE_FORMAT

REQUESTS = int(os.environ.get("DEID_SOAK_REQUESTS", "240"))
IN_FLIGHT = 16
ABANDON_AFTER_S = 0.3


def replicas(url: str) -> dict[int, float]:
    """pid -> start time of every Serve replica process of the server."""
    return {p.pid: p.create_time() for p in serve_tree(url) if "ServeReplica" in " ".join(p.cmdline())}


def request(i: int) -> tuple[dict, float | None]:
    body = {"messages": [{"role": "user", "content": f"患者{i}号，手机1381234{i:04d}。用一个字回答：好。"}],
            "temperature": 0.0, "max_tokens": 8 if i % 3 == 0 else 4}
    if i % 3 == 0:
        body["response_format"] = RESPONSE_FORMAT
    return body, (ABANDON_AFTER_S if i % 10 == 9 else None)


async def soak(url: str) -> list[tuple[str, float]]:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(http: aiohttp.ClientSession, i: int) -> tuple[str, float]:
        body, abandon = request(i)
        async with gate:
            t0 = time.perf_counter()
            try:
                async with http.post(url + "/v1/chat/completions", json=body,
                                     timeout=aiohttp.ClientTimeout(total=abandon or 300)) as r:
                    if r.status != 200:
                        return f"http_{r.status}", time.perf_counter() - t0
                    data = await r.json()
                    choice = data["choices"][0]
                    assert isinstance(choice["message"]["content"], str)
                    assert choice["finish_reason"] in ("stop", "length")
                    assert 0 < data["usage"]["completion_tokens"] <= body["max_tokens"]
                    return "ok", time.perf_counter() - t0
            except TimeoutError:
                return ("abandoned" if abandon else "timeout"), time.perf_counter() - t0
            except aiohttp.ClientError as exc:
                return f"connection:{type(exc).__name__}", time.perf_counter() - t0
            except (KeyError, IndexError, TypeError, ValueError, AssertionError):
                return "malformed", time.perf_counter() - t0

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as http:
        return await asyncio.gather(*(one(http, i) for i in range(REQUESTS)))


async def abandon_running_then_follow(url: str, pairs: int = 10) -> list[str]:
    """Each time: a long generation, abandoned after it has started, and at once a short one that must answer."""
    out = []
    async with aiohttp.ClientSession() as http:
        for i in range(pairs):
            long = {"messages": [{"role": "user", "content": f"写一段关于病人{i}号的很长的病历描述。"}],
                    "max_tokens": 64, "temperature": 0.0}
            try:
                async with http.post(url + "/v1/chat/completions", json=long,
                                     timeout=aiohttp.ClientTimeout(total=0.8)) as r:
                    await r.read()
            except TimeoutError:
                pass
            short = {"messages": [{"role": "user", "content": f"病人{i}号。用一个字回答：好。"}], "max_tokens": 4}
            try:
                async with http.post(url + "/v1/chat/completions", json=short,
                                     timeout=aiohttp.ClientTimeout(total=120)) as r:
                    out.append("ok" if r.status == 200 else f"http_{r.status}")
            except (TimeoutError, aiohttp.ClientError) as exc:
                out.append(type(exc).__name__)
    return out


def test_a_few_hundred_requests_and_no_replica_restart(served):
    before = httpx.get(served + "/health", timeout=30).json()["replica"]
    processes = replicas(served)
    assert list(processes) == [before["pid"]]
    rss_before = psutil.Process(before["pid"]).memory_info().rss

    t0 = time.perf_counter()
    results = asyncio.run(soak(served))
    wall = time.perf_counter() - t0
    followers = asyncio.run(abandon_running_then_follow(served))

    outcomes = [o for o, _ in results]
    expected = ["abandoned" if request(i)[1] else "ok" for i in range(REQUESTS)]
    wrong = [(i, o) for i, (o, e) in enumerate(zip(outcomes, expected, strict=True)) if o != e and o != "ok"]
    assert not wrong, f"requests neither answered nor abandoned by us: {wrong[:20]}"
    answered = [s for o, s in results if o == "ok"]
    assert followers == ["ok"] * len(followers), f"after an abandoned generation: {followers}"

    after = httpx.get(served + "/health", timeout=30).json()["replica"]
    assert after == before, f"the replica was restarted or replaced: {before} -> {after}"
    assert replicas(served) == processes, "a Serve replica process died or was added"
    rss_after = psutil.Process(after["pid"]).memory_info().rss
    q = statistics.quantiles(answered, n=20)
    print(f"\nsoak: {REQUESTS} requests, {IN_FLIGHT} in flight, {wall:.0f} s ({REQUESTS / wall:.2f}/s); "
          f"{len(answered)} answered (p50 {statistics.median(answered):.1f} s, p95 {q[18]:.1f} s), "
          f"{outcomes.count('abandoned')} abandoned; {len(followers)} running generations abandoned and "
          f"followed, all answered; replica pid {after['pid']} throughout, "
          f"RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB")
