import pytest

from deid.detectors.base import Document
from deid.detectors.contact import ContactDetector

D = ContactDetector()


def found(text):
    return [s.text for s in D.detect(Document(text))]


@pytest.mark.parametrize("text, expected", [
    ("手机13812345678", "13812345678"),
    ("手机 166 1234 5678。", "166 1234 5678"),
    ("电话：177-1234-5678", "177-1234-5678"),
    ("199.1234.5678", "199.1234.5678"),
    ("+86 138 1234 5678", "+86 138 1234 5678"),
    ("0086-13912345678", "0086-13912345678"),
    ("１３９１２３４５６７８", "１３９１２３４５６７８"),
    ("电话：010-12345678", "010-12345678"),
    ("(0571)87061501", "(0571)87061501"),
    ("（021）6543 2109", "（021）6543 2109"),
    ("0755 8888 1234", "0755 8888 1234"),
    ("0755—88881234转123", "0755—88881234转123"),
    ("010-62345678-123", "010-62345678-123"),
    ("（0731）5401 871", "（0731）5401 871"),
    ("+86-10-12345678", "+86-10-12345678"),
    ("热线400-810-8888", "400-810-8888"),
    ("800 820 1234", "800 820 1234"),
    ("邮箱 zhang.san@163.com", "zhang.san@163.com"),
    ("QQ：12345678", "12345678"),
    ("qq号 987654321", "987654321"),
    ("微信号：wx_zhang88", "wx_zhang88"),
    ("联系电话：87654321", "87654321"),
])
def test_positive_forms(text, expected):
    assert found(text) == [expected]


@pytest.mark.parametrize("text", [
    "血压120/80mmHg，心率88次/分",
    "2023-05-12 08:30 复查",
    "2023.05.12",
    "住院号：13812345678",
    "病案号 15912345678",
    "12床，门诊号2023051234",
    "WBC 10.23×10^9/L，PLT 123×10^9/L",
    "血糖 13812345678mg",
    "标本号：0571870615",
    "qq 12",          # too short for a QQ id
    "微信支付",         # no id
    "CT值约45HU，第3腰椎",
])
def test_hard_negatives(text):
    assert found(text) == []


@pytest.mark.parametrize("text, expected", [
    ("mobile13812345678", ["13812345678"]),
    ("Tel13812345678abc", ["13812345678"]),
    ("联系方式：1381234567813912345678", ["13812345678", "13912345678"]),
    ("电话13812345678/13912345678", ["13812345678", "13912345678"]),
    ("电话021-61234567/0571-87654321", ["021-61234567", "0571-87654321"]),
])
def test_numbers_touching_letters_or_each_other(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize("text", ["尿量12345678/L", "检验号20230101123456789012"])
def test_units_and_long_identifiers_are_not_split_into_phones(text):
    assert found(text) == []
