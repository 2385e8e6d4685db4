"""The model bundle: a folder with weights, preprocessing, resolved config, metrics and a checksummed manifest.

A bundle is written in a staging folder and swapped into place in one rename, so a kill leaves the old state or the
new one. Loading refuses a bundle whose files do not match their sha256 or whose manifest points outside it.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from modelyard.errors import BundleError, UserError
from modelyard.fsutil import atomic_write_json, atomic_write_text, recover_dir, replace_dir, sha256_file

MANIFEST = "modelyard.json"
FORMAT_VERSION = 1
UNCHECKED = {MANIFEST}
UNCHECKED_DIRS = {"checkpoints"}
RACY_NS = 100_000_000  # files changed this close to their hashing are hashed again (file times are coarse)
_early: dict[Path, Future[dict[str, tuple[tuple[int, ...], str]]]] = {}
_known: dict[Path, dict[str, tuple[tuple[int, ...], str]]] = {}  # digests `verify` computed, by bundle folder


def environment() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("modelyard", "torch", "transformers", "tokenizers", "scikit-learn", "onnxruntime"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


def _listing(root: Path) -> list[str]:
    """Every file (or link) of the bundle that the manifest must cover."""
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if (path.is_file() or path.is_symlink()) and rel.parts[0] not in UNCHECKED_DIRS and str(rel) not in UNCHECKED:
            out.append(rel.as_posix())
    return out


def _files(root: Path) -> dict[str, str]:
    return {rel: sha256_file(root / rel) for rel in _listing(root)}


def refuse_output_over(output: str | Path, source: Path, role: str) -> None:
    """Refuse an output that is `source` (the bundle a command reads: its `role`), lies inside it (the source
    would then hold unlisted files and refuse to load) or holds it (writing would delete it)."""
    out, src = Path(output).resolve(), Path(source).resolve()
    if out == src or out.is_relative_to(src) or src.is_relative_to(out):
        raise UserError(f"--output {output} would overwrite or sit inside the {role} ({src})", "choose another folder")


def refuse_foreign_output(output: str | Path) -> None:
    """Refuse an output that holds anything but a bundle or an unfinished run: writing a bundle replaces the whole
    folder, so `--output .` would delete the user's files. New, empty, bundle and checkpoint-only folders pass."""
    path = Path(output)
    recover_dir(path)  # a swap a crash interrupted leaves the old or the new bundle, never a gap
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and ((path / MANIFEST).is_file() or {p.name for p in path.iterdir()} <= UNCHECKED_DIRS):
        return
    raise UserError(
        f"--output {path} exists and is not a bundle (nor an unfinished run); not replacing it",
        "writing a bundle replaces the whole folder: choose a new or empty folder",
    )


