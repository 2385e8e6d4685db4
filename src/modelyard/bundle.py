"""The model bundle: a folder with weights, preprocessing, resolved config, metrics and a checksummed manifest.

A bundle is written in a staging folder and swapped into place in one rename, so a kill leaves the old state or the
new one. Loading refuses a bundle whose files do not match their sha256 or whose manifest points outside it.
"""

from __future__ import annotations

import json
import platform
import shutil
import uuid
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from modelyard.errors import BundleError
from modelyard.fsutil import atomic_write_json, atomic_write_text, replace_dir, sha256_file

MANIFEST = "modelyard.json"
FORMAT_VERSION = 1
UNCHECKED = {MANIFEST}
UNCHECKED_DIRS = {"checkpoints"}


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


def write_bundle(output: Path, write_files, manifest: dict[str, Any], keep_checkpoints: bool = False) -> Path:
    """Create the bundle at `output`: `write_files(staging)` writes the content and returns manifest extras."""
    output = Path(output).resolve()
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
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: unsupported bundle format {manifest.get('format_version')!r}")
    return manifest


def verify(directory: str | Path) -> dict[str, Any]:
    """Read the manifest and check every file's sha256; any mismatch refuses the whole bundle."""
    root = Path(directory)
    manifest = read_manifest(root)
    extra = sorted(set(_listing(root)) - set(manifest.get("files", {})))
    if extra:
        raise BundleError(f"{root}: {extra[0]} is not listed in the manifest; refusing a bundle with unchecked files")
    for rel, expected in manifest.get("files", {}).items():
        path = _inside(root, rel)
        if not path.is_file():
            raise BundleError(f"{root}: {rel} is missing (listed in the manifest)")
        if sha256_file(path) != expected:
            raise BundleError(
                f"{root}: checksum mismatch for {rel}: the file was changed after the bundle was "
                "written; refusing to load it",
                "retrain or restore the original file",
            )
    return manifest
