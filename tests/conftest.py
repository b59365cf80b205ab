import os

import pytest

from deid.config import load_config
from deid.pipeline import Pipeline

# The job's HMAC key (note_digest, text_digest) for the whole session, set at import so that Spark's Python
# workers inherit it; a test that needs another key or none sets or deletes it with monkeypatch.
os.environ.setdefault("DEID_SECRET", "test-session-key-not-a-secret")


@pytest.fixture(scope="session")
def pipeline():
    return Pipeline(load_config())


@pytest.fixture(scope="session")
def analyze(pipeline):
    """text -> list of (type, text, tier) after merging."""
    def run(text):
        return [(s.entity_type.value, s.text, s.tier) for s in pipeline.analyze(text)]
    return run


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """The real Ray Serve app with llama.cpp and the real small model on 127.0.0.1, shared by every test that
    needs it (it takes a minute to start), with fault rules that only marked notes trigger."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install '.[local-llm]')")
    from support import Served
    server = Served(tmp_path_factory.mktemp("serve"))
    yield server.url
    leftover = server.stop()
    assert not leftover, f"processes left behind: {leftover}"
