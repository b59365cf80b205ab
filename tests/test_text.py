import itertools

from deid.text import normalize, sentences


def test_normalize_keeps_length_and_maps_fullwidth():
    src = "电话：１３８（０１０）—ＡＢ　x"
    out = normalize(src)
    assert len(out) == len(src)
    assert out == "电话:138(010)-AB x"


def test_lone_surrogates_and_controls_survive():
    src = "患者\ud800张三\x00\x1b"
    assert normalize(src) == "患者 张三  "


def test_sentences_cover_text_and_respect_max_len():
    text = "第一句。第二句很长" + "，长" * 100 + "。尾"
    pieces = sentences(text, max_len=50)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(text)
    assert all(b[0] == a[1] for a, b in itertools.pairwise(pieces))
    assert all(e - s <= 50 for s, e in pieces)
