"""Documents in, titled sections out: Markdown (markdown-it), plain text, HTML (Beautiful Soup) and PDF (pypdf).

Each section keeps the headings above it ("Install > From source"; "page 3" in a PDF), so a search hit can be
cited as "file § section".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from modelyard.errors import DataError

SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".html": "html", ".htm": "html", ".pdf": "pdf"}
HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
SKIPPED_HTML = ("script", "style", "noscript", "template", "head")
SPACES = re.compile(r"[ \t\r\f\v]+")


@dataclass(frozen=True)
class Section:
    heading: str  # the heading trail, "" before a document's first heading
    text: str


def list_documents(folder: Path) -> list[Path]:
    """Readable documents under `folder`, recursively, in a stable order; hidden files and folders are skipped."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder", "give the folder that holds your documents")
    found = []
    for path in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        if not hidden and path.is_file() and path.suffix.lower() in SUFFIXES:
            found.append(path)
    return found


def read_document(path: Path) -> list[Section]:
    """The sections of one document with text in them; a clear DataError naming the file when it cannot be read."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type", f"use one of {', '.join(sorted(SUFFIXES))}")
    if kind == "pdf":
        sections = _pdf(path)
    else:
        text = _text_of(path)
        sections = {"markdown": _markdown, "text": _plain, "html": _html}[kind](text)
    return [s for s in sections if s.text.strip()]


def _text_of(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not UTF-8 text (byte {err.start})", "convert it to UTF-8, e.g. iconv -t UTF-8"
        ) from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror})") from None


def _plain(text: str) -> list[Section]:
    return [Section("", text.strip())]


def _markdown(text: str) -> list[Section]:
    """Split at the headings markdown-it finds (so a `#` inside a code block is not one); bodies stay verbatim."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    lines = text.splitlines()
    marks = []  # (first line, last line + 1, level, title) of each heading
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.map:
            marks.append((token.map[0], token.map[1], int(token.tag[1]), tokens[i + 1].content.strip()))
    sections, trail = [], []
    body_start = 0
    for start, end, level, title in marks:
        sections.append(Section(" > ".join(t for _, t in trail), "\n".join(lines[body_start:start]).strip()))
        trail = [(lvl, t) for lvl, t in trail if lvl < level] + [(level, title)]
        body_start = end
    sections.append(Section(" > ".join(t for _, t in trail), "\n".join(lines[body_start:]).strip()))
    return sections


def _html(text: str) -> list[Section]:
    """Visible text in document order, cut at h1-h6; scripts, styles, the head and markup that is not text
    (comments, the doctype) are left out."""
    from bs4 import BeautifulSoup, Tag

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup.find_all(SKIPPED_HTML):
        tag.decompose()
    sections, trail, parts = [], [], []

    def close() -> None:
        body = "\n".join(line for line in (SPACES.sub(" ", p).strip() for p in parts) if line)
        sections.append(Section(" > ".join(t for _, t in trail), body))
        parts.clear()

    for node in soup.descendants:
        if isinstance(node, Tag) and node.name in HEADINGS:
            close()
            level = int(node.name[1])
            trail[:] = [(lvl, t) for lvl, t in trail if lvl < level] + [(level, node.get_text(" ", strip=True))]
        elif _is_text(node) and not node.find_parent(HEADINGS):
            parts.append(str(node))
    close()
    return sections


def _is_text(node: object) -> bool:
    """A text node, not a comment, doctype, declaration, CDATA or processing instruction (all PreformattedString)."""
    from bs4.element import NavigableString, PreformattedString

    return isinstance(node, NavigableString) and not isinstance(node, PreformattedString)


def _pdf(path: Path) -> list[Section]:
    """One section per page ("page 3"); an encrypted or broken PDF is refused with its name."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DataError(f"{path}: the PDF is encrypted", "save an unencrypted copy, or leave it out of the folder")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DataError:
        raise
    except (PdfReadError, ValueError, KeyError, OSError) as err:
        raise DataError(f"{path}: not a readable PDF ({err})", "re-export it, or leave it out of the folder") from None
    except Exception as err:  # pypdf raises assorted errors on damaged files; decryption needs a password
        if "decrypt" in str(err).lower() or "password" in str(err).lower():
            raise DataError(f"{path}: the PDF is encrypted", "save an unencrypted copy") from None
        raise DataError(f"{path}: not a readable PDF ({type(err).__name__}: {err})") from None
    return [Section(f"page {i}", text.strip()) for i, text in enumerate(pages, start=1)]
