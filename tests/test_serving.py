"""Serving: the model file's verification, and the real Ray Serve app with llama.cpp and the real small model on
127.0.0.1, driven by the real client, prompts and parser."""
import asyncio
import os
import time

import httpx
import pytest
from support import FAULTS, SLOW_FAULT_S, dead_url

from deid.serving import gguf


def test_corrupt_parts_are_refused(tmp_path, monkeypatch):
    parts = []
    for i in range(6):
        p = tmp_path / f"part{i}.bin"
        p.write_bytes(b"x" * 10)
        parts.append(p)
    monkeypatch.setattr(gguf, "part_paths", lambda: parts)
    with pytest.raises(gguf.ModelFileError, match="does not match"):
        gguf.model_path(tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*"))           # nothing half-written is left behind


def test_fault_rules_are_checked_and_absent_rules_leave_the_engine_alone():
    from deid.serving.faults import FaultRule, with_faults
    engine = object()
    assert with_faults(engine, None) is engine and with_faults(engine, []) is engine
    for bad in ({"when": "", "action": "error"}, {"when": "x", "action": "explode"}):
        with pytest.raises(ValueError, match="fault rule"):
            FaultRule(**bad)


def test_missing_part_package_is_named(monkeypatch):
    monkeypatch.setattr(gguf, "PARTS", ["no_such_pkg_for_deid"])
    with pytest.raises(gguf.ModelFileError, match="no-such-pkg-for-deid"):
        gguf.part_paths()


class SlowModel:
    """Stands in for llama_cpp.Llama: 10 ms a token, always max_tokens of them, and a record of how many
    generations ever ran at once."""

    def __init__(self, **_):
        self.running, self.most_running, self.generated = 0, 0, []

    def create_chat_completion(self, messages, max_tokens, **_):
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        time.sleep(0.01 * max_tokens)
        self.running -= 1
        self.generated.append(max_tokens)
        return {"choices": [{"message": {"content": "x"}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": max_tokens}}


def test_a_generation_whose_caller_went_away_keeps_the_model_until_it_ends(monkeypatch):
    llama_cpp = pytest.importorskip("llama_cpp")
    from deid.serving.engines import LlamaCppEngine
    monkeypatch.setattr(llama_cpp, "Llama", SlowModel)
    monkeypatch.delenv("GGML_NO_BACKTRACE", raising=False)
    engine = LlamaCppEngine("m", model_path="unused")
    assert os.environ["GGML_NO_BACKTRACE"] == "1"       # no debugger forked from a Ray worker on an abort
    request = {"messages": [{"role": "user", "content": "x"}]}

    async def scenario():
        running = asyncio.ensure_future(engine.complete({**request, "max_tokens": 50}))
        await asyncio.sleep(0.1)
        queued = asyncio.ensure_future(engine.complete({**request, "max_tokens": 50}))
        await asyncio.sleep(0.05)
        running.cancel()
        queued.cancel()
        return await engine.complete({**request, "max_tokens": 5})

    assert asyncio.run(scenario())["usage"]["completion_tokens"] == 5
    assert engine._llm.most_running == 1              # llama.cpp's context is never used by two threads at once
    assert engine._llm.generated == [50, 5]           # the queued one, whose caller went away, never started


def test_openai_routes(served):
    models = httpx.get(served + "/v1/models").json()
    assert models["data"][0]["id"].startswith("qwen2.5")
    bad = httpx.post(served + "/v1/chat/completions", json={"messages": []})
    assert bad.status_code == 400


def test_a_note_through_client_prompt_and_parser(served):
    from deid.llm.client import ClientConfig, LlmClient
    from deid.llm.parse import parse_json, parse_markup
    from deid.llm.prompts import load_prompts
    from deid.llm.stage import RESPONSE_FORMAT
    note = "患者张建国，男，52岁，手机13812345678，于北京协和医院就诊。"
    client = LlmClient(ClientConfig(base_url=served, max_tokens=160, timeout_s=180, concurrency=2))
    json_reply, markup_reply = client.complete_many(
        [load_prompts("json").messages(note, ["北京协和医院（医院名称）"]),
         load_prompts("markup").messages(note, ["北京协和医院（医院名称）"])],
        response_format=None)
    assert json_reply.ok and markup_reply.ok
    assert json_reply.prompt_tokens > 300 and json_reply.completion_tokens > 0
    # Whatever a 0.5B model answers, the parsers place what they can and count the rest; nothing raises.
    for report in (parse_json(note, json_reply.content), parse_markup(note, markup_reply.content)):
        for f in report.found:
            assert note[f.start:f.end] == f.text
    constrained = client.complete_many([load_prompts("json").messages(note, [])],
                                       response_format=RESPONSE_FORMAT)[0]
    assert constrained.ok
    report = parse_json(note, constrained.content)
    assert not report.invalid


NOTE = "患者张建国，男，52岁，手机13812345678，于北京协和医院就诊。HIV抗体阴性。"
PROSE = "昨天老伴石粉兰陪他来的。"
# The tests of the server's and the client's paths send every chunk: routing would send nothing of NOTE.
WHOLE = {"enabled": True, "routing": "whole"}


@pytest.mark.parametrize("routing", ["whole", "routed"])
def test_pipeline_with_the_llm_stage_on(served, routing):
    from deid.config import load_config
    from deid.pipeline import Pipeline
    p = Pipeline(load_config(llm={"enabled": True, "base_url": served, "max_tokens": 160, "timeout_s": 180,
                                  "concurrency": 2, "routing": routing}))
    assert "json:" in p.component_versions["llm"]
    # Routed, only the free-prose sentence goes to the model: the first is the detectors' alone.
    settled = "患者张建国，男，52岁，因咳嗽3天于北京协和医院就诊，手机13812345678。"
    note = settled + PROSE
    (r,) = p.process_many([note])
    assert r.llm_status in ("ok", "truncated") and r.prompt_tokens > 300
    kinds = {(s.entity_type.value, s.text) for s in r.spans}
    assert {("NAME", "张建国"), ("CONTACT", "13812345678"), ("HOSPITAL", "北京协和医院")} <= kinds
    for s in r.spans:
        assert note[s.start:s.end] == s.text
    if routing == "routed":
        _, docs, found = p.detect([note])
        assert [request.text for _, request, _ in p.llm.requests([note], found, docs)] == [PROSE]
        assert all(s.start >= len(settled) for s in r.spans if s.detector == "llm")


PHI = ("张建国", "13812345678")


def test_an_answer_cut_at_max_tokens_is_used_and_reported(served):
    from deid.config import load_config
    from deid.pipeline import Pipeline
    p = Pipeline(load_config(llm={**WHOLE, "base_url": served, "max_tokens": 8, "timeout_s": 120}))
    (r,) = p.process_many([NOTE])
    assert r.llm_status == "truncated" and r.completion_tokens == 8
    assert "张建国" not in r.masked[1]


def test_server_faults_reach_the_client_as_failures_without_note_text(served):
    from deid.llm.client import ClientConfig, LlmClient
    from deid.llm.parse import parse_json, parse_markup
    # An engine failure takes the server's own error path: a 500 whose body says nothing of the request.
    r = httpx.post(served + "/v1/chat/completions", timeout=30,
                   json={"messages": [{"role": "user", "content": NOTE + FAULTS["error"]}]})
    assert r.status_code == 500 and not any(p in r.text for p in PHI)
    client = LlmClient(ClientConfig(base_url=served, timeout_s=3, retries=1, backoff_s=0.1, max_tokens=32))
    error, slow, malformed = client.complete_many(
        [[{"role": "user", "content": NOTE + FAULTS[k]}] for k in ("error", "delay", "malformed")])
    assert (error.ok, error.error, error.attempts) == (False, "http_500", 2)
    assert (slow.ok, slow.error, slow.attempts) == (False, "timeout", 2) and slow.seconds < SLOW_FAULT_S
    assert malformed.ok
    assert parse_json(NOTE, malformed.content).invalid and parse_markup(NOTE, malformed.content).invalid


@pytest.mark.parametrize("fmt", ["json", "markup"])
def test_every_server_fault_falls_back_to_the_detectors_and_nothing_leaks(served, fmt):
    from deid.config import load_config
    from deid.pipeline import LEVELS, Pipeline
    p = Pipeline(load_config(llm={**WHOLE, "format": fmt, "base_url": served, "timeout_s": 3,
                                  "retries": 1, "backoff_s": 0.1, "max_tokens": 16}))
    results = p.process_many([NOTE + FAULTS[k] for k in ("error", "delay", "malformed")])
    assert [r.llm_status for r in results] == ["failed:http_500", "failed:timeout", "failed:unparseable"]
    for r in results:
        assert {"NAME", "CONTACT", "HOSPITAL", "STD"} <= {s.entity_type.value for s in r.spans}
        for k in LEVELS:
            assert not any(phi in r.masked[k] for phi in PHI)


def test_llm_down_falls_back_to_the_detectors():
    from deid.config import load_config
    from deid.pipeline import Pipeline
    p = Pipeline(load_config(llm={**WHOLE, "base_url": dead_url(), "retries": 1,
                                  "timeout_s": 2}))
    (r,) = p.process_many([NOTE])
    assert r.llm_status == "failed:connect"
    assert "张建国" not in r.masked[3] and "13812345678" not in r.masked[3]     # never passed through unmasked


def test_eval_side_by_side_runs_without_a_server(tmp_path, capsys):
    from deid.cli import main
    main(["synth", "--n", "4", "--seed", "2", "--out", str(tmp_path)])
    capsys.readouterr()
    assert main(["eval", "--gold", str(tmp_path / "notes.jsonl"), "--llm", dead_url()]) == 0
    out = capsys.readouterr().out
    assert "detectors P" in out and "llm R" in out and "ensemble R" in out
    name_row = next(row for row in out.splitlines() if row.startswith("NAME"))
    det_p, det_r, llm_p, llm_r, ens_p, ens_r = map(float, name_row.split()[1:])
    assert llm_r == 0.0 and ens_r == det_r > 0.9          # a dead server adds nothing and takes nothing away
