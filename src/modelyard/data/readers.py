"""Readers for .csv .tsv .jsonl .parquet .txt files into pandas DataFrames, with row-level problem reports.

Malformed rows are skipped and reported by line number (never silently); undecodable bytes and missing files stop
with a message naming the file and line. Every format is parsed line by line (Parquet by record batch), so
`stream_table` can hand over a file of any size in chunks of rows, in memory bounded by one chunk.
"""

from __future__ import annotations

import codecs
import csv
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from modelyard.config import FormatOptions
from modelyard.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

SUFFIXES = {".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt"}
MAX_REPORTED = 20
MAX_RECORD_LINES = 50  # a malformed record spanning more lines than this is an unclosed quote, not a long text
CHUNK_ROWS = 50_000
csv.field_size_limit(sys.maxsize)


@dataclass(frozen=True)
class Settings:
    """How the reader's hints tell the user to change a format option: a config's `data.format`, or the flags of
    `predict --input` and `evaluate --data`, which read their file by its own extension and options, not the
    training file's."""

    encoding: str = "set data.format.encoding"
    sep: str = "set data.format.sep"
    quoting: str | None = "set data.format.quoting: none"


CONFIG = Settings()
PREDICT = Settings(encoding="pass --encoding", sep="pass --sep", quoting=None)
_HINTS: ContextVar[Settings] = ContextVar("reader_hints", default=CONFIG)


@contextmanager
def hints(settings: Settings) -> Iterator[None]:
    """Files read inside name `settings`' options in their hints: a command reading a file by its flags reads it
    through a task's own reader, which knows nothing of the command."""
    token = _HINTS.set(settings)
    try:
        yield
    finally:
        _HINTS.reset(token)


@dataclass
class ReadReport:
    """What a reader skipped and why; `problems` holds at most MAX_REPORTED examples."""

    file: str
    rows: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    nul_bytes: int = 0
    columns: list[str] | None = None  # delimited files: the header, known once the first line is read
    settings: Settings = field(default_factory=_HINTS.get)
    blank: int = 0  # blank or whitespace-only lines after the header, never rows
    blank_lines: list[int] = field(default_factory=list)  # the first MAX_REPORTED of them

    def skip(self, line: int, why: str, where: str | None = None) -> None:
        """One malformed record starting at `line`; `where` names all its lines when a quote made it span several."""
        self.skipped += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(f"{where or f'line {line}'}: {why}")

    def skip_blank(self, line: int) -> None:
        self.blank += 1
        if len(self.blank_lines) < MAX_REPORTED:
            self.blank_lines.append(line)

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "rows": self.rows,
            "skipped": self.skipped,
            "problems": self.problems,
            "nul_bytes": self.nul_bytes,
        }


def _decoded_lines(path: Path, encoding: str, report: ReadReport) -> Iterator[str]:
    """Yield decoded lines; an undecodable byte stops with the file and line number."""
    name = codecs.lookup(encoding).name
    if name == "utf-8":
        encoding = "utf-8-sig"  # a byte-order mark is tolerated, never part of the first column name
    if name.startswith(("utf-16", "utf-32")):  # a newline is several bytes: the file is split after decoding
        try:
            with open(path, encoding=encoding, newline="") as f:
                yield from f
        except UnicodeDecodeError as err:
            raise _undecodable(path, _line_of_bad_bytes(path, encoding), encoding, err.reason, report) from None
        return
    first = True
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                text = raw.decode(encoding if first else encoding.replace("-sig", ""))
            except UnicodeDecodeError as err:
                utf16 = first and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
                raise _undecodable(path, lineno, encoding, f"{err.reason} at byte {err.start}", report, utf16) from None
            first = False
            if "\x00" in text:
                report.nul_bytes += text.count("\x00")
                text = text.replace("\x00", "")
            yield text


