"""The conflict rule between detectors (deid/merge.py `_by_evidence`): evidence, not length alone, decides.

First on its own, with spans shaped as the detectors make them (their `evidence` and `facility` attributes), then on
real-shaped sentences through the whole pipeline.
"""
import pytest

from deid.merge import merge
from deid.spans import EntityType as T
from deid.spans import Span


def _span(text, part, t, at=0, tier=1, det="pattern", **attrs):
    start = text.index(part, at)
    return Span(start, start + len(part), t, part, tier, det, 0.9, attrs=attrs)


def _address(text, part, evidence, at=0, tier=1):
    """An ADDRESS span over `part` with the components the address detector would record, given as (substring, kind)."""
    start = text.index(part, at)
    ev = []
    for piece, kind in evidence:
        s = part.index(piece)
        ev.append((s, s + len(piece), kind))
    return Span(start, start + len(part), T.ADDRESS, part, tier, "pattern", 0.85, "address.fine_anchor",
                attrs={"evidence": tuple(ev), "granularity": "fine"})


def _typed(spans):
    return [(s.entity_type.value, s.text) for s in spans]


# -- the rule on its own ------------------------------------------------------------------------------------------
def test_a_dashed_mobile_beats_its_building_number_reading():
    text = "家属电话138-1234-5678，"
    address = _address(text, "家属电话138-1234-5678", [("138-1234-5678", "number")])
    phone = _span(text, "138-1234-5678", T.CONTACT)
    assert _typed(merge([address, phone])) == [("CONTACT", "138-1234-5678")]


def test_a_plate_beats_the_floor_number_read_inside_it():
    text = "9天前乘坐陕A1F52N小型轿车时"
    address = _address(text, "陕A1F52N小型轿车时", [("A1F", "number"), ("52N小型轿车时", "rest")])
    plate = _span(text, "陕A1F52N", T.VEHICLE)
    assert _typed(merge([address, plate])) == [("VEHICLE", "陕A1F52N")]


def test_an_address_keeps_its_own_parts_around_a_phone():
    text = "住址：北京市朝阳区和平街13812345678"
    address = _address(text, "北京市朝阳区和平街13812345678",
                       [("北京市", "admin"), ("朝阳区", "admin"), ("和平街", "named"), ("13812345678", "number")])
    phone = _span(text, "13812345678", T.CONTACT)
    out = merge([address, phone])
    assert _typed(out) == [("ADDRESS", "北京市朝阳区和平街"), ("CONTACT", "13812345678")]
    assert out[0].tier == 1   # a street is below county level


def test_divisions_left_alone_stop_at_county_level():
    text = "浙江省杭州市330102198001011234"
    address = _address(text, text, [("浙江省", "admin"), ("杭州市", "admin"), ("330102198001011234", "number")])
    id_number = _span(text, "330102198001011234", T.ID_NUMBER)
    out = merge([address, id_number])
    assert _typed(out) == [("ADDRESS", "浙江省杭州市"), ("ID_NUMBER", "330102198001011234")]
    assert out[0].tier == 2


def test_a_facility_ending_wins_over_the_address_and_the_address_keeps_its_number():
    text = "浣纱路356号杭州市第一人民医院"
    address = _address(text, "浣纱路356号杭州市第一人民", [("浣纱路", "named"), ("356号", "number")])
    hospital = _span(text, "杭州市第一人民医院", T.HOSPITAL, facility="人民医院")
    assert _typed(merge([address, hospital])) == [("ADDRESS", "浣纱路356号"), ("HOSPITAL", "杭州市第一人民医院")]


def test_a_place_right_before_a_facility_is_the_start_of_its_name():
    text = "杭州市西湖区留下街道社区卫生服务中心"
    address = _address(text, "杭州市西湖区留下街道", [("杭州市", "admin"), ("西湖区", "admin"), ("留下街道", "named")])
    hospital = _span(text, "留下街道社区卫生服务中心", T.HOSPITAL, facility="社区卫生服务中心")
    (out,) = merge([address, hospital])
    assert (out.entity_type, out.text, out.start, out.end) == (T.HOSPITAL, text, 0, len(text))


