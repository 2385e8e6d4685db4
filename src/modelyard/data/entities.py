"""Entity data: CoNLL/BIO files and JSONL character spans read into one form, `{"text", "entities"}` with
character offsets, plus the word split and BIO conversions the token classifier and its metrics share.

Every example is kept as text + character spans, whatever the file format: the model labels words found in
the text (`split_words`: each CJK character is a word, so Chinese works character-wise), and predictions come
back as character spans that slice the original text exactly.

Malformed BIO (an `I-X` that follows `O` or another type) is repaired to `B-X`, the reading of conlleval and
seqeval's default mode, and counted in the read report so `validate` says how many and where the first was.
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.data.jsonl import json_lines
from modelyard.errors import DataError

OUTSIDE = "O"
DOCSTART = "-DOCSTART-"
SPAN_SUFFIXES = {".jsonl", ".json", ".ndjson"}
_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff"
# one CJK character, a run of letters/digits (other scripts included), or any other single visible character
WORD = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+|[^\s]", re.UNICODE)
_PREFIXES = {"B": "B", "I": "I", "E": "I", "L": "I", "S": "B", "U": "B"}  # BIOES/BILOU read as BIO


@dataclass
class ReadReport:
    """What reading one file found: counts, and repairs with the first place each happened."""

    file: str
    sentences: int = 0
    tokens: int = 0
    entities: int = 0
    repaired_bio: int = 0
    first_repair: str = ""
    widened: int = 0  # spans that did not start or end on a word boundary, widened to whole words
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in ("", [])}


def is_cjk(ch: str) -> bool:
    return "\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uf900" <= ch <= "\ufaff"


def split_words(text: str) -> list[tuple[int, int]]:
    """Character ranges of the words the model labels; the same split at training and prediction time. A
    combining mark stays in the word it marks (decomposed "Zoë", Hindi's vowel signs and viramas)."""
    spans: list[tuple[int, int]] = []
    for match in WORD.finditer(text):
        start, end = match.span()
        if spans and spans[-1][1] == start and _continues(text, spans[-1][0], start):
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch).startswith("M")  # Mn, Mc, Me: not \w to `re`, so the regex splits at them


def _continues(text: str, word_start: int, start: int) -> bool:
    """Whether the match at `start` belongs to the word just before it: a mark always does, and so do the
    letters after a mark (but a CJK character stays a word of its own)."""
    if _is_mark(text[start]):
        return True
    after_mark = _is_mark(text[start - 1]) and not is_cjk(text[word_start])
    return after_mark and text[start].isalnum() and not is_cjk(text[start])


def _tag_parts(tag: str, where: str) -> tuple[str, str]:
    """('B'|'I'|'O', type) of one tag; a DataError naming the place for tags that are not BIO/BIOES."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix.upper() not in _PREFIXES or not kind:
        raise DataError(
            f"{where}: unknown tag '{tag}'",
            "tags must be O or B-TYPE / I-TYPE (BIOES's E- and S- are read as I- and B-)",
        )
    return _PREFIXES[prefix.upper()], kind


def _join_tokens(tokens: list[str], text: str | None) -> tuple[str, list[int]]:
    """The sentence text and each token's start: the file's own `# text = ...` when every token is found in it
    in order, else the tokens joined by spaces (none between two CJK tokens)."""
    if text is not None:
        starts, cursor = [], 0
        for token in tokens:
            at = text.find(token, cursor)
            if at < 0 or text[cursor:at].strip():
                break
            starts.append(at)
            cursor = at + len(token)
        else:
            return text, starts
    parts, starts, length = [], [], 0
    for i, token in enumerate(tokens):
        if i and not (is_cjk(tokens[i - 1][-1]) and is_cjk(token[0])):
            parts.append(" ")
            length += 1
        starts.append(length)
        parts.append(token)
        length += len(token)
    return "".join(parts), starts


def _sentence(rows: list[tuple[str, str, int]], text: str | None, path: str, report: ReadReport) -> dict[str, Any]:
    """One example from (token, tag, line) rows, I-after-O repaired to B-; two entities in one word of the text
    (tokens `New` and `York` of `# text = NewYork`) are refused, naming the sentence's first line."""
    text, starts = _join_tokens([r[0] for r in rows], text)
    entities: list[dict[str, Any]] = []
    previous = ""
    for (token, tag, line), start in zip(rows, starts, strict=True):
        prefix, kind = _tag_parts(tag, f"{path}:{line}")
        if prefix == "I" and previous != kind:
            report.repaired_bio += 1
            report.first_repair = report.first_repair or f"{path}:{line} ('{tag}' after a different tag)"
            prefix = "B"
        if prefix == "B":
            entities.append({"start": start, "end": start + len(token), "label": kind})
        elif prefix == "I":
            entities[-1]["end"] = start + len(token)
        previous = kind
    _refuse_shared_words(text, entities, f"{path}:{rows[0][2]}")  # as a JSONL example is refused
    report.sentences += 1
    report.tokens += len(rows)
    report.entities += len(entities)
    return {"text": text, "entities": entities}


