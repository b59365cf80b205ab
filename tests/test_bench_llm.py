"""bench/bench_llm.py on a few test notes: the figures the README and docs/llm.md quote come out under their keys."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_llm_benchmark_writes_its_figures(tmp_path):
    pytest.importorskip("llama_cpp", reason="the benchmark counts tokens with the local model's tokenizer")
    out = tmp_path / "llm.json"
    env = {k: v for k, v in os.environ.items() if k != "DEID_REAL_DATA"}     # the test notes only
    subprocess.run([sys.executable, str(ROOT / "bench" / "bench_llm.py"), "--n", "3", "--no-throughput",
                    "--json", str(out)], check=True, env=env, cwd=tmp_path, capture_output=True, timeout=300)
    figures = json.loads(out.read_text())
    assert 0 < figures["h100_hours_4m_routed"] < figures["h100_hours_4m_whole"] < figures["h100_hours_4m_paper"]
    assert figures["h100_hours_4m_routed_no_prefix_cache"] > figures["h100_hours_4m_routed"]
    assert set(figures["routing_recall"]) == {"test", "min"} and 0 <= figures["routing_recall"]["min"] <= 1
    assert 0 < figures["routed_share"]["test"] < 1
    tokens = figures["tokens_per_note"]["deid: JSON, routed"]
    assert tokens["completion"] < figures["tokens_per_note"]["deid: JSON, whole note"]["completion"]
