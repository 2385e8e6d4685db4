"""Atomic file writes and checksums: a kill at any moment leaves either the old or the new file, never half of one."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelyard.errors import UserError

log = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike) -> None:
    """A UserError naming `path` when it cannot become a file: it is a folder, or a file stands where one of its
    folders would be. Commands check their --output with it before the work whose result it would hold."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder", "give a file name")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UserError(f"cannot write {path}: {blocker} is a file, not a folder")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one existing file (links and relative spellings included)."""
    return Path(a).exists() and Path(b).exists() and Path(a).samefile(b)


def escapes(path: Path, root: Path) -> Path | None:
    """Where `path` really lies when a symlink or '..' in it leads out of the folder `root`, else None. A path
    written out in full (no link, no '..') is taken as the user's choice wherever it points."""
    resolved = path.resolve()
    if resolved == path.absolute():
        return None
    root = root.resolve()
    return None if resolved == root or root in resolved.parents else resolved


def _prepare_target(path: Path) -> None:
    """The folder of a file about to be written, created, after `check_writable`."""
    check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    _prepare_target(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path` for a writer that wants a file name (safetensors, onnx); rename on success."""
    path = Path(path)
    _prepare_target(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # safetensors' writer makes 0600: a bundle's weights would be unreadable
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a folder's entries (created, renamed, removed files) durable: a rename is only on disk after this."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Every file and folder under `root` on disk, so a swap journalled afterwards never exposes half a folder."""
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
        fsync_dir(folder)


def _journal(target: Path) -> Path:
    return target.with_name(f".{target.name}.swap.json")


def _swap_names(target: Path) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The names a swap of `target` gives its staging and its old folder: the only ones a journal may name."""
    name = re.escape(target.name)
    return re.compile(rf"\.{name}\.partial-[0-9a-f]+"), re.compile(rf"\.{name}\.old-[0-9a-f]{{8}}")


def replace_dir(staging: Path, target: Path) -> None:
    """Swap a fully written staging folder into place, crash-safely: the staging folder is made durable, a journal
    beside the target names both folders, then the renames run; a kill at any point is finished by `recover_dir`
    on the next start, so the target path never stays empty and no `.old-*` folder is left behind. A staging
    folder named otherwise than `.NAME.partial-*` beside the target is first renamed so, after the journal is
    written: the journal then only ever names the swap's own folders (a kill before that rename leaves it as it
    was, to its writer)."""
    staging, target = Path(staging), Path(target)
    recover_dir(target)
    _fsync_tree(staging)
    tag = uuid.uuid4().hex[:8]
    own = staging if staging.parent == target.parent and _swap_names(target)[0].fullmatch(staging.name) else None
    record = {"staging": (own or target.with_name(f".{target.name}.partial-{tag}")).name}
    record["old"] = f".{target.name}.old-{tag}"
    atomic_write_json(_journal(target), record)
    fsync_dir(target.parent)
    if own is None:
        os.replace(staging, target.parent / record["staging"])
        fsync_dir(target.parent)
        if staging.parent != target.parent:
            fsync_dir(staging.parent)
    _finish_swap(target, target.parent / record["staging"], target.parent / record["old"])


def _finish_swap(target: Path, staging: Path, old: Path) -> None:
    """The journalled swap's remaining steps; each is skipped once done, so running it again after a kill is safe."""
    if staging.exists() and target.exists() and not old.exists():
        os.replace(target, old)
        fsync_dir(target.parent)
    if staging.exists() and not target.exists():
        os.replace(staging, target)
        fsync_dir(target.parent)
    if old.exists() and not target.exists():  # the new folder never arrived (its writer failed): restore the old
        os.replace(old, target)
        fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_journal(target))
    fsync_dir(target.parent)


def recover_dir(target: str | os.PathLike) -> None:
    """Finish a folder swap that a crash interrupted (see `replace_dir`); nothing to do when none was. Readers
    call it too, since a kill between the two renames leaves no folder at the target path. A journal naming
    anything but this swap's own folders beside the target is not ours: it is ignored, and nothing is moved."""
    target = Path(target)
    journal = _journal(target)
    if not target.parent.is_dir():
        return
    for entry in os.scandir(target.parent):  # a journal whose write was cut short: the swap never began
        if entry.name.startswith(f".{journal.name}.") and entry.name.endswith(".tmp"):
            os.unlink(entry.path)
    if not journal.is_file():
        return
    try:
        record = json.loads(journal.read_text(encoding="utf-8"))
        staging, old = record["staging"], record["old"]
    except (ValueError, KeyError, TypeError):  # written atomically, so never half; refuse to guess if mangled
        raise UserError(
            f"{journal}: unreadable folder-swap journal", f"check {target} by hand, then remove the journal"
        ) from None
    problem = _foreign_swap(target, staging, old)
    if problem:
        log.warning("ignoring the folder-swap journal %s: %s; nothing was moved or deleted", journal, problem)
        return
    _finish_swap(target, target.parent / staging, target.parent / old)


def _foreign_swap(target: Path, staging: Any, old: Any) -> str | None:
    """Why a journal's `staging` and `old` are not the folders `replace_dir` names for `target`, or None."""
    patterns = _swap_names(target)
    for key, value, pattern in (("staging", staging, patterns[0]), ("old", old, patterns[1])):
        if not isinstance(value, str) or not pattern.fullmatch(value):
            kind = "partial" if key == "staging" else "old"
            return f"its {key} {value!r} is not a plain .{target.name}.{kind}-* name beside {target.name}"
        if (target.parent / value).is_symlink():
            return f"its {key} {value} is a link"
    return None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read into one reused buffer with the GIL released (other threads keep running)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line with a single write call (O_APPEND makes concurrent appenders safe for short lines)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
    finally:
        os.close(fd)