def test_a_facility_an_address_goes_on_past_is_a_landmark_inside_it():
    text = "仓后57号温州市人民医院17幢11楼"
    address = _address(text, text, [("仓后", "named"), ("57号", "number"), ("17幢", "number"), ("11楼", "number")])
    hospital = _span(text, "温州市人民医院", T.HOSPITAL, facility="人民医院")
    assert _typed(merge([address, hospital])) == [("ADDRESS", text)]


def test_without_evidence_length_still_decides():
    """An ambiguous hospital alias (协和 of 协和西路) is no evidence: the old rule, longest first."""
    text = "协和西路154号"
    address = _address(text, text, [("协和西路", "named"), ("154号", "number")])
    alias = _span(text, "协和", T.HOSPITAL, facility="")
    assert _typed(merge([address, alias])) == [("ADDRESS", text)]


def test_an_address_that_records_no_evidence_keeps_every_part_of_two_characters():
    text = "文三路100号13812345678"
    plain = Span(0, len(text), T.ADDRESS, text, 1, "pattern", 0.85)
    phone = _span(text, "13812345678", T.CONTACT)
    assert _typed(merge([plain, phone])) == [("ADDRESS", "文三路100号"), ("CONTACT", "13812345678")]


def test_llm_spans_take_no_part_in_the_rule():
    text = "家属电话138-1234-5678"
    address = _address(text, text, [("138-1234-5678", "number")])
    llm_phone = Span(4, len(text), T.CONTACT, text[4:], 1, "llm", 0.8)
    assert _typed(merge([address, llm_phone])) == [("ADDRESS", text)]


# -- real-shaped sentences through the pipeline -----------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("家属电话138-1234-5678，住址杭州市西湖区文三路100号",
     [("CONTACT", "138-1234-5678"), ("ADDRESS", "杭州市西湖区文三路100号")]),
    ("患者无法联系，家属拨打138-1234-5678联系", [("CONTACT", "138-1234-5678")]),
    ("9天前乘坐陕A1F52N小型轿车时发生车祸", [("VEHICLE", "陕A1F52N")]),
    ("住址：北京市朝阳区和平街13812345678", [("ADDRESS", "北京市朝阳区和平街"), ("CONTACT", "13812345678")]),
    ("浣纱路356号杭州市第一人民医院", [("ADDRESS", "浣纱路356号"), ("HOSPITAL", "杭州市第一人民医院")]),
    # a bracketed other name is the hospital's (deid/detectors/hospital.py _BRANCH)
    ("于温州市第七人民医院（温州市精神卫生中心）住院", [("HOSPITAL", "温州市第七人民医院（温州市精神卫生中心）")]),
    # a hospital named by its house number does not take the campus after it from the address phrase
    ("住址：解放路302号中医院南院区", [("ADDRESS", "解放路302号中医院南院区")]),
    ("就诊于北京市海淀区结核病防治所", [("HOSPITAL", "北京市海淀区结核病防治所")]),
    ("患者于北京市朝阳区三里屯社区卫生服务中心就诊", [("HOSPITAL", "北京市朝阳区三里屯社区卫生服务中心")]),
    ("于河南省新乡市红旗区洪门镇卫生院就诊", [("HOSPITAL", "河南省新乡市红旗区洪门镇卫生院")]),
    ("于鞍钢集团公司职工医院就诊", [("HOSPITAL", "鞍钢集团公司职工医院")]),
    ("在中国人民解放军第三〇二医院确诊", [("HOSPITAL", "中国人民解放军第三〇二医院")]),
    ("于中国人民解放军联勤保障部队第九〇四医院就诊", [("HOSPITAL", "中国人民解放军联勤保障部队第九〇四医院")]),
    ("于福州肺科医院就诊", [("HOSPITAL", "福州肺科医院")]),
    ("住址：浙江省温州市鹿城区仓后57号温州市人民医院17幢11楼",
     [("ADDRESS", "浙江省温州市鹿城区仓后57号温州市人民医院17幢11楼")]),
    ("住址：绍兴市嵊州市医院路94号", [("ADDRESS", "绍兴市嵊州市医院路94号")]),
])
def test_real_shaped_conflicts(analyze, text, expected):
    assert [(t, s) for t, s, _tier in analyze(text)] == expected