def write_bundle(output: Path, write_files, manifest: dict[str, Any], keep_checkpoints: bool = False) -> Path:
    """Create the bundle at `output`: `write_files(staging)` writes the content and returns manifest extras."""
    output = Path(output).resolve()
    refuse_foreign_output(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        extras = write_files(staging) or {}
        sealed = {
            "format_version": FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "runtime": "torch",
            **manifest,
            **extras,
            "bundle_id": uuid.uuid4().hex,  # fresh even when `manifest` is copied from another bundle (an export)
            "versions": environment(),
            "files": _files(staging),
        }
        atomic_write_json(staging / MANIFEST, sealed)
        if keep_checkpoints and (output / "checkpoints").is_dir():
            shutil.move(str(output / "checkpoints"), str(staging / "checkpoints"))
        replace_dir(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output


def identity(manifest: dict[str, Any]) -> str:
    """What tells this bundle from another later written to the same folder: its id (bundles written before ids
    existed: the second it was written)."""
    return str(manifest.get("bundle_id") or manifest.get("created", ""))


def seal(directory: Path, manifest: dict[str, Any]) -> None:
    """Recompute the checksums of a bundle folder after adding files (e.g. an export) and rewrite its manifest."""
    atomic_write_json(directory / MANIFEST, {**manifest, "files": _files(directory)})


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


def _inside(root: Path, rel: str) -> Path:
    """Resolve a manifest entry, refusing absolute paths, '..' and symlinks that leave the bundle."""
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise BundleError(f"{root}: manifest names a path outside the bundle: {rel}")
    path = root / rel
    if path.is_symlink() or not path.resolve().is_relative_to(root.resolve()):
        raise BundleError(f"{root}: {rel} is a link leading outside the bundle; refusing to load it")
    return path


def read_manifest(directory: str | Path) -> dict[str, Any]:
    root = Path(directory)
    recover_dir(root)  # a kill while this bundle was swapped in: finish the swap first
    if not root.is_dir():
        raise BundleError(f"not a bundle: {root} is not a folder", "pass the folder `modelyard train` printed")
    path = root / MANIFEST
    if not path.is_file():
        hint = (
            "training did not finish; continue it with `modelyard train CONFIG --resume --output DIR`"
            if (root / "checkpoints").is_dir()
            else "pass the folder `modelyard train` printed"
        )
        raise BundleError(f"not a bundle: {root} has no {MANIFEST}", hint)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{path}: manifest is not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: the manifest is not a JSON object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: unsupported bundle format {manifest.get('format_version')!r}")
    return manifest


def _identity(path: Path) -> tuple[int, ...]:
    """What changes whenever a file's content can have changed (ctime cannot be set back by its owner)."""
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _hash_one(path: Path) -> tuple[tuple[int, ...] | None, str]:
    """sha256 of a file with its identity while read (any later write changes it); the identity is None, so the
    digest is not reused, for a file written shortly before (its next write could fall in the same file-time
    tick) or during hashing."""
    started = time.time_ns()
    before = _identity(path)
    digest = sha256_file(path)
    trusted = _identity(path) == before and max(before[3:]) < started - RACY_NS
    return (before if trusted else None), digest


def _hash_files(root: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """`_hash_one` of every file whose digest can be reused."""
    digests = {}
    for rel in _listing(root):
        path = root / rel
        if path.is_file() and not path.is_symlink():
            identity, digest = _hash_one(path)
            if identity is not None:
                digests[rel] = (identity, digest)
    return digests


def hash_early(directory: str | Path) -> None:
    """Start hashing a bundle's files in a background thread (hashing releases the GIL) while the caller imports
    its libraries; `verify` then uses these digests for files whose identity is unchanged and hashes the rest."""
    root = Path(directory).resolve()
    if root in _early or not (root / MANIFEST).is_file():
        return
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelyard-verify")
    _early[root] = executor.submit(_hash_files, root)
    executor.shutdown(wait=False)


def _early_digests(root: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    future = _early.pop(root.resolve(), None)
    if future is None:
        return {}
    try:
        return future.result()
    except OSError:
        return {}  # a file vanished or became unreadable: hash again below, where it gets its proper error


def verify(directory: str | Path) -> dict[str, Any]:
    """Read the manifest and check every file's sha256; any mismatch refuses the whole bundle. A file's digest is
    reused (the early one, or this process's last check) only while its identity is unchanged, so checking a
    bundle before serving it and again when the server loads it hashes it once."""
    root = Path(directory)
    manifest = read_manifest(root)
    extra = sorted(set(_listing(root)) - set(manifest.get("files", {})))
    if extra:
        raise BundleError(f"{root}: {extra[0]} is not listed in the manifest; refusing a bundle with unchecked files")
    known = _known.setdefault(root.resolve(), {})
    known.update(_early_digests(root))
    for rel, expected in manifest.get("files", {}).items():
        path = _inside(root, rel)
        if not path.is_file():
            raise BundleError(f"{root}: {rel} is missing (listed in the manifest)")
        identity, digest = known.get(rel, ((), ""))
        if identity != _identity(path):
            identity, digest = _hash_one(path)
            if identity is not None:
                known[rel] = (identity, digest)
        if digest != expected:
            raise BundleError(
                f"{root}: checksum mismatch for {rel}: the file was changed after the bundle was "
                "written; refusing to load it",
                "retrain or restore the original file",
            )
    return manifest
