"""Inputs for `predict` from the command line or a file, and predictions written back beside them."""

from __future__ import annotations

import codecs
import json
import math
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from modelyard.config import FormatOptions
from modelyard.data import text_corpus
from modelyard.data.audio import EXTENSIONS as AUDIO_EXTENSIONS
from modelyard.data.audio import read_audio
from modelyard.data.blank import is_blank
from modelyard.data.images import EXTENSIONS, decode_image, load_image
from modelyard.data.readers import PREDICT, ReadReport, file_values, read_table, stream_input
from modelyard.errors import DataError, UserError
from modelyard.fsutil import atomic_path, atomic_write_text, check_writable, same_file
from modelyard.protocols import reads_text

MAX_NAMED = 20  # unusable rows named in a warning
IMAGE_CHUNK = 64  # images decoded and predicted at once: one decode each, memory bounded for big folders
OUTPUTS = (".parquet", ".csv", ".jsonl")  # what `predict --output` writes
T = TypeVar("T")


def check_output(output: Path, source: Path | None) -> None:
    """Refuse, before any model loads, an --output that predict cannot write or that would replace its input."""
    if output.suffix.lower() not in OUTPUTS:
        raise UserError(f"--output {output}: write {', '.join(OUTPUTS)}")
    check_writable(output)
    if source is not None and same_file(output, source):
        raise UserError(f"--output {output} is the --input file: scoring would replace it", "write to another file")
    if source is not None and source.is_dir():
        if any(same_file(output, path) for path in folder_files(source)):
            raise UserError(
                f"--output {output} is one of the --input folder's files: scoring would replace it",
                "write to a file outside the folder",
            )
        if source.resolve() in output.resolve().parents and read_from_folder(output):
            raise UserError(
                f"--output {output} is inside the --input folder {source}: a later run would read it as input",
                "write to a file outside the folder",
            )


def read_from_folder(path: Path) -> bool:
    """Whether a folder of Parquet files given as --input reads `path` (Spark's `_SUCCESS`-style and hidden files
    are not data)."""
    return path.suffix == ".parquet" and path.name[0] not in "._"


def folder_files(folder: Path) -> list[Path]:
    """The files a folder given as --input is read from, in name order (subfolders included)."""
    return sorted(path for path in folder.rglob("*.parquet") if read_from_folder(path))


def media_files(paths: list[Path], extensions: set[str] | frozenset[str], what: str) -> list[str]:
    """The files named (whatever their extension: a wrong one is named and skipped later), and the files with one
    of `extensions` in the folders named (recursively, sorted)."""
    out = []
    for path in paths:
        if path.is_dir():
            out += sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in extensions and p.is_file())
        elif path.exists():
            out.append(str(path))
        else:
            raise DataError(f"{what} not found: {path}")
    if not out:
        raise DataError(f"no {what}s ({', '.join(sorted(extensions))}) in {', '.join(map(str, paths))}")
    return out


def image_files(paths: list[Path]) -> list[str]:
    return media_files(paths, EXTENSIONS, "image")


def _predict_files(
    model,
    paths: Sequence[T],
    top_k: int,
    on_skip: Callable[[T, str], None],
    decode: Callable[[T], Any],
    none_usable: DataError,
) -> tuple[list[T], list[dict[str, Any]]]:
    """Decode and predict the files chunk by chunk; a file `decode` refuses (ValueError, OSError) is reported
    through `on_skip(path, reason)` and skipped. Raises `none_usable` only when no file at all is usable."""
    kept: list[T] = []
    predictions: list[dict[str, Any]] = []
    for start in range(0, len(paths), IMAGE_CHUNK):
        items, names = [], []
        for path in paths[start : start + IMAGE_CHUNK]:
            try:
                items.append(decode(path))
                names.append(path)
            except ValueError as err:
                on_skip(path, str(err))
            except OSError as err:
                on_skip(path, f"unreadable: {err.strerror or err}")
        if items:
            predictions += model.predict(items, top_k=top_k)
            kept += names
    if not kept:
        raise none_usable
    return kept, predictions


