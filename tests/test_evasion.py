"""Values written to get past a de-identifier: every probe must come out masked at level 3.

Each probe is a note and the fragments of its PHI that must not be readable in the masked text. The masked text
is compared as a reader would read it: format characters, spaces and separators dropped, Chinese digits read as
digits, case ignored; so a fragment left beside a tag (〔姓名〕 San, 〔联系方式〕.6666) is a leak too.
"""
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deid.detectors.id_number import check_char
from deid.text import CHINESE_DIGITS, ReaderView


def valid_id(first17: str) -> str:
    return first17 + check_char(first17)


ID = valid_id("11010519491231002")     # a made-up number with a valid check character
ID_ZH = ID.translate(str.maketrans("0123456789", "〇一二三四五六七八九"))


def readable(text: str) -> str:
    """What a reader takes from the text: no invisible characters or separators, ASCII digits, lower case."""
    text = ReaderView.of(text).text.translate(str.maketrans(CHINESE_DIGITS))
    return re.sub(r"[\s.\-_()（）\[\]【】·]", "", text).lower()


PROBES = [
    # e-mail glued to Chinese text, or with its @ and dots spelt out
    ("患者邮箱zhangsan@example.com，", ["zhangsan", "example"]),
    ("报告请发至li.si@hospital-mail.cn。", ["lisi", "hospitalmail"]),
    ("联系zhangsan（at）example.com", ["zhangsan"]),
    ("联系zhangsan[at]example.com", ["zhangsan"]),
    ("邮件 zhangsan at example dot com", ["zhangsan"]),
    ("邮箱ｚｈａｎｇｓａｎ＠ｅｘａｍｐｌｅ．ｃｏｍ", ["zhangsan"]),
    ("邮箱zhang\u200bsan@example.com", ["zhangsan"]),
    # phones in Chinese digits, spelled one digit at a time, dotted, regrouped, with invisible characters
    ("电话一三八一二三四五六七八", ["13812345678", "5678"]),
    ("电话138一二三四5678", ["1234", "5678"]),
    ("电话幺三八幺二三四五六七八", ["5678"]),
    ("电话 一三八 一二三四 五六七八", ["5678"]),
    ("电话1 3 8 1 2 3 4 5 6 7 8", ["5678"]),
    ("电话1-3-8-1-2-3-4-5-6-7-8", ["5678"]),
    ("电话010.8888.6666", ["8888", "6666"]),
    ("手机：13 812 345 678", ["812345678"]),
    ("电话：１３８－１２３４－５６７８", ["5678"]),
    ("电话+86 138 1234 5678", ["5678"]),
    *[(f"电话138{c}1234{c}5678", ["1234", "5678"]) for c in "\u200b\u200c\u200d\u200e\u200f\u00ad\ufeff\u2060"],
    ("QQ：1 2 3 4 5 6 7 8 9", ["123456789"]),
    # ID numbers
    (f"身份证{ID[:6]}\u200b{ID[6:14]}\u200b{ID[14:]}", [ID[6:14], ID[14:]]),
    (f"身份证号{ID_ZH}", [ID[6:14]]),
    ("身份证号" + " ".join(ID), [ID[6:14]]),
    # names split by a space, an invisible character, or written in pinyin
    ("姓名：张 三，性别：男", ["张三"]),
    ("姓名：欧阳 娜娜", ["欧阳娜娜"]),
    ("家属李 秀 英陪同", ["李秀英"]),
    ("患者张\u200b三丰，男", ["张三丰"]),
    ("患者张\u00ad建国因胸痛入院", ["张建国"]),
    ("患者张\ufe0f建国因胸痛入院", ["张建国"]),
    ("患者Zhang San，男，45岁。", ["zhang", "san"]),
    ("Zhang San来院复诊。", ["zhang", "san"]),
    ("患者ZHANG Sanfeng来诊", ["zhang", "sanfeng"]),
    ("姓名：zhang san", ["zhang", "san"]),
    ("医师签名：Li Ming", ["liming"]),
    ("Wang Xiaoming医生查房", ["wang", "xiaoming"]),
    ("患者ZhangSan今日出院", ["zhangsan"]),
]


@pytest.mark.parametrize("text, fragments", PROBES, ids=[f"probe{i}" for i in range(len(PROBES))])
def test_evasion_probe_is_masked_at_level_3(pipeline, text, fragments):
    masked = readable(pipeline.process(text).masked[3])
    assert [f for f in fragments if f in masked] == []


# Values in the places notes put them; inserting invisible characters anywhere inside one must not unmask it.
VALUES = [
    ("患者", "张建国", "，男，52岁。"),
    ("联系电话：", "13812345678", "。"),
    ("座机", "010-88886666", "。"),
    ("身份证号：", ID, "。"),
    ("邮箱", "zhangsan@example.com", "，"),
    ("既往于", "北京协和医院", "就诊。"),
    ("现住", "浙江省杭州市西湖区文三路90号", "。"),
]
INVISIBLE = st.one_of(st.characters(categories=["Cf"]), st.sampled_from("\ufe00\ufe0f\u034f\u3164"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(VALUES), data=st.data())
def test_invisible_characters_inside_a_value_never_unmask_it(pipeline, case, data):
    before, value, after = case
    chars = list(value)
    for _ in range(data.draw(st.integers(1, 4))):
        chars.insert(data.draw(st.integers(1, len(chars) - 1)), data.draw(INVISIBLE))
    written = "".join(chars)
    result = pipeline.process(before + written + after)
    clean = pipeline.process(before + value + after)
    assert readable(value) not in readable(result.masked[3])
    # found as it is found without them, and the span covers them all
    assert [(s.entity_type, s.start) for s in result.spans] == [(s.entity_type, s.start) for s in clean.spans]
    assert any(s.start <= len(before) and len(before) + len(written) <= s.end for s in result.spans)
