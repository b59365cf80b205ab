"""The synthetic generator writes the identifiers beyond the paper's seven (and IPs and URLs as CONTACT) in the
contexts real notes give them, and the pipeline finds them: a small set, so it runs in seconds."""
import ipaddress

import pytest

from deid.evaluate import evaluate
from deid.synth.generator import generate

NEW_TYPES = ("DATE", "AGE", "RECORD_ID", "ACCOUNT", "CERTIFICATE", "VEHICLE", "WORKPLACE")


@pytest.fixture(scope="module")
def notes():
    return generate(200, 11)


@pytest.fixture(scope="module")
def scores(notes, pipeline):
    return evaluate(notes, pipeline).per_type()


def test_every_new_type_is_written_with_offsets_that_slice_its_text(notes):
    spans = [s for n in notes for s in n["spans"]]
    assert set(NEW_TYPES) <= {s["type"] for s in spans}
    assert {"url", "ipv4", "ipv6"} <= {_network_kind(s["text"]) for s in spans if s["type"] == "CONTACT"}
    for n in notes:
        for s in n["spans"]:
            assert n["text"][s["start"]:s["end"]] == s["text"]


def _network_kind(contact: str) -> str | None:
    if contact.startswith(("http://", "https://", "www.")):
        return "url"
    try:
        return f"ipv{ipaddress.ip_address(contact).version}"
    except ValueError:
        return None


@pytest.mark.parametrize("etype", [*NEW_TYPES, "CONTACT"])
def test_the_pipeline_finds_what_the_generator_labels_and_nothing_it_does_not(scores, etype):
    exact = scores[etype]["exact"]
    assert exact["r"] >= 0.99 and exact["p"] >= 0.99