def usable_inputs(model) -> str:
    """The input options `model` takes, for the hint after one it cannot: an image or audio model its files, a
    model whose input is one text texts, and every model a table (--input: rows, paths, image+text pairs)."""
    options = ["--image"] if hasattr(model.learner, "to_image") else []
    options += ["--audio"] if hasattr(model.learner, "to_audio") else []
    options += ["--text"] if reads_text(model.task.Input) else []
    return " or ".join([*options, "--input"])


def predict_images(
    model, paths: list[str], top_k: int, on_skip: Callable[[str, str], None]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Predict every readable image; an empty, corrupt, truncated or non-image file (or a decompression bomb)
    is reported through `on_skip(path, reason)` and skipped. Fails only when no image at all is usable."""
    if not hasattr(model.learner, "to_image"):
        raise UserError(
            f"--image needs an image model; {model.name} is a {model.manifest.get('task')} model",
            f"use {usable_inputs(model)}",
        )
    none_usable = DataError(
        f"none of the {len(paths)} image file(s) could be read: nothing to predict",
        "check that they are JPEG/PNG/... images (each skipped file is listed above with its reason)",
    )
    return _predict_files(model, paths, top_k, on_skip, _read_image, none_usable)


def draw_predictions(model, paths: list[str], predictions: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Each image with its predicted boxes drawn (detectors: the learner's `draw`), as PNG files in `folder`."""
    if not hasattr(model.learner, "draw"):
        raise UserError(f"--draw needs a detection model; {model.name} is a {model.manifest.get('task')} model")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, (path, answer) in enumerate(zip(paths, predictions, strict=True)):
        target = folder / f"{index:04d}-{Path(path).stem}.png"
        model.learner.draw(load_image(path), answer).save(target)  # full size: boxes are in its pixels
        written.append(target)
    return written


def audio_files(paths: list[Path]) -> list[str]:
    return media_files(paths, AUDIO_EXTENSIONS, "audio file")


def predict_audio(
    model, paths: list[str], top_k: int, on_skip: Callable[[str, str], None]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Predict every usable audio file (any rate or channel count: resampled to 16 kHz mono); an empty, corrupt,
    video or over-long file (the learner's `max_seconds`) is reported through `on_skip` and skipped."""
    if not hasattr(model.learner, "to_audio"):
        raise UserError(
            f"--audio needs an audio model; {model.name} is a {model.manifest.get('task')} model",
            f"use {usable_inputs(model)}",
        )
    none_usable = DataError(
        f"none of the {len(paths)} audio file(s) could be used: nothing to predict",
        "each skipped file is listed above with its reason",
    )
    return _predict_files(model, paths, top_k, on_skip, _audio_reader(model.learner), none_usable)


def predict_rows(
    model, inputs: list[Any], frame: pd.DataFrame, file: Path, top_k: int, warn: Callable[[str], None]
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Predict a table's rows; for an image or audio model, whose rows name files, a row whose file cannot be used
    is left out of the output and named (file, line, reason) through `warn`, as rows with no text are, and the
    rest are scored. Returns the rows scored and their predictions."""
    read = _file_reader(model.learner) if hasattr(model.task, "inputs_from_frame") else None
    if read is None:
        return frame, model.predict(inputs, top_k=top_k)
    bad: list[str] = []
    unit = frame.index.name or "line"

    def skip(row: int, reason: str) -> None:
        bad.append(f"{unit} {frame.index[row]}: {inputs[row]}: {reason}")

    none_usable = DataError(
        f"{file}: none of its {len(inputs)} rows names a usable file: nothing to predict",
        "each row is named above with the reason its file cannot be used",
    )
    try:
        kept, predictions = _predict_files(
            model, range(len(inputs)), top_k, skip, lambda row: read(inputs[row]), none_usable
        )
    finally:
        if bad:
            more = f"; and {len(bad) - MAX_NAMED} more" if len(bad) > MAX_NAMED else ""
            warn(f"{file}: {len(bad)} rows not scored, their file cannot be used: {'; '.join(bad[:MAX_NAMED])}{more}")
    return frame.iloc[kept], predictions


def _file_reader(learner) -> Callable[[str], Any] | None:
    """How a model that reads files (images, audio) decodes one, raising ValueError or OSError when it cannot."""
    if hasattr(learner, "to_image"):
        return _read_image
    if hasattr(learner, "to_audio"):
        return _audio_reader(learner)
    return None


def _read_image(path: str) -> Any:
    return decode_image(Path(path).read_bytes())


def _audio_reader(learner) -> Callable[[str], Any]:
    """Decodes one audio file for `learner`, refusing one longer than its `max_seconds`."""
    limit = getattr(learner, "max_seconds", None)
    return lambda path: read_audio(Path(path), limit)[0]


def input_format(encoding: str = "utf-8", sep: str | None = None) -> FormatOptions:
    """How predict reads its input file: by the file's own extension, header row and `encoding` (UTF-8, a
    byte-order mark accepted), never by the training file's `data.format`: that named another file."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UserError(f"--encoding {encoding}: not a known text encoding", "e.g. utf-8, gb18030, latin-1") from None
    if sep == "\\t":
        sep = "\t"  # what a shell passes for --sep '\t'
    if sep is not None and len(sep) != 1:
        raise UserError(f"--sep {sep!r}: a separator is one character", "e.g. --sep ';' or --sep '\\t'")
    return FormatOptions(encoding=encoding, sep=sep)


def read_inputs(
    model, texts: list[str] | None, file: Path | None, warn: Callable[[str], None], fmt: FormatOptions | None = None
) -> tuple[list[Any], pd.DataFrame | None]:
    """The model's inputs and, for a file (read by `fmt`, default UTF-8), the frame they came from (its columns
    are kept in the output); rows the reader skipped (malformed) and rows with no text are named through `warn`."""
    if texts is not None:
        if not reads_text(model.task.Input):  # an image, a recording or a row would be sought in the text
            raise UserError(
                f"--text needs a text model; {model.name} is a {model.manifest.get('task')} model",
                f"use {usable_inputs(model)}",
            )
        return list(texts), None
    frame, values, report = _read_table(file, fmt or FormatOptions())
    if report.skipped:
        warn(skipped_rows(file, report.skipped, report.problems[0]))
    blank = no_text(model, frame, file)
    unscored = Unscored()
    unscored.add_read(report)
    unscored.add(frame.index[blank])
    if unscored.count:
        warn(unscored.message(file))
    return frame_inputs(model, frame[~blank], file), values[~blank.to_numpy()]


def _read_table(file: Path, fmt: FormatOptions) -> tuple[pd.DataFrame, pd.DataFrame, ReadReport]:
    """The table the model scores and, for the output to copy, its values as the file has them: a JSON integer
    column stays integer where a row lacks the key (pandas would make it float: `"id": 1.0`), as a streamed
    file's does. Parquet and plain text have nothing for pandas to change."""
    if file.suffix.lower() not in (".parquet", ".txt"):
        chunks, report = stream_input(file, fmt, chunk_rows=sys.maxsize)  # one chunk: the whole file
        for table, frame in chunks:
            return frame, file_values(table).set_axis(frame.index), report
    frame, report = read_table(file, fmt, settings=PREDICT)  # also a file of no rows: its header's columns
    return frame, frame, report


def skipped_rows(file: Path, count: int, first: str) -> str:
    return f"{file}: {count} malformed rows skipped, not scored (first: {first})"


class Unscored:
    """Rows of an input file left unscored for want of a text: blank or whitespace-only lines the reader passed
    over, and rows whose text cell is missing, empty or whitespace only; counted, with the first line numbers."""

    FIRST = 5

    def __init__(self, count: int = 0, first: list[int] | None = None, unit: str = "line") -> None:
        self.count, self.first, self.unit = count, first or [], unit

    def add_read(self, report: ReadReport) -> None:
        self.add(pd.Index(report.blank_lines, name="line"), report.blank)

    def add(self, numbers: pd.Index, count: int | None = None) -> None:
        """`numbers`: the first (or all) of the rows' line numbers (a Parquet file's: row numbers)."""
        self.count += len(numbers) if count is None else count
        self.first = sorted(self.first + [int(n) for n in numbers[: self.FIRST]])[: self.FIRST]
        if len(numbers):  # a Parquet file's rows stay rows when the reader then reports no blank line
            self.unit = numbers.name or self.unit

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.count, "first": self.first, "unit": self.unit}

    def message(self, file: Path) -> str:
        where = f"{self.unit}{'s' if len(self.first) > 1 else ''} {', '.join(map(str, self.first))}"
        rows = f"{self.count} row{'s' if self.count != 1 else ''}"
        return f"{file}: {rows} with no text (blank, whitespace only or missing) not scored ({where})"


def no_text(model, frame: pd.DataFrame, file: Path) -> pd.Series:
    """Which rows of a table a text model cannot score: the text is missing, empty or whitespace only (scored,
    it would get a confident label for the text "nan" or ""). Other models read their own columns: none."""
    if hasattr(model.learner, "predict_frame") or hasattr(model.task, "inputs_from_frame"):
        return pd.Series(False, index=frame.index)
    texts = frame[text_column(model, frame, file)]
    return texts.map(lambda v: _json_value(v) is None or is_blank(str(v))).astype(bool)


def frame_inputs(model, frame: pd.DataFrame, file: Path) -> list[Any]:
    """The model's inputs in a table's rows: the task's own reading, else the text column (or the only column)."""
    task = model.task
    if hasattr(task, "inputs_from_frame"):
        frame.attrs["source"] = str(file)  # lets a task resolve paths in the file relative to it (multimodal)
        return task.inputs_from_frame(frame, model.config)
    column = text_column(model, frame, file)
    chats = hasattr(model.config.data, "messages_field")  # a generation model answers a chat's messages
    inputs: list[Any] = []
    for i, v in frame[column].items():
        listed = pd.api.types.is_list_like(v)  # a JSON list or object (Parquet: an array)
        if chats and (column == model.config.data.messages_field or listed):
            where = f"{file}: {frame.index.name or 'row'} {i}"
            inputs.append(text_corpus.prompt_messages(where, v))  # never the printed text of the list
        elif listed:
            raise DataError(
                f"{file}: {frame.index.name or 'row'} {i}: column '{column}' holds a "
                f"{'JSON object' if isinstance(v, dict) else 'list'}, not a text",
                "only chat models (text_generation) read a 'messages' list; give this model a column of texts",
            )
        else:
            inputs.append("" if _json_value(v) is None else str(v))  # a missing cell is an empty text, not "nan"
    return inputs


TEXT_KEYS = ("text_column", "question_field", "messages_field", "prompt_field")  # in the order they are preferred


def text_column(model, frame: pd.DataFrame, file: Path) -> str:
    """The column a text model reads: its `data.text_column` (an assistant: its question field; a generation
    model: its messages field, else its prompt field), else a table's only column."""
    data = model.config.data
    wanted = [getattr(data, key) for key in TEXT_KEYS if hasattr(data, key)]
    found = [c for c in wanted if c in frame.columns]
    if found:
        return found[0]
    if len(frame.columns) != 1:
        looked_for = " or ".join(f"'{c}'" for c in wanted)  # every text task names at least one (TEXT_KEYS)
        raise DataError(
            f"{file}: no column {looked_for} and more than one column to choose from: "
            f"{', '.join(map(str, frame.columns))}"
        )
    return frame.columns[0]


def write_predictions(path: Path, frame: pd.DataFrame | None, predictions: list[dict[str, Any]]) -> None:
    """The input columns untouched, then the answers (a key the input already has as `prediction_<key>`, as a
    streamed file gets them): .jsonl keeps nested answers as JSON values, .csv and .parquet as JSON text."""
    frame = frame.reset_index(drop=True) if frame is not None else pd.DataFrame(index=range(len(predictions)))
    answers = [{answer_column(k, frame.columns): v for k, v in p.items()} for p in predictions]
    if path.suffix.lower() == ".jsonl":
        merged = [{**row, **answer} for row, answer in zip(frame.to_dict("records"), answers, strict=True)]
        atomic_write_text(path, "".join(map(json_line, merged)))
        return
    # the input columns keep their own types: rebuilt from the rows' values, an integer column with a gap is float
    flat = pd.concat([frame, pd.DataFrame([flat_answer(a) for a in answers])], axis=1)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        with atomic_path(path) as tmp:
            pq.write_table(to_arrow(flat), tmp)
        return
    atomic_write_text(path, csv_cells(flat).to_csv(index=False))


def json_line(record: dict[str, Any]) -> str:
    """One row of a .jsonl output: floats exactly as they are (json's shortest repr round-trips; pandas' `to_json`
    rounds to 10 digits), a missing cell as null, a list as a JSON array, a value JSON has no type for (a date) as
    its text."""
    return json.dumps({k: plain(v) for k, v in record.items()}, ensure_ascii=False, default=str) + "\n"


def plain(value: Any) -> Any:
    """A cell as JSON writes it: an input's list (a JSON array or Parquet list reaches pandas as a numpy array,
    whose printed text is rounded and cut short with "...") as a list of exact values, missing values as None."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return _json_value(value)


def csv_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """A table for a .csv output: a list or object cell (a forecast request's `history`) as its JSON text, which
    `predict --input` reads back, never numpy's printed text."""
    nested = {
        c: frame[c].map(lambda v: json.dumps(plain(v), ensure_ascii=False) if _is_nested(v) else v)
        for c in frame.columns
        if frame[c].dtype == object and frame[c].map(_is_nested).any()
    }
    return frame.assign(**nested) if nested else frame


def _is_nested(value: Any) -> bool:
    return isinstance(value, np.ndarray | list | tuple | dict)


def answer_column(key: str, columns: Collection[str]) -> str:
    """The output column of an answer's key: `prediction_<key>` where the input has a column of that name (an
    input column named `label` or `labels` is the user's data, never replaced)."""
    return f"prediction_{key}" if key in columns else key


def _json_value(value: Any) -> Any:
    """A cell the row lacked (NaN, NA, NaT: a key only other JSON Lines rows have) as JSON null, not NaN, which
    is no JSON."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


JSON_TEXT = {b"modelyard": b"json"}  # Arrow field metadata of a column of nested answers written as JSON text


def flat_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """One table row of an answer: nested values (top-k lists, spans) as JSON text."""
    return {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v) for k, v in answer.items()}


def to_arrow(frame: pd.DataFrame) -> Any:
    """A scored table as an Arrow table; an object column of mixed values (numbers and text) is written as text."""
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        mixed = frame.select_dtypes(include="object").columns
        text = csv_cells(frame[mixed])  # a list cell as JSON text, never numpy's printed text
        as_text = {c: text[c].map(lambda v: v if v is None or isinstance(v, str) else str(v)) for c in mixed}
        return pa.Table.from_pandas(frame.assign(**as_text), preserve_index=False)


class SchemaProblems:
    """Rows of a batch file that `/v1/predict` would refuse (wrong type, scored as missing) or note (unseen
    category, scored as "other"), counted per column with the first row numbers (1 = first data row)."""

    FIRST = 5

    def __init__(self, source: Path) -> None:
        self.source = source
        self.summary: dict[str, Any] = {"unknown_columns": [], "wrong_type": {}, "unseen": {}}

    def add(self, found: dict[str, Any], offset: int, size: int, warn: Callable[[str], None]) -> None:
        if found["missing_columns"]:
            raise DataError(
                f"{self.source}: required column(s) missing: {', '.join(map(repr, found['missing_columns']))}",
                "the file needs every feature column the model was trained on (values may be empty)",
            )
        if offset == 0 and found["unknown_columns"]:
            self.summary["unknown_columns"] = found["unknown_columns"]
            warn(f"{self.source}: column(s) not in the training schema, ignored: {', '.join(found['unknown_columns'])}")
        parts = []
        for kind, what in (("wrong_type", "wrong type, scored as missing"), ("unseen", "unseen category, 'other'")):
            for column, positions in found[kind].items():
                numbers = [offset + p + 1 for p in positions]
                entry = self.summary[kind].setdefault(column, {"rows": 0, "first_rows": []})
                entry["rows"] += len(numbers)
                entry["first_rows"] = (entry["first_rows"] + numbers)[: self.FIRST]
                parts.append(f"{column}: {len(numbers)} ({what}; rows {', '.join(map(str, numbers[: self.FIRST]))})")
        if parts:
            warn(f"{self.source} rows {offset + 1}-{offset + size}: " + "; ".join(parts))
