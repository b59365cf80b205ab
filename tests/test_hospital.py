import pytest

from deid import resources
from deid.detectors.base import Document
from deid.detectors.hospital import HospitalDetector
from deid.merge import merge

D = HospitalDetector()


def found(text):
    return [s.text for s in merge(D.detect(Document(text)))]


def test_dictionary_size_and_coverage():
    rows = resources.load("dictionaries/hospitals.tsv").rows()
    assert len(rows) >= 500
    provinces = {r["province"] for r in rows}
    assert len(provinces) >= 31
    with_alias = [r for r in rows if r["aliases"]]
    assert len(with_alias) >= 130
    assert sum(1 for r in rows if r["english"]) >= 150


@pytest.mark.parametrize("text, expected", [
    ("于北京协和医院就诊", ["北京协和医院"]),
    ("曾在协和就诊", ["协和"]),
    ("转诊至PUMCH复查", ["PUMCH"]),
    ("Peking Union Medical College Hospital", ["Peking Union Medical College Hospital"]),
    ("去湘雅看病", ["湘雅"]),
    ("北医三院骨科", ["北医三院"]),
    ("中山一院", ["中山一院"]),
    ("华西医院", ["华西医院"]),
    ("于中山大学附属第一医院行手术", ["中山大学附属第一医院"]),
    ("于长沙市雨花区东塘社区卫生服务中心随访", ["长沙市雨花区东塘社区卫生服务中心"]),
    ("在张家口市宣化区人民医院住院", ["张家口市宣化区人民医院"]),
    ("于沈阳市于洪区新风路社区卫生服务中心随访", ["沈阳市于洪区新风路社区卫生服务中心"]),
    ("在仁爱医院就诊", ["仁爱医院"]),
    ("在李氏诊所就诊", ["李氏诊所"]),
    ("就诊于新新镇卫生院", ["新新镇卫生院"]),
    ("曾于赣州市一院住院", ["赣州市一院"]),
    ("后转至徐州妇保院", ["徐州妇保院"]),
])
def test_hospitals(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize("text", [
    "我院心内科", "在外院行手术", "患者3年前于当地县人民医院就诊", "县医院", "北京协和医学院毕业", "心内科会诊",
    "上级医院", "社区医院随访", "华山论剑", "同济大学", "统一院内流程",
])
def test_hard_negatives(text):
    assert found(text) == []


@pytest.mark.parametrize("text, expected", [
    ("胸部正位片（承德市中心医院）示", ["承德市中心医院"]),
    ("2016-10-14承德市市中心医院复查", ["承德市市中心医院"]),
    ("来承德市医院就诊", ["承德市医院"]),
])
def test_hospital_starts_at_the_name(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize("text", [
    "转至上级医院治疗", "建议转上一级医院", "下级医院转入", "曾在个体诊所输液", "于山东省某医院就诊", "于当地医院就诊",
    "上海看性病的医院哪家好", "上海胃癌医院", "上海银屑病医院", "看男科医院好不好", "有精神病医院吗", "胃痛医院",
])
def test_referrals_and_descriptions_are_not_hospitals(text):
    assert found(text) == []


def test_clan_clinics_keep_their_surname():
    assert found("后转诊至于氏诊所") == ["于氏诊所"]
    assert found("曾在曾氏诊所输液") == ["曾氏诊所"]


def test_specialist_hospitals_keep_their_name():
    assert found("于北京肿瘤医院化疗") == ["北京肿瘤医院"]
    assert found("转至葫芦岛市肿瘤医院") == ["葫芦岛市肿瘤医院"]


@pytest.mark.parametrize("text, expected", [
    # a campus, a branch, a bracketed former name or place is the hospital's
    ("于复旦大学附属中山医院（青浦分院）复查", ["复旦大学附属中山医院（青浦分院）"]),
    ("在浙江大学医学院附属第一医院（之江院区）住院", ["浙江大学医学院附属第一医院（之江院区）"]),
    ("于南安市官桥镇卫生院内厝分院就诊", ["南安市官桥镇卫生院内厝分院"]),
    ("转入苏州市立医院北院，", ["苏州市立医院北院"]),
    ("于海口市第三人民医院(原琼山市人民医院)手术", ["海口市第三人民医院(原琼山市人民医院)"]),
    ("于北京大学第一医院（太原）就诊", ["北京大学第一医院（太原）"]),
    # a stop character inside a zone's or a department's name, a referral verb, a duration before the name
    ("在桐乡经济开发区医院就诊", ["桐乡经济开发区医院"]),
    ("于上海交通大学医学院附属第九人民医院整形外科医院就诊", ["上海交通大学医学院附属第九人民医院整形外科医院"]),
    ("转诊自丽水市第二人民医院。", ["丽水市第二人民医院"]),
    ("腹痛加重3天衢州学院附属医院查腹部CT", ["衢州学院附属医院"]),
    # specialist hospitals of a kind the endings do not hold (防治医院, 老年病医院), with a school's name
    ("曾于温州市结核病防治医院就诊", ["温州市结核病防治医院"]),
    ("于泉州康乐老年病医院住院", ["泉州康乐老年病医院"]),
    ("于遵义职业技术学院附属医院治疗", ["遵义职业技术学院附属医院"]),
])
def test_names_run_to_their_campus_and_past_words_that_usually_stop_them(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize("text", ["术后2月余于外院复查", "去老年病医院看看", "建议至外科医院就诊", "于医院北院区",
                                  "带孩子去医院"])
def test_kinds_and_referrals_stay_no_hospital(text):
    assert found(text) == []
