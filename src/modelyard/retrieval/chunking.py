"""Sections -> overlapping chunks of about `size` words, each remembering its file and section for citations.

Words are runs of non-space characters, cut every MAX_WORD characters (a base64 blob or a minified line is no
one-chunk-of-any-size word); a Chinese, Japanese or Korean character counts as one word, since those scripts put no
spaces between words. Chunks never cross a section boundary: a hit then names one heading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelyard.errors import ConfigError
from modelyard.retrieval.readers import Section

CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
MAX_WORD = 40  # characters: longer runs (URLs, hashes, encoded data) count as several words
WORD = re.compile(rf"[{CJK}]|[^\s{CJK}]{{1,{MAX_WORD}}}")
SPACE_RUN = re.compile(r"\s+")
# all-MiniLM-L6-v2 was trained on texts of up to 128 tokens; 100 English words are about 130 of them
DEFAULT_SIZE = 100
DEFAULT_OVERLAP = 20
FLAGS = ("--chunk-size", "--overlap")


@dataclass(frozen=True)
class Chunk:
    file: str  # relative to the documents folder, "/" separated
    section: str
    text: str


def check(size: int, overlap: int, keys: tuple[str, str] = FLAGS, overlap_from: str = "") -> None:
    """Chunking settings a split can use; `keys` name them as the user set them (CLI flags or config keys) and
    `overlap_from` says where an overlap the user did not give came from ("the default")."""
    size_key, overlap_key = keys
    if size < 1:
        raise ConfigError(f"{size_key} {size}: a chunk needs at least one word")
    if not 0 <= overlap < size:
        given = f"{overlap_key} {overlap}" + (f" ({overlap_from})" if overlap_from else "")
        raise ConfigError(
            f"{given}: must be at least 0 and less than the chunk size ({size_key} {size})",
            f"set {overlap_key} to a number of words below {size}",
        )


def split(text: str, size: int, overlap: int) -> list[str]:
    """Windows of `size` words, each starting `size - overlap` words after the previous; the text between a
    window's first and last word is kept verbatim (line breaks, punctuation), unless its spacing would take it past
    `size` x (MAX_WORD + 1) characters: then each run of spaces becomes one, so no chunk is larger."""
    spans = [m.span() for m in WORD.finditer(text)]
    pieces = []
    for start in range(0, len(spans), size - overlap):
        window = spans[start : start + size]
        piece = text[window[0][0] : window[-1][1]]
        if len(piece) > size * (MAX_WORD + 1):
            piece = SPACE_RUN.sub(lambda run: "\n" if "\n" in run.group() else " ", piece)
        pieces.append(piece)
        if start + size >= len(spans):
            break
    return pieces


def chunk_sections(file: str, sections: list[Section], size: int, overlap: int) -> list[Chunk]:
    return [Chunk(file, s.heading, piece) for s in sections for piece in split(s.text, size, overlap)]