@pytest.mark.parametrize("text", [
    "由120急救中心送入我院",          # a service number names no one institution
    "上海骨科医院哪家治疗颈椎病好",   # asking which: a kind of hospital
    "术后转入重症监护室3床",
])
def test_no_institution(analyze, text):
    assert [t for t, _s, _tier in analyze(text) if t == "HOSPITAL"] == []


@pytest.mark.parametrize("text", ["术后转入重症监护室3床", "患者乘坐公交车途中摔倒", "家属拨打120急救电话后送来"])
def test_no_address_after_a_verb(analyze, text):
    assert [t for t, _s, _tier in analyze(text) if t == "ADDRESS"] == []


@pytest.mark.parametrize("text, starts", [
    ("昨日搬入幸福小区5栋302", "幸福小区"),
    ("患者骑车经过解放路128号时被撞", "解放路"),
    ("患者路过金华大厦3号时摔倒", "金华大厦"),   # 路 of 路过 is no road
])
def test_an_address_starts_after_the_verb_before_it(analyze, text, starts):
    addresses = [s for t, s, _tier in analyze(text) if t == "ADDRESS"]
    assert len(addresses) == 1 and addresses[0].startswith(starts)


@pytest.mark.parametrize("lexicon, detector", [
    ("lexicons/place_verbs.txt", "address"),
    ("lexicons/health_facility_endings.txt", "hospital"),
    ("lexicons/eponym_heads.tsv", "name"),
    ("lexicons/person_context.tsv", "name"),
    ("lexicons/person_context.tsv", "address"),
    ("lexicons/transliteration_chars.txt", "name"),
    ("lexicons/club_words.txt", "name"),
    ("lexicons/drug_stems.txt", "name"),
    ("lexicons/address_cues.txt", "address"),
    ("lexicons/place_endings.tsv", "address"),
    ("lexicons/address_units.tsv", "address"),
    ("lexicons/address_stops.tsv", "address"),
    ("lexicons/hospital_words.tsv", "hospital"),
    ("lexicons/person_context.tsv", "workplace"),
    ("lexicons/contact_cues.tsv", "contact"),
    ("lexicons/age_cues.tsv", "age"),
    ("lexicons/id_number_cues.txt", "id_number"),
    ("lexicons/mention_words.tsv", "std"),
    ("lexicons/mention_words.tsv", "pregnancy"),
    ("lexicons/obstetric_formula_words.tsv", "pregnancy"),
    ("lexicons/identifier_cue_tails.tsv", "identifiers"),
    ("lexicons/negation_cues.tsv", "std"),
    ("lexicons/negation_cues.tsv", "pregnancy"),
])
def test_each_lexicon_the_rules_read_enters_pipeline_version(tmp_path, lexicon, detector):
    import shutil

    from deid.detectors.address import AddressDetector
    from deid.detectors.contact import ContactDetector
    from deid.detectors.date import AgeDetector
    from deid.detectors.hospital import HospitalDetector
    from deid.detectors.id_number import IdNumberDetector
    from deid.detectors.identifiers import IdentifierDetector
    from deid.detectors.medical import PregnancyDetector, StdDetector
    from deid.detectors.name import NameDetector
    from deid.detectors.workplace import WorkplaceDetector
    from deid.resources import Resources, resources_dir
    make = {"address": AddressDetector, "hospital": HospitalDetector, "name": NameDetector,
            "workplace": WorkplaceDetector, "contact": ContactDetector, "age": AgeDetector,
            "id_number": IdNumberDetector, "std": StdDetector, "pregnancy": PregnancyDetector,
            "identifiers": IdentifierDetector}[detector]
    before = make().version
    copy = tmp_path / "resources"
    shutil.copytree(resources_dir(), copy)
    with open(copy / lexicon, "a", encoding="utf-8") as f:
        f.write("\n# an edit\n")
    assert make(resources=Resources(copy)).version != before