def _undecodable(path: Path, line: int, encoding: str, why: str, report: ReadReport, utf16: bool = False) -> DataError:
    """The error for bytes `encoding` cannot decode; `utf16`: the file starts with a UTF-16 byte-order mark."""
    encoding = encoding.replace("-sig", "")
    hint = f"save the file as UTF-8, or {report.settings.encoding} (e.g. gb18030, latin-1)"
    if codecs.lookup(encoding).name != "utf-8":  # the file may well be UTF-8, read as the encoding named
        hint = f"is the file {encoding}? {report.settings.encoding} with its encoding (e.g. utf-8, gb18030, latin-1)"
    if utf16:
        hint = f"the file starts with a UTF-16 byte-order mark: {report.settings.encoding} utf-16"
    return DataError(f"{path}: line {line}: bytes that are not valid {encoding} ({why})", hint)


def _line_of_bad_bytes(path: Path, encoding: str) -> int:
    """The line holding the first undecodable bytes of a UTF-16/32 file, found by decoding it again in pieces:
    text-mode reading decodes ahead of the lines it hands out, so its error does not say where."""
    decoder = codecs.getincrementaldecoder(encoding)()
    newlines = 0
    with open(path, "rb") as f:
        while True:
            piece = f.read(1 << 16)
            try:
                newlines += decoder.decode(piece, final=not piece).count("\n")
            except UnicodeDecodeError as err:  # its bytes start at a character: the decoder keeps a partial one
                return newlines + err.object[: err.start].decode(err.encoding).count("\n") + 1
            if not piece:
                return newlines + 1


class _Lines:
    """An iterator of lines that notes when it runs out."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines, self.ended = lines, False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        try:
            return next(self.lines)
        except StopIteration:
            self.ended = True
            raise


def _unique_header(path: Path, header: list[str]) -> list[str]:
    if len(set(header)) != len(header):
        raise DataError(f"{path}: duplicate column names in the header: {header}")
    return header


def _named_header(path: Path, header: list[str], names: list[str] | None) -> list[str]:
    """The columns of a file whose first row is a header: `names` in its place when given, one for each of its."""
    if names and len(names) != len(header):
        raise DataError(
            f"{path}: data.format.names gives {len(names)} names; the header row has {len(header)} columns "
            f"({', '.join(header)})",
            "give one name per column, or set data.format.header: false if that row is data",
        )
    return _unique_header(path, names or header)


def _delimited_rows(path: Path, fmt: FormatOptions, sep: str, report: ReadReport) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) of every well-formed row; the header goes to `report.columns`."""
    quoting = csv.QUOTE_NONE if fmt.quoting == "none" else csv.QUOTE_MINIMAL
    source = _Lines(_decoded_lines(path, fmt.encoding, report))
    reader = csv.reader(
        source,
        delimiter=sep,
        quotechar=fmt.quotechar,
        quoting=quoting,
        strict=False,
    )
    header: list[str] | None = _unique_header(path, fmt.names) if fmt.names and not fmt.header else None
    report.columns = header
    try:
        previous = 0
        for fields in reader:
            line, start = reader.line_num, previous + 1
            previous = line
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                if header is not None:
                    report.skip_blank(start)
                continue
            if header is None:
                header = report.columns = _named_header(path, [h.strip() for h in fields], fmt.names)
                continue
            if source.ended or (len(fields) != len(header) and line - start > MAX_RECORD_LINES):
                # csv hands over a record after the end of the file only when a quote in it is still open
                raise DataError(
                    f"{path}: line {start}: a quote opened here is never closed; it swallows lines {start}-{line}",
                    "close the quote" + (f", or {report.settings.quoting}" if report.settings.quoting else ""),
                )
            if len(fields) != len(header):
                where = f"lines {start}-{line}" if line > start else f"line {start}"
                report.skip(start, f"expected {len(header)} fields, found {len(fields)}", where)
                continue
            report.rows += 1
            yield line, fields
    except csv.Error as err:
        raise DataError(f"{path}: line {reader.line_num}: {err}", f"check quoting or {report.settings.sep}") from None
    if header is None:
        raise DataError(f"{path}: the file is empty", "a data file needs a header row and at least one row")
    if report.skipped and report.skipped > report.rows:
        raise DataError(
            f"{path}: {report.skipped} of {report.skipped + report.rows} rows have the wrong number of fields "
            f"(first: {report.problems[0]})",
            f"is the separator right? it is {sep!r}; {report.settings.sep}",
        )


