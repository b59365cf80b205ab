"""Long notes are cut on sentence boundaries into chunks that fit the model's context, with overlap; spans
found in a chunk are mapped back to note offsets and duplicates from the overlaps merged."""
from __future__ import annotations

from dataclasses import dataclass

from deid.text import sentences


@dataclass(frozen=True)
class Chunk:
    start: int
    end: int
    text: str


def chunk(text: str, max_chars: int = 1500, overlap: int = 200) -> list[Chunk]:
    """Chunks of at most max_chars, each starting on a sentence boundary and repeating the last sentences
    of the previous chunk up to `overlap` characters, so an entity cut at a border is whole in one chunk."""
    if len(text) <= max_chars:
        return [Chunk(0, len(text), text)]
    pieces = sentences(text, max_len=max(1, max_chars - overlap))
    chunks, i = [], 0
    while i < len(pieces):
        start, end, j = pieces[i][0], pieces[i][1], i + 1
        while j < len(pieces) and pieces[j][1] - start <= max_chars:
            end, j = pieces[j][1], j + 1
        chunks.append(Chunk(start, end, text[start:end]))
        if j >= len(pieces):
            break
        # Step back over trailing sentences while they fit in the overlap.
        k = j
        while k - 1 > i and end - pieces[k - 1][0] <= overlap:
            k -= 1
        i = k
    return chunks


def merge_found(per_chunk: list[tuple[Chunk, list]]) -> list:
    """Spans from all chunks in note offsets; the same (start, end, type) seen in two chunks is kept once."""
    seen, out = set(), []
    for c, found in per_chunk:
        for f in found:
            key = (f.start + c.start, f.end + c.start, f.entity_type)
            if key not in seen:
                seen.add(key)
                out.append(type(f)(key[0], key[1], f.entity_type, f.tier, f.text))
    return sorted(out, key=lambda f: (f.start, f.end))
