import pickle

import pytest

from deid.vocabulary import ClinicalVocabulary, _DataOnly


@pytest.fixture(scope="module")
def vocab():
    return ClinicalVocabulary()


def test_drugs_brands_anatomy_and_signs_are_clinical_words(vocab):
    for word in ("替吉奥", "比阿培南", "艾恒", "乐沙定", "舒普深", "腹膜", "罗音"):
        assert word in vocab
    assert "腹膜" in vocab.body


def test_places_and_clans_are_not_clinical_words(vocab):
    for word in ("黄石", "地区", "鹤壁", "黄氏"):
        assert word not in vocab


def test_matches_report_every_word_with_offsets(vocab):
    text = "替吉奥胶囊"
    assert (0, 3) in vocab.matches(text)


def test_the_data_file_may_hold_only_plain_data():
    class Evil:
        def __reduce__(self):
            return (print, ("boom",))
    import io
    with pytest.raises(pickle.UnpicklingError):
        _DataOnly(io.BytesIO(pickle.dumps({"x": Evil()}))).load()


def test_a_small_graph_builds_a_vocabulary():
    v = ClinicalVocabulary({"阿莫西林胶囊": {"商品名": ["阿莫仙"], "常见发病部位": ["咽部"], "分类": ["青霉素类"]}})
    assert {"阿莫西林胶囊", "阿莫仙", "咽部"} <= v.words and "青霉素类" not in v.words and "咽部" in v.body


def test_the_treatment_verbs_come_from_the_resources_the_vocabulary_is_given(tmp_path):
    """A site's edited lexicons/treatment_verbs.txt reaches the detectors and the version (not only the package's)."""
    import shutil

    from deid.detectors.name import NameDetector
    from deid.resources import Resources, resources_dir
    copy = tmp_path / "resources"
    shutil.copytree(resources_dir(), copy)
    with open(copy / "lexicons" / "treatment_verbs.txt", "a", encoding="utf-8") as f:
        f.write("\n改服\n")
    site, packaged = ClinicalVocabulary(resources=Resources(copy)), ClinicalVocabulary()
    assert site.version != packaged.version
    assert site.treated_with.search("改服瑞宁德", 0, 2) and not packaged.treated_with.search("改服瑞宁德", 0, 2)
    # a detector built alone hands its folder to its vocabulary
    assert NameDetector(resources=Resources(copy)).vocabulary.treated_with.search("改服瑞宁德", 0, 2)