def _jsonl_rows(path: Path, fmt: FormatOptions, report: ReadReport) -> Iterator[tuple[int, dict]]:
    for lineno, text in enumerate(_decoded_lines(path, fmt.encoding, report), 1):
        if not text.strip():
            report.skip_blank(lineno)
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            report.skip(lineno, f"not valid JSON ({err.msg})")
            continue
        if not isinstance(record, dict):
            report.skip(lineno, "expected a JSON object")
            continue
        report.rows += 1
        yield lineno, record
    if report.skipped and report.skipped > report.rows:
        raise DataError(
            f"{path}: {report.skipped} lines are not JSON objects (first: {report.problems[0]})",
            f"a {path.suffix} file is read as JSON Lines: one object per line, not a JSON array",
        )


def _text_rows(path: Path, fmt: FormatOptions, report: ReadReport) -> Iterator[tuple[int, dict]]:
    for lineno, text in enumerate(_decoded_lines(path, fmt.encoding, report), 1):
        if not text.strip():
            report.skip_blank(lineno)
            continue
        report.rows += 1
        yield lineno, {"text": text.rstrip("\r\n")}


def _frame(rows: Iterable[tuple[int, list[str] | dict]], report: ReadReport) -> pd.DataFrame:
    """Rows (line, fields or record) as a DataFrame indexed by source line."""
    lines, records = [], []
    for line, record in rows:
        lines.append(line)
        records.append(record)
    if report.columns is not None:
        frame = pd.DataFrame(records, columns=report.columns, dtype=object)
    else:
        frame = pd.DataFrame.from_records(records)
    frame.index = pd.Index(lines, name="line")
    return frame


def read_text_lines(
    path: Path, fmt: FormatOptions, settings: Settings | None = None
) -> tuple[pd.DataFrame, ReadReport]:
    report = ReadReport(str(path), settings=settings or _HINTS.get())
    frame = _frame(_text_rows(path, fmt, report), report)
    return (frame if len(frame) else pd.DataFrame({"text": []}, index=pd.Index([], name="line"))), report


def read_parquet(path: Path) -> tuple[pd.DataFrame, ReadReport]:
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises many types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__}: {err})") from None
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
    return frame, ReadReport(str(path), rows=len(frame))


def _checked(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}", "check data.train / data.test in the config")
    if path.is_dir():
        raise DataError(f"{path} is a folder; this task reads a file ({', '.join(sorted(SUFFIXES))})")
    if not path.is_file():  # a device or pipe reports 0 bytes, yet may never end: name what it is instead
        raise DataError(f"{path} is not a regular file (a device, pipe or socket)", "point the config at a data file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes)")
    return path


