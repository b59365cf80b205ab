"""Retrieval over dictionary entries (hospitals with aliases, STD terms, pregnancy phrases) for the LLM prompt.

An Embedder turns text into unit vectors; a FAISS inner-product index over the entries finds the nearest
ones. Two embedders behind one interface: character n-gram hashing (no weights to download: the offline
default) and sentence-transformers (BAAI/bge-large-zh-v1.5 by config, for production). The index and its
entries serialize to bytes, which the Spark driver broadcasts once and each Python worker loads once.
"""
from __future__ import annotations

import io
import json
import zlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from deid.detectors.hospital import ALIAS_KINDS, hospital_forms
from deid.resources import Resources


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


# Characters every hospital name shares: they say little about which hospital it is.
GENERIC_CHARS = frozenset("医院大学附属第一二三四五六七八九人民中心省市县区科学部中国")


class HashingEmbedder:
    """Character unigrams (weight 2) and bigrams (weight 1) hashed into `dim` buckets with crc32, n-grams made
    only of generic characters down-weighted, L2-normalized. Unigram-heavy because abbreviations (北医三院)
    share single characters with the full name, rarely longer runs. Deterministic across processes and
    machines, which a broadcast index needs. Held-out alias -> hospital top-1: see alias_accuracy()."""

    def __init__(self, dim: int = 2048, weights: dict[int, float] | None = None, generic_weight: float = 0.3):
        self.dim, self.weights, self.generic_weight = dim, weights or {1: 2.0, 2: 1.0}, generic_weight
        self.name = f"hashing-{dim}"

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            t = text.lower()
            for n, weight in self.weights.items():
                for i in range(len(t) - n + 1):
                    gram = t[i:i + n]
                    w = weight * (self.generic_weight if all(c in GENERIC_CHARS for c in gram) else 1.0)
                    out[row, zlib.crc32(gram.encode("utf-8", "surrogatepass")) % self.dim] += w
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


class SentenceTransformerEmbedder:
    """Production embedder (e.g. BAAI/bge-large-zh-v1.5); needs the model's weights where it runs."""

    def __init__(self, model: str = "BAAI/bge-large-zh-v1.5"):
        from sentence_transformers import SentenceTransformer  # lazy: not installed by default
        self._model = SentenceTransformer(model)
        self.name, self.dim = model, self._model.get_sentence_embedding_dimension()

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.encode(texts, normalize_embeddings=True), dtype=np.float32)


def make_embedder(spec: str) -> Embedder:
    if spec.startswith("hashing"):
        return HashingEmbedder()
    return SentenceTransformerEmbedder(spec)


@dataclass(frozen=True)
class Entry:
    kind: str          # hospital | std | pregnancy
    canonical: str
    text: str          # what is embedded and shown in the prompt
    tier: int | None = None

    def prompt_line(self) -> str:
        tier = f"，等级{self.tier}" if self.tier else ""
        label = {"hospital": "医院名称", "std": "性传播疾病", "pregnancy": "妊娠相关"}[self.kind]
        same = f"，即{self.canonical}" if self.kind == "hospital" and self.canonical != self.text else ""
        return f"{self.text}（{label}{same}{tier}）"


def dictionary_entries(resources: Resources, include_aliases: bool = True) -> list[Entry]:
    entries = []
    for row in resources.load("dictionaries/hospitals.tsv").rows():
        forms = hospital_forms(row)
        texts = [f for f, kind in forms if kind not in ALIAS_KINDS]
        if include_aliases:
            texts += [f for f, kind in forms if kind in ALIAS_KINDS]
        entries += [Entry("hospital", row["name"], f) for f in texts]
    for kind, name in (("std", "std_terms.tsv"), ("pregnancy", "pregnancy_terms.tsv")):
        for row in resources.load(f"dictionaries/{name}").rows():
            entries.append(Entry(kind, row.get("canonical") or row["term"], row["term"], int(row["tier"])))
    return entries


class EntryIndex:
    def __init__(self, embedder: Embedder, entries: list[Entry], index=None):
        import faiss
        self.embedder, self.entries = embedder, entries
        if index is None:
            index = faiss.IndexFlatIP(embedder.dim)
            index.add(embedder.embed([e.text for e in entries]))
        self.index = index

    def search(self, queries: list[str], k: int = 5) -> list[list[tuple[float, Entry]]]:
        scores, ids = self.index.search(self.embedder.embed(queries), k)
        return [[(float(s), self.entries[i]) for s, i in zip(srow, irow, strict=True) if i >= 0]
                for srow, irow in zip(scores, ids, strict=True)]

    def for_text(self, text: str, k: int = 8, window: int = 12) -> list[Entry]:
        """Top-k entries for a chunk: windows of the text are queried and the best distinct entries kept."""
        spans = [text[i:i + window] for i in range(0, max(1, len(text) - window // 2), window // 2)] or [text]
        best: dict[str, tuple[float, Entry]] = {}
        for hits in self.search(spans, k=3):
            for score, entry in hits:
                if entry.text not in best or best[entry.text][0] < score:
                    best[entry.text] = (score, entry)
        return [e for _, e in sorted(best.values(), key=lambda x: -x[0])[:k]]

    # -- bytes: what the driver broadcasts ---------------------------------------------------------------
    def to_bytes(self) -> bytes:
        import faiss
        meta = json.dumps({"embedder": self.embedder.name, "entries": [e.__dict__ for e in self.entries]},
                          ensure_ascii=False).encode()
        buf = io.BytesIO()
        np.save(buf, faiss.serialize_index(self.index))
        return len(meta).to_bytes(8, "big") + meta + buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, embedder: Embedder | None = None) -> EntryIndex:
        import faiss
        n = int.from_bytes(data[:8], "big")
        meta = json.loads(data[8:8 + n])
        index = faiss.deserialize_index(np.load(io.BytesIO(data[8 + n:])))
        embedder = embedder or make_embedder(meta["embedder"])
        return cls(embedder, [Entry(**e) for e in meta["entries"]], index)


def build_index(embedder: Embedder | None = None, include_aliases: bool = True,
                resources: Resources | None = None) -> EntryIndex:
    """The index of the dictionaries of `resources`, the package's when None."""
    return EntryIndex(embedder or HashingEmbedder(), dictionary_entries(resources or Resources.packaged(),
                                                                        include_aliases))


def alias_accuracy(embedder: Embedder | None = None, resources: Resources | None = None) -> tuple[float, int]:
    """Top-1 accuracy of alias -> canonical hospital, with aliases kept out of the index build."""
    resources = resources or Resources.packaged()
    index = build_index(embedder, include_aliases=False, resources=resources)
    pairs = [(form, row["name"]) for row in resources.load("dictionaries/hospitals.tsv").rows()
             for form, kind in hospital_forms(row) if kind in ALIAS_KINDS]
    hits = index.search([a for a, _ in pairs], k=1)
    right = sum(1 for (_, canon), h in zip(pairs, hits, strict=True) if h and h[0][1].canonical == canon)
    return right / len(pairs), len(pairs)
