"""Dictionaries and policies are data: loaded from resources/, each versioned by a digest of its content."""
from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources as importlib_resources
from pathlib import Path

RESOURCES_ENV = "DEID_RESOURCES"


def data_dir(name: str) -> Path:
    """conf/ or resources/: package data of an installed wheel (deid/data/NAME, see setup.py), else the folder
    beside the package in a source checkout."""
    packaged = Path(str(importlib_resources.files("deid"))) / "data" / name
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / name


def resources_dir() -> Path:
    """The dictionaries, lexicons and prompts: the folder named by $DEID_RESOURCES, else the package's."""
    override = os.environ.get(RESOURCES_ENV)
    return Path(override) if override else data_dir("resources")


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def combine_digests(parts: dict[str, str]) -> str:
    """One digest over named digests, independent of dict order."""
    joined = "\n".join(f"{k}={parts[k]}" for k in sorted(parts))
    return digest_bytes(joined.encode())


@dataclass(frozen=True)
class TextResource:
    name: str        # path relative to resources/, e.g. dictionaries/hospitals.tsv
    content: str
    digest: str

    def lines(self) -> list[str]:
        """Non-empty lines, '#' comments dropped."""
        out = []
        for line in self.content.splitlines():
            line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            if line:
                out.append(line)
        return out

    def rows(self) -> list[dict[str, str]]:
        """TSV rows keyed by the header line; '#' lines are comments."""
        body = "\n".join(line for line in self.content.splitlines() if line.strip() and not line.startswith("#"))
        return [{k: (v or "").strip() for k, v in row.items()}
                for row in csv.DictReader(io.StringIO(body), delimiter="\t")]

    def words(self, use: str | None = None) -> list[str]:
        """A word list's words: the lines of a .txt file; of a .tsv file (columns word, uses) the words whose
        comma-separated `uses` name `use`."""
        if use is None:
            return self.lines()
        return [r["word"] for r in self.rows() if use in r["uses"].split(",")]


def alternation(words) -> str:
    """A regular-expression alternation of literal words, the longest first: a word never hides a longer one it
    begins (外孙 before 外孙女), and the order of a file's lines does not matter."""
    return "|".join(map(re.escape, sorted(set(words), key=lambda w: (-len(w), w))))


@dataclass(frozen=True)
class Resources:
    """One folder of dictionaries, lexicons and prompts. The pipeline opens one where it is built (reading
    $DEID_RESOURCES there, once) and hands it to every component; a component built alone reads the package's."""
    root: Path

    @classmethod
    def packaged(cls) -> Resources:
        return cls(data_dir("resources"))

    @classmethod
    def from_environment(cls) -> Resources:
        return cls(resources_dir())

    def load(self, name: str) -> TextResource:
        """A resource by its path under the folder; read again only when the file changes."""
        path = self.root / name
        st = path.stat()
        return _load(str(path), st.st_mtime_ns, st.st_size, name)


def load(name: str) -> TextResource:
    """A resource by its path under resources/ (or $DEID_RESOURCES), for code outside the pipeline's components."""
    return Resources.from_environment().load(name)


@lru_cache(maxsize=256)
def _load(path: str, _mtime_ns: int, _size: int, name: str) -> TextResource:
    data = Path(path).read_bytes()
    return TextResource(name, data.decode("utf-8"), digest_bytes(data))


def bundle(root: Path | None = None) -> dict[str, bytes]:
    """Every resource file as {relative path: bytes}: what the Spark driver broadcasts to workers."""
    root = Path(root or resources_dir())
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def materialize(files: dict[str, bytes], target: Path) -> Path:
    """Write a bundle to a folder (once per worker process) and return it."""
    for rel, data in files.items():
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    return target


def dictionary_terms(files: dict[str, bytes]) -> set[str]:
    """Every term a dictionary file contributes (names, aliases, English names, terms, list entries).
    Two bundles' symmetric difference is what a dictionary edit added or removed."""
    terms: set[str] = set()
    for rel, data in files.items():
        if not rel.startswith("dictionaries/"):
            continue
        res = TextResource(rel, data.decode("utf-8"), digest_bytes(data))
        if rel.endswith(".tsv"):
            for row in res.rows():
                for col in ("term", "name", "aliases", "english"):
                    terms.update(v.strip().lstrip("~") for v in row.get(col, "").split(";") if v.strip())
        else:
            terms.update(res.lines())
    return terms