def read_conll(
    path: str | Path, token_column: int = 0, tag_column: int = -1, max_rows: int | None = None
) -> tuple[list[dict[str, Any]], ReadReport]:
    """Sentences of a CoNLL/BIO file: one token per line (columns split by tabs, else spaces), a blank line
    between sentences, -DOCSTART- lines and CoNLL-U `# key = value` comments skipped."""
    path = str(path)
    report = ReadReport(path)
    examples: list[dict[str, Any]] = []
    rows: list[tuple[str, str, int]] = []
    text: str | None = None
    try:
        handle = open(path, encoding="utf-8-sig")  # noqa: SIM115 - closed by the with below
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err.strerror})") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if line.startswith("#") and "\t" not in line and " = " in line:
                key, _, value = line[1:].partition(" = ")
                if key.strip() == "text":
                    text = value
                continue
            if not line.strip():
                if rows:
                    examples.append(_sentence(rows, text, path, report))
                    if max_rows and len(examples) >= max_rows:
                        return examples, report
                rows, text = [], None
                continue
            fields = line.split("\t") if "\t" in line else line.split()
            fields = [f.strip() for f in fields]
            if fields[0] == DOCSTART:
                continue
            if len(fields) < 2:
                raise DataError(
                    f"{path}:{number}: expected a token and a tag separated by a tab or space, got {line[:60]!r}",
                    "one token per line with its tag in the last column; a blank line ends a sentence",
                )
            try:
                token, tag = fields[token_column], fields[tag_column]
            except IndexError:
                raise DataError(
                    f"{path}:{number}: no column {token_column} / {tag_column} in a line of {len(fields)} columns"
                ) from None
            if not token:
                raise DataError(f"{path}:{number}: empty token")
            rows.append((token, tag, number))
    if rows:
        examples.append(_sentence(rows, text, path, report))
    if not examples:
        raise DataError(f"{path}: no sentences found", "CoNLL/BIO: one 'token<TAB>tag' per line")
    return examples, report