def _rows(path: Path, fmt: FormatOptions, report: ReadReport) -> Iterator[tuple[int, list[str] | dict]]:
    """The row parser for a line-based file, chosen by its extension (or data.format.sep)."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _delimited_rows(path, fmt, fmt.sep or ("\t" if suffix == ".tsv" else ","), report)
    if suffix in (".jsonl", ".json"):
        return _jsonl_rows(path, fmt, report)
    if suffix == ".txt":
        return _text_rows(path, fmt, report)
    if fmt.sep:
        return _delimited_rows(path, fmt, fmt.sep, report)
    raise DataError(
        f"{path}: unknown file type '{suffix}'",
        f"use one of {', '.join(sorted(SUFFIXES))}, or set data.format.sep for delimited text",
    )


def read_table(
    path: str | Path, fmt: FormatOptions | None = None, max_rows: int | None = None, settings: Settings | None = None
) -> tuple[pd.DataFrame, ReadReport]:
    """Read one data file by its extension; the index holds the source line (or row) number. `settings` names
    the options the hints point at (default: those of `hints`, else the config's)."""
    settings = settings or _HINTS.get()
    fmt = fmt or FormatOptions()
    path = _checked(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame, report = read_parquet(path)
    elif suffix == ".txt":
        frame, report = read_text_lines(path, fmt, settings)
    else:
        report = ReadReport(str(path), settings=settings)
        frame = _frame(_rows(path, fmt, report), report)
    if max_rows is not None:
        frame = frame.iloc[:max_rows]
        report.rows = len(frame)
    return frame, report


def stream_table(
    path: str | Path, fmt: FormatOptions | None = None, chunk_rows: int = CHUNK_ROWS
) -> tuple[Iterator[pd.DataFrame], ReadReport]:
    """The file as DataFrames of at most `chunk_rows` rows, read as they are consumed: for files too large to
    hold, memory is bounded by one chunk. The same parsing, skips and errors as `read_table`; `report` is
    complete once the iterator is exhausted."""
    fmt = fmt or FormatOptions()
    path = _checked(path)
    report = ReadReport(str(path))
    if path.suffix.lower() == ".parquet":
        return _parquet_chunks(path, chunk_rows, report), report
    rows = _rows(path, fmt, report)

    def chunks() -> Iterator[pd.DataFrame]:
        while batch := list(islice(rows, chunk_rows)):
            yield _frame(batch, report)

    return chunks(), report


def stream_input(
    path: str | Path, fmt: FormatOptions, chunk_rows: int = CHUNK_ROWS
) -> tuple[Iterator[tuple[pa.Table, pd.DataFrame]], ReadReport]:
    """A prediction input file (not Parquet) as (Arrow table, DataFrame) chunks of the same rows, read as
    `stream_table` reads it but with predict's hints. The DataFrame is what a learner scores; the table holds
    the values as the file has them, for the output to copy: a JSON integer stays an integer (pandas would make
    a column with a missing key float), a missing key is null."""
    path = _checked(path)
    report = ReadReport(str(path), settings=PREDICT)
    rows = _rows(path, fmt, report)

    def chunks() -> Iterator[tuple[pa.Table, pd.DataFrame]]:
        while batch := list(islice(rows, chunk_rows)):
            frame = _frame(batch, report)
            yield _arrow_records([record for _, record in batch], list(frame.columns)), frame

    return chunks(), report


def file_values(table: pa.Table) -> pd.DataFrame:
    """An Arrow table of a file's values as pandas, an integer column kept integer even with a null (numpy would
    make it float64, written back as 1.0, and 2**53 + 1 as 2**53)."""
    import pyarrow as pa

    return table.to_pandas(types_mapper=lambda kind: pd.ArrowDtype(kind) if pa.types.is_integer(kind) else None)


def _arrow_records(records: list[list[str] | dict], columns: list[str]) -> pa.Table:
    """Rows as an Arrow table of `columns`, each column's type inferred from its own values; a column of mixed
    values (numbers and text) is written as text."""
    import pyarrow as pa

    arrays = {}
    for index, name in enumerate(columns):
        values = [r.get(name) if isinstance(r, dict) else r[index] for r in records]
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arrays[name] = pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values])
    return pa.table(arrays)


def _parquet_chunks(path: Path, chunk_rows: int, report: ReadReport) -> Iterator[pd.DataFrame]:
    for table in parquet_tables(path, chunk_rows, report):
        yield parquet_frame(table, report.rows - table.num_rows)


def parquet_tables(path: Path, chunk_rows: int, report: ReadReport) -> Iterator[pa.Table]:
    """A Parquet file as Arrow tables of at most `chunk_rows` rows (counted in `report.rows`): what batch scoring
    copies its input columns from, so their types come through unchanged."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            report.rows += batch.num_rows
            yield pa.Table.from_batches([batch])
    except Exception as err:  # pyarrow raises many types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__}: {err})") from None


def parquet_frame(table: pa.Table, first_row: int) -> pd.DataFrame:
    """A chunk of a Parquet file as the DataFrame a learner scores, indexed by row number (1 = first row)."""
    frame = table.to_pandas()
    frame.index = pd.RangeIndex(first_row + 1, first_row + len(frame) + 1, name="row")
    return frame


def require_columns(frame: pd.DataFrame, columns: dict[str, str], path: str) -> None:
    """`columns` maps config key -> column name; a missing one is an error that lists what the file has."""
    for key, column in columns.items():
        if column not in frame.columns:
            hint = f"set data.{key} to one of those columns"
            if len(frame.columns) == 1 and (seps := [c for c in ";\t|" if c in str(frame.columns[0])]):
                hint = f"the header looks separated by {seps[0]!r}: set data.format.sep"
            raise DataError(
                f"{path}: no column '{column}' (data.{key}); the file has: {', '.join(map(str, frame.columns))}",
                hint,
            )
