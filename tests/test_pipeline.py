import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import deid
from deid import __version__
from deid.config import ConfigError, load_config, parse_config
from deid.pipeline import NoteError, NoteTooLarge, Pipeline, source_digest, source_part
from deid.resources import resources_dir
from deid.spans import EntityType


def test_version_names_every_component(pipeline):
    assert pipeline.version.startswith(__version__ + "+")
    expected = {"ner", "hospital", "std", "pregnancy", "name", "policies", "config", "code", "vocabulary"}
    assert expected <= set(pipeline.component_versions)


def _source_digest_of(package_parent: Path) -> str:
    out = subprocess.run([sys.executable, "-c", "from deid.pipeline import source_digest; print(source_digest())"],
                         env={**os.environ, "PYTHONPATH": str(package_parent)}, cwd=package_parent,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_a_rule_changed_in_code_changes_pipeline_version(tmp_path, pipeline):
    """Upgrading deid re-masks what a changed rule may mask differently, whatever __version__ says."""
    assert source_part(pipeline.version) == source_digest()[:8]
    copy = tmp_path / "deid"
    shutil.copytree(Path(deid.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert _source_digest_of(tmp_path) == source_digest()
    (copy / "cli.py").write_text((copy / "cli.py").read_text() + "\n# a command line change decides nothing\n")
    assert _source_digest_of(tmp_path) == source_digest()
    contact = copy / "detectors" / "contact.py"
    contact.write_text(contact.read_text().replace("{5,11}", "{5,12}"))
    assert _source_digest_of(tmp_path) != source_digest()


def test_dictionary_edit_changes_pipeline_version(tmp_path, monkeypatch, pipeline):
    copy = tmp_path / "resources"
    shutil.copytree(resources_dir(), copy)
    with open(copy / "dictionaries" / "hospitals.tsv", "a", encoding="utf-8") as f:
        f.write("测试专科医院\t北京\t测专\t\n")
    monkeypatch.setenv("DEID_RESOURCES", str(copy))
    edited = Pipeline(load_config())
    assert edited.version != pipeline.version
    assert [s.text for s in edited.analyze("曾于测专就诊")] == ["测专"]
    assert [s.text for s in pipeline.analyze("曾于测专就诊")] == []


def test_bad_input_is_refused_without_quoting_it(pipeline, tmp_path):
    with pytest.raises(NoteError, match="string"):
        pipeline.analyze(None)
    small = Pipeline(load_config(limits={"max_chars": 10}))
    with pytest.raises(NoteTooLarge) as err:
        small.analyze("患者张建国" * 3)
    assert "张建国" not in str(err.value)


def test_odd_text_does_not_break_offsets(pipeline):
    text = "<p>患者\ud800张建国</p>\x00\x07电话：１３８１２３４５６７８\r\n" + "。" * 5
    for s in pipeline.analyze(text):
        assert text[s.start:s.end] == s.text


def test_long_note(pipeline):
    text = ("患者张建国，男，52岁，因胸痛入院。" + "心电图示窦性心律。" * 50) * 40
    spans = pipeline.analyze(text)
    assert sum(1 for s in spans if s.text == "张建国") == 40


def test_unknown_component_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown pipeline components"):
        load_config(components=["ner", "teleport"])


def test_detectors_only_config_runs_without_ner():
    p = Pipeline(load_config(components=["id_number", "contact", "name"]))
    assert [s.text for s in p.analyze("姓名：张建国，电话13812345678")] == ["张建国", "13812345678"]


def test_config_digest_ignores_how_the_work_is_done_and_follows_what_is_found():
    from deid.config import load_config
    base = load_config().digest
    for operational in ({"llm": {"base_url": "http://elsewhere:8000", "concurrency": 64, "timeout_s": 5,
                                 "retries": 0, "on_failure": "quarantine"}},
                        {"ner": {"threads": 4, "batch_size": 8}}, {"policies": "/somewhere/else.yaml"}):
        assert load_config(**operational).digest == base, operational
    for decisive in ({"llm": {"max_tokens": 64}}, {"llm": {"format": "markup"}}, {"ner": {"gate": False}},
                     {"merge": {"tier_rule": "protective"}}, {"components": ["name"]}):
        assert load_config(**decisive).digest != base, decisive


def test_a_component_listed_before_the_annotation_it_reads_is_a_config_error():
    with pytest.raises(ConfigError, match="name reads the ner annotation"):
        load_config(components=["name", "ner"])
    assert load_config(components=["name"]).components == ("name",)   # without the model it runs on cues alone


@pytest.mark.parametrize("settings, error", [
    ({"ner": {"threads": 2, "bach_size": 8}}, r"ner: unknown settings \['bach_size'\]; it has: threads, batch_size"),
    ({"ner": {"gate": 1}}, "ner.gate must be bool, not int"),
    ({"ner": {"threads": True}}, "ner.threads must be int, not bool"),
    ({"name": {"anything": 1}}, r"name: unknown settings \['anything'\]; it has: none"),
])
def test_component_settings_are_checked_against_what_the_component_declares(settings, error):
    with pytest.raises(ConfigError, match=error):
        load_config(**settings)


def test_the_registry_declares_each_component_and_the_config_fills_in_its_settings():
    from deid.detectors.registry import COMPONENTS
    from deid.merge import DEFAULT_PRIORITY, DEFAULT_TIER_RULE
    config = load_config(ner={"threads": 2})
    assert config.settings["ner"] == {"threads": 2, "batch_size": 64, "gate": True, "model": "trained"}
    assert config.settings["name"] == {}
    bare = parse_config({}, Path("."))
    # pipeline.yaml spells out the one default merge priority and tier rule, which a config without them gets
    assert config.type_priority == bare.type_priority == DEFAULT_PRIORITY
    assert config.tier_rule == bare.tier_rule == DEFAULT_TIER_RULE
    found = {t for cls in COMPONENTS.values() for t in cls.entity_types}
    assert found == set(EntityType)   # every type has a component that declares it


def test_each_detector_finds_only_the_types_it_declares(pipeline):
    from deid.detectors.base import Document
    from deid.detectors.registry import COMPONENTS
    text = ("患者张建国，男，92岁，2023年3月15日入住杭州市第一人民医院，住址：杭州市西湖区文三路100号，"
            "电话13812345678，"
            "身份证330106199001011234，住院号ZY123456，车牌浙A12345，在杭州市第一中学任教，HIV抗体阳性，孕2产1。")
    doc = Document(text)
    types = set()
    for name, component in pipeline.components:
        if getattr(COMPONENTS[name], "provides", None):
            component.tag_documents([doc])
            continue
        found = {s.entity_type for s in component.detect(doc)}
        assert found <= set(COMPONENTS[name].entity_types), name
        types |= found
    assert len(types) >= 10   # the note holds something for most of them: the check is not vacuous