def _with_lexicon_lines(folder, lexicon: str, lines: str):
    """A copy of the resources with lines added to one lexicon."""
    import shutil

    from deid.resources import Resources, resources_dir
    shutil.copytree(resources_dir(), folder)
    with open(folder / lexicon, "a", encoding="utf-8") as f:
        f.write(lines)
    return Resources(folder)


def test_a_word_added_to_a_lexicon_is_read_by_the_rules(tmp_path):
    """The detectors build their patterns from the files they are given: a new cue introduces a name, or an
    address."""
    from deid.detectors.address import AddressDetector
    from deid.detectors.base import Document
    from deid.detectors.name import NameDetector

    def found(detector, text):
        return [s.text for s in detector.detect(Document(text))]

    assert found(NameDetector(), "护工张建国在旁") == []
    assert found(AddressDetector(), "暂住甘家边东995号。") == []
    edited = _with_lexicon_lines(tmp_path / "a", "lexicons/person_context.tsv", "护工\tcue\n")
    assert found(NameDetector(resources=edited), "护工张建国在旁") == ["张建国"]
    edited = _with_lexicon_lines(tmp_path / "b", "lexicons/address_cues.txt", "暂住\n")
    assert found(AddressDetector(resources=edited), "暂住甘家边东995号。") == ["甘家边东995号"]


def test_alternation_puts_the_longest_word_first():
    import re

    from deid.resources import alternation
    assert re.match(alternation(["外孙", "外孙女", "a.b"]), "外孙女").group() == "外孙女"
    assert re.fullmatch(alternation(["a.b"]), "axb") is None   # words are literal


def test_cue_words_of_contacts_ages_and_std_mentions_are_read_from_their_lexicons(tmp_path):
    """A phone cue makes a local number a phone, an age cue makes a number an age, a genital site makes herpes an
    STD, once the files hold them."""
    from deid.detectors.base import Document
    from deid.detectors.contact import ContactDetector
    from deid.detectors.date import AgeDetector
    from deid.detectors.medical import StdDetector

    def found(detector, text):
        return [s.text for s in detector.detect(Document(text))]

    assert found(ContactDetector(), "宅电：8765 4321") == []
    edited = _with_lexicon_lines(tmp_path / "a", "lexicons/contact_cues.tsv", "宅电\tphone\n")
    assert found(ContactDetector(resources=edited), "宅电：8765 4321") == ["8765 4321"]
    assert found(AgeDetector(), "寿数：95") == []
    edited = _with_lexicon_lines(tmp_path / "b", "lexicons/age_cues.tsv", "寿数\tfield\n")
    assert found(AgeDetector(resources=edited), "寿数：95") == ["95"]
    assert found(StdDetector(), "腹股沟疱疹") == []
    edited = _with_lexicon_lines(tmp_path / "c", "lexicons/mention_words.tsv", "腹股沟\tgenital_site\n")
    assert found(StdDetector(resources=edited), "腹股沟疱疹") == ["腹股沟疱疹"]
    assert found(ContactDetector(), "0571-87654321内线8001") == ["0571-87654321"]
    edited = _with_lexicon_lines(tmp_path / "d", "lexicons/contact_cues.tsv", "内线\textension\n")
    assert found(ContactDetector(resources=edited), "0571-87654321内线8001") == ["0571-87654321内线8001"]


def test_a_negation_cue_added_to_its_lexicon_drops_the_tier(tmp_path):
    """The tier rule reads its cue words from the files it is given: a site's new denial word makes 梅毒 tier 3."""
    from deid.detectors.base import Document
    from deid.detectors.medical import StdDetector

    def tiers(detector):
        return [s.tier for s in detector.detect(Document("患者否定梅毒病史。"))]
    assert tiers(StdDetector()) == [1]
    assert tiers(StdDetector(resources=_with_lexicon_lines(tmp_path / "r", "lexicons/negation_cues.tsv",
                                                             "\n否定\tdenied_before\n"))) == [3]
