import pytest

from deid.detectors.address import AddressDetector
from deid.detectors.base import Document

D = AddressDetector()


def found(text):
    return [(s.text, s.tier) for s in D.detect(Document(text))]


@pytest.mark.parametrize("text, expected", [
    ("住北京市海淀区中关村大街27号。", [("北京市海淀区中关村大街27号", 1)]),
    ("现住址：上海市浦东新区张江镇碧波路690号3号楼2单元501室，", [("上海市浦东新区张江镇碧波路690号3号楼2单元501室", 1)]),
    ("家住幸福小区5栋302，", [("幸福小区5栋302", 1)]),
    ("四川省成都市武侯区人民南路四段12号", [("四川省成都市武侯区人民南路四段12号", 1)]),
    ("北京市朝阳区和平里北街5号", [("北京市朝阳区和平里北街5号", 1)]),
    ("广东省深圳市南山区粤海街道科技园社区", [("广东省深圳市南山区粤海街道科技园社区", 1)]),
    ("籍贯：河北省石家庄市。", [("河北省石家庄市", 2)]),
    ("患者为湖南长沙人，", [("湖南长沙", 2)]),
    ("于2020年在湖北省武汉市江汉区行手术", [("湖北省武汉市江汉区", 2)]),
])
def test_addresses_and_granularity_tier(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize("text", [
    "长春西汀注射液", "予长春新碱化疗", "病房东区3床", "住院期间血压稳定", "左侧第5肋骨骨折", "门诊随访",
])
def test_hard_negatives(text):
    assert found(text) == []


def test_address_does_not_swallow_clinical_text():
    (text, _), = found("河北省石家庄市行腰椎后路减压术")
    assert text == "河北省石家庄市"


def test_admin_parts_record_division_levels():
    span, = D.detect(Document("住北京市海淀区中关村大街27号"))
    assert [lvl for _, lvl in span.attrs["admin_parts"]] == [1, 3]
