import pytest

from deid.detectors.base import Document
from deid.detectors.id_number import IdNumberDetector, check_char, division_codes

D = IdNumberDetector()


def make(body17):
    return body17 + check_char(body17)


def found(text):
    return [(s.text, s.score) for s in D.detect(Document(text))]


VALID = make("11010519491231002")        # check character X
HISTORICAL = make("11010219800101123")   # 110102 西城区 ... and an abolished code below
ABOLISHED = "110103"                     # 崇文区, merged into 东城区 in 2010


def test_check_digit_iso7064():
    assert VALID.endswith("X")
    assert make("44052418800101001").endswith("4")


def test_historical_division_codes_are_known():
    assert ABOLISHED in division_codes()
    assert len(division_codes()) > 6000
    idn = make(ABOLISHED + "19750615321")
    assert found(f"证件号{idn}")[0][0] == idn


@pytest.mark.parametrize("text, expected", [
    (f"身份证号：{VALID}。", VALID),
    (f"身份证 {VALID[:6]} {VALID[6:14]} {VALID[14:]}", f"{VALID[:6]} {VALID[6:14]} {VALID[14:]}"),
    (f"ID:{VALID[:6]}-{VALID[6:14]}-{VALID[14:]}", f"{VALID[:6]}-{VALID[6:14]}-{VALID[14:]}"),
    ("身份证" + VALID[:17].translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"}) + "X",
     VALID[:17].translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"}) + "X"),
    (f"身份证{VALID[:-1]}x号", VALID[:-1] + "x"),
    ("老身份证110105491231002", "110105491231002"),
])
def test_positive_forms(text, expected):
    assert [t for t, _ in found(text)] == [expected]


def test_bad_check_digit_needs_an_id_cue():
    bad = VALID[:-1] + "1"
    assert found(f"编号{bad}") == []
    (text, score), = found(f"身份证号码：{bad}")
    assert text == bad and score < 0.9


@pytest.mark.parametrize("text", [
    "住院号：123456789012345678",            # no valid date/division
    "110105" + "19491331" + "0021",          # month 13
    "990105" + "19491231" + "002X",          # no such province
    VALID + "1",                             # 19 digits: not an ID
    "条码" + "6" + VALID,                     # glued to another digit
    "订单号 20230512123456789",
])
def test_hard_negatives(text):
    assert found(text) == []
