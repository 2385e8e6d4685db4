"""Sections -> overlapping chunks of about `size` words, each remembering its file and section for citations.

Words are runs of non-space characters; a Chinese, Japanese or Korean character counts as one word, since those
scripts put no spaces between words. Chunks never cross a section boundary: a hit then names one heading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelyard.errors import ConfigError
from modelyard.retrieval.readers import Section

CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
WORD = re.compile(rf"[{CJK}]|[^\s{CJK}]+")
# all-MiniLM-L6-v2 was trained on texts of up to 128 tokens; 100 English words are about 130 of them
DEFAULT_SIZE = 100
DEFAULT_OVERLAP = 20


@dataclass(frozen=True)
class Chunk:
    file: str  # relative to the documents folder, "/" separated
    section: str
    text: str


def check(size: int, overlap: int) -> None:
    if size < 1:
        raise ConfigError(f"--chunk-size {size}: a chunk needs at least one word")
    if not 0 <= overlap < size:
        raise ConfigError(f"--overlap {overlap}: must be at least 0 and less than the chunk size ({size})")


def split(text: str, size: int, overlap: int) -> list[str]:
    """Windows of `size` words, each starting `size - overlap` words after the previous; the text between a
    window's first and last word is kept verbatim (line breaks, punctuation)."""
    spans = [m.span() for m in WORD.finditer(text)]
    pieces = []
    for start in range(0, len(spans), size - overlap):
        window = spans[start : start + size]
        pieces.append(text[window[0][0] : window[-1][1]])
        if start + size >= len(spans):
            break
    return pieces


def chunk_sections(file: str, sections: list[Section], size: int, overlap: int) -> list[Chunk]:
    return [Chunk(file, s.heading, piece) for s in sections for piece in split(s.text, size, overlap)]
