"""The components read the resources folder they are handed (the pipeline's, else the package's), never
$DEID_RESOURCES behind the caller's back."""
import shutil

import pytest

from deid.allow_list import AllowList
from deid.config import load_config
from deid.gazetteer import Gazetteer
from deid.llm.prompts import load_prompts
from deid.llm.retrieval import build_index
from deid.pipeline import ALLOW_LIST, Pipeline
from deid.resources import Resources, data_dir
from deid.synth.generator import Synth

TEXT = "家住北京市朝阳区望京"


@pytest.fixture
def edited(tmp_path, monkeypatch):
    """A copy of the resources with 朝阳区 a stop word and one more hospital; $DEID_RESOURCES names another copy,
    unedited, so that a module reading the environment would miss the edits."""
    copy = tmp_path / "edited"
    shutil.copytree(data_dir("resources"), copy)
    with open(copy / "dictionaries" / "place_stopwords.txt", "a", encoding="utf-8") as f:
        f.write("朝阳区\n")
    with open(copy / "dictionaries" / "hospitals.tsv", "a", encoding="utf-8") as f:
        f.write("测试专科医院\t北京\t测专\t\n")
    shutil.copytree(data_dir("resources"), tmp_path / "environment")
    monkeypatch.setenv("DEID_RESOURCES", str(tmp_path / "environment"))
    return Resources(copy)


def _places(gazetteer: Gazetteer) -> list[str]:
    return [p.name for _, _, p in gazetteer.find(TEXT)]


def test_the_gazetteer_reads_its_stop_words_from_the_folder_it_is_given(edited):
    assert _places(Gazetteer()) == ["北京市", "朝阳区"]
    assert _places(Gazetteer(edited)) == ["北京市"]
    assert Gazetteer(edited).version != Gazetteer().version


def test_the_pipeline_hands_its_folder_to_the_gazetteer(edited):
    pipeline = Pipeline(load_config(components=["address"]), resources=edited)
    assert pipeline.component_versions["gazetteer"] == Gazetteer(edited).version != Gazetteer().version


def test_the_generator_reads_hospitals_from_the_folder_it_is_given(edited):
    assert "测试专科医院" in [r["name"] for r in Synth(1, edited).hospitals]
    assert "测试专科医院" not in [r["name"] for r in Synth(1).hospitals]


def test_the_llm_index_prompts_and_allow_list_read_the_folder_they_are_given(edited):
    with open(edited.root / "prompts" / "note_user.md", "a", encoding="utf-8") as f:
        f.write("\n")
    with open(edited.root / "dictionaries" / "allow_list.tsv", "a", encoding="utf-8") as f:
        f.write("测试专科医院\tHOSPITAL\n")
    assert "测试专科医院" in {e.canonical for e in build_index(resources=edited).entries}
    assert "测试专科医院" not in {e.canonical for e in build_index().entries}
    assert load_prompts("json", edited).version != load_prompts("json").version
    assert AllowList(edited.load(ALLOW_LIST)).version != AllowList().version
