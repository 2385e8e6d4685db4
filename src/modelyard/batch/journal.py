"""The journal of a batch-scoring run, so a killed run continues where it stopped.

Beside the output, `OUTPUT.partial/` holds one Parquet part per scored chunk and `manifest.json`, rewritten
atomically after each part, that names the input (size, mtime, hashes of its first and last MiB: a Parquet
footer is in the last), the bundle and the parts done. A rerun of the same command skips those parts; a run over
another input or bundle is refused. At the end the parts are joined into the output (temp file + rename) and
the folder is removed. `OUTPUT.partial/lock` is held (flock) for the whole run, so a second run over the same
output is refused while the first lives; the OS releases it when the process ends, killed or not.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from modelyard.data.readers import file_values
from modelyard.errors import DataError, UserError
from modelyard.fsutil import atomic_path, atomic_write_json
from modelyard.predict_io import JSON_TEXT, csv_cells, json_line

EDGE = 1 << 20  # bytes hashed at each end of the input


def fingerprint(path: Path) -> dict[str, Any]:
    """What identifies an input file without reading all of it: size, mtime and hashes of both ends."""
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(EDGE))
        f.seek(max(stat.st_size - EDGE, 0))
        digest.update(f.read(EDGE))
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ends": digest.hexdigest()}


def bundle_digest(bundle: Path) -> str:
    """The bundle's manifest holds the sha256 of every file in it: its own hash names the whole bundle."""
    return hashlib.sha256((bundle / "modelyard.json").read_bytes()).hexdigest()


def sweep_temp_files(output: Path) -> None:
    """Remove what a run killed while writing `output` left beside it: `atomic_path`'s hidden temp files for that
    name (`.NAME.xxxxxxxx.tmp`), which no later run would ever replace."""
    pattern = re.compile(rf"\.{re.escape(output.name)}\.[0-9a-f]{{8}}\.tmp")
    for path in output.parent.glob(f".{glob.escape(output.name)}.*.tmp"):
        if pattern.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)


