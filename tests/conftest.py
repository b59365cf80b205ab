import pytest

from deid.config import load_config
from deid.pipeline import Pipeline


@pytest.fixture(scope="session")
def pipeline():
    return Pipeline(load_config())


@pytest.fixture(scope="session")
def analyze(pipeline):
    """text -> list of (type, text, tier) after merging."""
    def run(text):
        return [(s.entity_type.value, s.text, s.tier) for s in pipeline.analyze(text)]
    return run
