"""Routing: what of a note the LLM stage sends to the model, decided on the real detectors' output."""
import pytest

from deid.config import ConfigError, load_config
from deid.llm.chunking import Chunk
from deid.llm.parse import Found, parse_json
from deid.llm.routing import Router
from deid.llm.stage import LlmConfig, LlmStage, bundle
from deid.pipeline import Pipeline
from deid.spans import EntityType as T


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline()


@pytest.fixture(scope="module")
def router(pipeline):
    return Router(pipeline.resources, dict(pipeline.components)["name"])


def routed(pipeline, router, text: str, max_chars: int = 1500) -> list[Chunk]:
    _, docs, found = pipeline.detect([text])
    return router.segments(text, found[0], docs[0], max_chars)


def test_a_note_the_detectors_settle_is_not_sent(pipeline, router):
    # A cued name, a dictionary hospital, a date, a denied history: every one is a detector's, nothing is left.
    for text in ("患者张建国，男，52岁，因咳嗽3天于北京协和医院就诊。2023年3月15日入院。",
                 "患者王志强，HIV抗体阳性。否认冶游史。",
                 "入院诊断：1.社区获得性肺炎 2.高血压病。查体：双肺呼吸音粗，未闻及干湿啰音。"):
        assert routed(pipeline, router, text) == []


def test_a_name_in_free_prose_goes_with_its_sentence_and_nothing_else(pipeline, router):
    text = "主诉：咳嗽3天。查体：双肺呼吸音粗，未闻及干湿啰音。昨天老伴石粉兰陪他来的。"
    (segment,) = routed(pipeline, router, text)
    assert segment.text == "昨天老伴石粉兰陪他来的。" == text[segment.start:segment.end]


def test_a_name_whose_start_the_detectors_doubt_is_sent():
    # With LAC tagging, the detectors take 宁鑫 after a surname character they leave out (向): the model decides
    # where it starts. (The trained name model takes 向宁鑫 whole, and then nothing is left to send.)
    pipeline = Pipeline(load_config(ner={"model": "lac"}))
    router = Router(pipeline.resources, dict(pipeline.components)["name"])
    text = "今日向宁鑫主任医师查房，听取病史汇报后指示：继续美托洛尔治疗。"
    _, _, found = pipeline.detect([text])
    assert [(s.text, s.entity_type) for s in found[0] if s.entity_type is T.NAME] == [("宁鑫", T.NAME)]
    assert [c.text for c in routed(pipeline, router, text)] == [text]


def test_a_paraphrased_pregnancy_fact_is_sent_with_a_short_neighbour_not_the_rest(pipeline, router):
    # No rule takes 打过一次胎; the sentence before it is too short to stand alone (under 12 characters) and goes too.
    text = "既往体健，否认手术史。三年前打过一次胎，此后月经规律。入院后完善相关检查，予对症治疗，病情平稳。"
    assert [c.text for c in routed(pipeline, router, text)] == [text[:27]]


def test_touching_sentences_merge_up_to_the_chunk_size(pipeline, router):
    prose = "昨天老伴石粉兰陪他来的。"
    text = prose * 6
    (whole,) = routed(pipeline, router, text)
    assert (whole.start, whole.end) == (0, len(text))
    small = routed(pipeline, router, text, max_chars=30)
    assert all(len(c.text) <= 30 and c.text == text[c.start:c.end] for c in small)
    assert sum(len(c.text) for c in small) == len(text) and len(small) == 3


def test_segments_share_a_request_and_the_answer_maps_back_to_the_note():
    note = "甲句没有什么。患者由王五陪同。中间一句。李四签字。"
    parts = [Chunk(7, 15, note[7:15]), Chunk(20, 25, note[20:25])]
    (request,) = bundle(parts, 1500)
    assert request.text == "患者由王五陪同。\n李四签字。"
    report = parse_json(request.text, '[["NAME", "王五", 1], ["NAME", "李四", 1]]')
    split = request.split(report.found)
    in_note = [(f.start + c.start, f.end + c.start) for c, found in split for f in found]
    assert [note[s:e] for s, e in in_note] == ["王五", "李四"]
    # an entity across the line break between two parts belongs to neither and is dropped
    assert request.split([Found(6, 10, T.NAME, 1, "x")]) == [(parts[0], []), (parts[1], [])]
    assert len(bundle(parts, 12)) == 2


def test_the_switch_is_validated_and_versioned(pipeline):
    with pytest.raises(ConfigError, match="llm.routing"):
        load_config(llm={"routing": "some"})
    with pytest.raises(ValueError, match="llm.routing"):     # a stage's config built directly: the same check
        LlmConfig(enabled=True, routing="some")
    routed_stage = LlmStage(LlmConfig(enabled=True), resources=pipeline.resources)
    whole = LlmStage(LlmConfig(enabled=True, routing="whole"))
    assert routed_stage.version != whole.version and whole.version.endswith(":whole")
    assert Pipeline(load_config(llm={"enabled": True})).version != \
        Pipeline(load_config(llm={"enabled": True, "routing": "whole"})).version
    text = "入院诊断：1.社区获得性肺炎 2.高血压病。昨天老伴石粉兰陪他来的。"
    assert [r.text for r in whole.note_requests(text)] == [text]
    assert whole.note_requests("   ") == []
    # without the detectors' spans nothing is settled: every chunk goes (deid eval --llm scores the LLM alone)
    assert routed_stage.note_requests(text) == whole.note_requests(text)
    assert routed_stage.note_requests(text, []) != whole.note_requests(text)


def test_requests_send_what_routing_chose(pipeline):
    p = Pipeline(load_config(llm={"enabled": True}))
    texts = ["患者张建国，男，52岁，因咳嗽3天于北京协和医院就诊。",
             "主诉：咳嗽3天。查体：双肺呼吸音粗，未闻及干湿啰音。昨天老伴石粉兰陪他来的。"]
    views, docs, found = p.detect(texts)
    plan = p.llm.requests([v.text for v in views], found, docs)
    assert [(i, r.text) for i, r, _ in plan] == [(1, "昨天老伴石粉兰陪他来的。")]
    assert plan[0][2][1]["content"].endswith("昨天老伴石粉兰陪他来的。")
