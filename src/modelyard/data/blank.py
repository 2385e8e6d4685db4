"""What counts as no text at all: one place, so training's cleaning, `predict --input`, `explain` and the server
agree on which texts have nothing to read."""

from __future__ import annotations

# Format characters that show as nothing and are not whitespace to str.strip: zero-width space, non-joiner and
# joiner, word joiner, and a byte-order mark left inside a text (zero-width no-break space).
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
_DROP_INVISIBLE = str.maketrans("", "", INVISIBLE)


def is_blank(text: str) -> bool:
    """Whether `text` holds nothing but whitespace (U+3000 included) and invisible format characters."""
    return not text.translate(_DROP_INVISIBLE).strip()