def check_spans(text: str, entities: Any, where: str) -> list[dict[str, Any]]:
    """Validated, sorted spans of one example: integer offsets inside the text, a label, no overlaps (BIO
    cannot represent nested entities)."""
    if not isinstance(entities, list):
        raise DataError(f"{where}: 'entities' must be a list of {{start, end, label}}")
    spans = []
    for i, span in enumerate(entities):
        if not isinstance(span, dict) or not {"start", "end", "label"} <= set(span):
            raise DataError(f"{where}: entity {i} must have start, end and label, got {str(span)[:80]}")
        start, end, label = span["start"], span["end"], span["label"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
            raise DataError(f"{where}: entity {i}: start and end must be integers")
        if start >= end:
            raise DataError(
                f"{where}: entity {i} ({start}, {end}): start must be smaller than end",
                "end is exclusive: a span of one character at position 3 is (3, 4)",
            )
        if not 0 <= start < end <= len(text):
            raise DataError(
                f"{where}: entity {i} ({start}, {end}) lies outside the text of {len(text)} characters",
                "offsets count characters (not bytes) from 0; end is exclusive",
            )
        if not isinstance(label, str) or label.strip() in ("", OUTSIDE):
            raise DataError(f"{where}: entity {i} has no usable label ({label!r})")
        if not text[start:end].strip():
            raise DataError(
                f"{where}: entity {i} ({start}, {end}) covers only whitespace ({text[start:end]!r})",
                "offsets count characters (not bytes) from 0; end is exclusive",
            )
        spans.append({"start": start, "end": end, "label": label.strip()})
    spans.sort(key=lambda s: (s["start"], s["end"]))
    for a, b in itertools.pairwise(spans):
        if b["start"] < a["end"]:
            raise DataError(
                f"{where}: entities {text[a['start'] : a['end']]!r} ({a['start']}-{a['end']}) and "
                f"{text[b['start'] : b['end']]!r} ({b['start']}-{b['end']}) overlap",
                "token classification tags each character once: keep one of the overlapping spans",
            )
    _refuse_shared_words(text, spans, where)
    return spans


def _refuse_shared_words(text: str, spans: list[dict[str, Any]], where: str) -> None:
    """Two spans inside one word (e.g. 'New' and 'York' of 'NewYork') cannot both be tagged: the model tags whole
    words, so the second would vanish at training."""
    words = split_words(text)
    for a, b in itertools.pairwise(spans):
        shared = [(s, e) for s, e in words if s < a["end"] and e > b["start"]]
        if shared:
            s, e = shared[0]
            raise DataError(
                f"{where}: entities {text[a['start'] : a['end']]!r} ({a['start']}-{a['end']}) and "
                f"{text[b['start'] : b['end']]!r} ({b['start']}-{b['end']}) fall in one word {text[s:e]!r}",
                "the model tags whole words: make them one span, or put a space between the two words",
            )


def read_spans(
    path: str | Path, text_field: str = "text", entities_field: str = "entities", max_rows: int | None = None
) -> tuple[list[dict[str, Any]], ReadReport]:
    """Examples of a JSONL file: `{"text": ..., "entities": [{"start", "end", "label"}]}` per line."""
    path = str(path)
    report = ReadReport(path)
    examples = []
    try:
        lines = json_lines(Path(path).read_text(encoding="utf-8-sig"))
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
            raise DataError(f"{where}: expected an object with a string '{text_field}'")
        spans = check_spans(row[text_field], row.get(entities_field, []), where)
        examples.append({"text": row[text_field], "entities": spans})
        report.sentences += 1
        report.entities += len(spans)
        report.widened += word_tags(row[text_field], spans, split_words(row[text_field]))[1]
        if max_rows and len(examples) >= max_rows:
            break
    if not examples:
        raise DataError(f"{path}: no examples found")
    return examples, report


def read_entities(path: str | Path, **options: Any) -> tuple[list[dict[str, Any]], ReadReport]:
    """JSONL spans for .jsonl/.json/.ndjson files, CoNLL/BIO for anything else."""
    if not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    if Path(path).suffix.lower() in SPAN_SUFFIXES:
        return read_spans(path, options["text_field"], options["entities_field"], options.get("max_rows"))
    return read_conll(path, options["token_column"], options["tag_column"], options.get("max_rows"))


def word_tags(text: str, entities: list[dict[str, Any]], words: list[tuple[int, int]]) -> tuple[list[str], int]:
    """BIO tags of `words` from character spans: a word overlapping a span takes its type, the first one B-.
    Also returns how many spans did not start and end on word boundaries (they are widened)."""
    tags = [OUTSIDE] * len(words)
    widened, w = 0, 0
    for span in entities:
        while w < len(words) and words[w][1] <= span["start"]:
            w += 1
        first = w
        while w < len(words) and words[w][0] < span["end"]:
            tags[w] = ("B-" if w == first else "I-") + span["label"]
            w += 1
        if first == w:
            continue  # a span over whitespace only: nothing to tag
        widened += words[first][0] != span["start"] or words[w - 1][1] != span["end"]
    return tags, widened


def tag_spans(
    text: str, words: list[tuple[int, int]], tags: list[str], scores: list[float] | None = None
) -> list[dict[str, Any]]:
    """Character spans of BIO word tags (an I- that starts an entity is read as B-, as conlleval does), each
    with the mean score of its words when given, and the surface text it covers."""
    spans: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for i, ((start, end), tag) in enumerate(zip(words, tags, strict=True)):
        prefix, _, kind = tag.partition("-")
        if tag == OUTSIDE or prefix == "B" or current is None or current["label"] != kind:
            current = None
            if tag != OUTSIDE:
                current = {"start": start, "end": end, "label": kind, "_scores": []}
                spans.append(current)
        if current is not None:
            current["end"] = end
            if scores is not None:
                current["_scores"].append(scores[i])
    for span in spans:
        values = span.pop("_scores")
        if scores is not None:
            span["score"] = round(sum(values) / len(values), 4)
        span["text"] = text[span["start"] : span["end"]]
    return spans