class OutputLock:
    """An exclusive lock on writing `output`, held from `acquire` to `release` (or the process's end)."""

    def __init__(self, output: Path, folder: Path | None = None) -> None:
        self.output = output
        self.folder = folder or output.with_name(output.name + ".partial")
        self.path = self.folder / "lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or refuse naming the process that holds it."""
        while self.fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # a run that just finished removed the folder: make it again
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.read(fd, 32).decode("ascii", "replace").strip()
                os.close(fd)
                raise UserError(
                    f"another run is writing {self.output}" + (f" (pid {pid})" if pid else ""),
                    "wait for it to end, or choose another --output",
                ) from None
            if self._still_linked(fd):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode("ascii"))
                self.fd = fd
            else:  # locked a file a finishing run had just removed: it guards nothing, lock the new one
                os.close(fd)

    def _still_linked(self, fd: int) -> bool:
        try:
            here, held = os.stat(self.path), os.fstat(fd)
        except FileNotFoundError:
            return False
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        """Let the next run in; a folder left with nothing but the lock (no part journalled) is removed."""
        if self.fd is None:
            return
        if self.folder.is_dir() and not (self.folder / "manifest.json").exists():
            self.path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # a part written before its manifest stays for the rerun
                self.folder.rmdir()
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Journal:
    """Parts done so far (rows in each, in order) and the run's identity; `state` carries small extras (the
    schema report) across a restart."""

    def __init__(self, output: Path, identity: dict[str, Any], chunk_rows: int) -> None:
        self.output = output
        self.folder = output.with_name(output.name + ".partial")
        self.identity = identity
        self.chunk_rows = chunk_rows
        self.parts: list[int] = []
        self.state: dict[str, Any] = {}
        self.lock = OutputLock(output)

    def __enter__(self) -> Journal:
        """Lock the output, then take up the stopped run the folder holds, if any (none is running: it is locked)."""
        self.lock.acquire()
        try:
            self._resume()
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()

    def _resume(self) -> None:
        manifest = self.folder / "manifest.json"
        if not manifest.exists():
            return
        try:
            saved = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UserError(f"{manifest} is unreadable ({err})", f"delete {self.folder} to start afresh") from None
        if saved.get("identity") != self.identity:
            hint = f"delete {self.folder} to start afresh, or choose another --output"
            raise UserError(self._mismatch(saved.get("identity", {})), hint)
        self.chunk_rows, self.parts, self.state = saved["chunk_rows"], saved["parts"], saved.get("state", {})

    def _mismatch(self, saved: dict[str, Any]) -> str:
        """Why the stopped run in the folder is not this one: another input or bundle, or the same input read with
        other options (each named with both values)."""
        reading, before = self.identity.get("reading") or {}, saved.get("reading") or {}
        same_file = all(saved.get(key) == value for key, value in self.identity.items() if key != "reading")
        if not same_file or not reading or not before:
            return (
                f"{self.folder} holds a stopped run over another input file or bundle "
                f"(it scored {saved.get('input', {}).get('path')}; the input or bundle changed)"
            )
        changed = [
            f"{key} {before.get(key)!r} (this run: {value!r})"
            for key, value in reading.items()
            if before.get(key) != value
        ]
        return f"{self.folder} holds a stopped run that read this input with {', '.join(changed)}"

    @property
    def rows(self) -> int:
        return sum(self.parts)

    def part(self, index: int) -> Path:
        return self.folder / f"part-{index:06d}.parquet"

    def add(self, table: pa.Table, state: dict[str, Any]) -> None:
        """Write the next part, then record it: a kill between the two leaves a part that is scored again."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.part(len(self.parts))) as tmp:
            pq.write_table(table, tmp)
        self.parts.append(table.num_rows)
        self.state = state
        record = {"identity": self.identity, "chunk_rows": self.chunk_rows, "parts": self.parts, "state": state}
        atomic_write_json(self.folder / "manifest.json", record)

    def tables(self) -> Iterator[pa.Table]:
        """The parts in order, one row group at a time (memory stays bounded by one chunk); an empty part (a chunk
        with no row to score) has no prediction columns and is left out."""
        for index in self._filled():
            reader = pq.ParquetFile(self.part(index))
            for group in range(reader.num_row_groups):
                yield reader.read_row_group(group)

    def assemble(self) -> None:
        """Join the parts into the output (.parquet, .csv or .jsonl) atomically, then drop the journal."""
        suffix = self.output.suffix.lower()
        with atomic_path(self.output) as tmp:
            if suffix == ".parquet":
                schema = self._schema()
                with pq.ParquetWriter(tmp, schema) as writer:
                    for table in self.tables():
                        writer.write_table(table.cast(schema))
            else:
                with open(tmp, "wb") as sink:
                    for i, table in enumerate(self.tables()):
                        if suffix == ".csv":
                            frame = csv_cells(file_values(table))  # a list column as JSON text
                            sink.write(frame.to_csv(index=False, header=i == 0).encode("utf-8"))
                        else:
                            sink.write("".join(map(json_line, json_records(table))).encode("utf-8"))
        shutil.rmtree(self.folder)

    def _filled(self) -> list[int]:
        return [index for index, rows in enumerate(self.parts) if rows]

    def _schema(self) -> pa.Schema:
        """One schema for every part: a column empty in one chunk (null) takes its type from the others."""
        schemas = [pq.read_schema(self.part(i)).remove_metadata() for i in self._filled()]
        try:
            return pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise DataError(
                f"{self.output}: a column changes type between chunks of the input ({err})",
                "write .csv or .jsonl instead, or give that column one type in the input",
            ) from None


def json_records(table: pa.Table) -> list[dict[str, Any]]:
    """The rows of `table` for a .jsonl output, values as Arrow holds them (an int64 with a null stays an integer,
    a float exact); its nested answers, JSON text in the part, as JSON values again, as the whole-file path writes
    them."""
    nested = [field.name for field in table.schema if field.metadata == JSON_TEXT]
    records = table.to_pylist()
    for record in records:
        for name in nested:
            record[name] = record[name] if record[name] is None else json.loads(record[name])
    return records
