"""Image datasets: class folders or a CSV/JSONL of image paths and labels, every image opened and checked.

A bad file (empty, corrupt, truncated, not an image, a decompression bomb, a symlink leaving the data folder)
is named and skipped, never fatal. What is kept is a DataFrame with columns `path` (absolute), `file`
(relative to the data folder, for reports and fingerprints), `label`, `sha256`, `width`, `height`, `mode`,
`grey`.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from modelyard.config import FormatOptions, SplitConfig
from modelyard.data.categories import category_text
from modelyard.data.readers import read_table, require_columns
from modelyard.data.splits import fingerprint, make_splits
from modelyard.errors import DataError
from modelyard.fsutil import escapes, sha256_file

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error to report, not a grey band to learn from
FORMAT_EXTENSIONS = {
    "JPEG": {".jpg", ".jpeg", ".jpe", ".jfif"},
    "PNG": {".png"},
    "GIF": {".gif"},
    "BMP": {".bmp", ".dib"},
    "WEBP": {".webp"},
    "TIFF": {".tif", ".tiff"},
    "PPM": {".ppm", ".pgm", ".pbm", ".pnm"},
}
# what a folder listing (predict --image, detection folders, report thumbnails) takes as an image: every name of a
# format Pillow reads here, as training and evaluation read them
EXTENSIONS = frozenset().union(*FORMAT_EXTENSIONS.values())
VALIDATION_DIRS = ("val", "validation", "valid", "dev")
MAX_NAMED = 20
QUARTER_TURNS = (5, 6, 7, 8)  # EXIF orientations that turn the image a quarter: width and height swap
MAX_INPUT_SIDE = 2048  # predicted images are shrunk to this: several times what any model here reads


@dataclass
class ImageReport:
    """What was read, what was skipped and why (the first MAX_NAMED files per reason are named)."""

    files: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    skipped_files: list[str] = field(default_factory=list)
    extension_mismatch: list[str] = field(default_factory=list)
    modes: Counter = field(default_factory=Counter)

    def skip(self, name: str, reason: str) -> None:
        self.skipped[reason.split(":")[0]] += 1
        if len(self.skipped_files) < MAX_NAMED * 4:
            self.skipped_files.append(f"{name}: {reason}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "kept": self.kept,
            "skipped": dict(self.skipped),
            "skipped_files": self.skipped_files,
            "extension_mismatch": self.extension_mismatch[:MAX_NAMED],
            "modes": dict(self.modes),
        }


def _to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float greyscale image as 8-bit 'L' (Pillow's own conversion clips at 255: all white).
    16-bit values scale by 1/257; 32-bit and float ones, whose range the format leaves open, keep 0..255 or
    0..65535 (or 0..1 for floats) when they lie within it and otherwise stretch their own min..max."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and 255 < high <= 65535):
        values = values / 257
    elif image.mode == "F" and low >= 0 and high <= 1:
        values = values * 255
    elif low < 0 or high > 255:
        values = (values - low) * 255 / ((high - low) or 1)
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Greyscale (8 to 32 bits, float), palette, CMYK and alpha images become RGB; transparency is composited over
    white."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        image = _to_8bit(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def upright(image: Image.Image) -> Image.Image:
    """The (loaded) image turned as viewers show it, in place: a phone photo stored sideways with an EXIF
    orientation is trained on, predicted, explained and measured as the upright picture its owner sees."""
    ImageOps.exif_transpose(image, in_place=True)
    return image


def exif_orientation(path: Path) -> int:
    """The EXIF orientation (1 to 8; 1 = stored upright) of an image file, from its header; a value outside 1 to 8
    is read as 1, as Pillow's `exif_transpose` and viewers read it (they leave such an image as stored)."""
    with Image.open(path) as image:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def open_checked(source: Path | bytes, draft_side: int | None = None) -> Image.Image:
    """Open and fully decode one image, upright, turning every Pillow failure into ValueError with a short
    reason; `draft_side` lets a JPEG decode at a reduced scale that still covers it. `info["source_size"]`: the
    upright size of the image as stored, before any such reduction."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            stored = image.size
            if draft_side and image.format == "JPEG":
                image.draft("RGB", (draft_side, draft_side))
            image.load()
            turned = image.getexif().get(ExifTags.Base.Orientation, 1) in QUARTER_TURNS  # swaps the sides
            upright(image)
            image.info["source_size"] = stored[::-1] if turned else stored
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(
            f"too large: over Pillow's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS} pixels"
        ) from None
    except UnidentifiedImageError:
        raise ValueError("not an image: Pillow cannot identify the format") from None
    except OSError as err:
        text = str(err)
        reason = "truncated" if "truncated" in text.lower() else "corrupt"
        raise ValueError(f"{reason}: {text}") from None
    except (SyntaxError, ValueError, EOFError, IndexError, struct.error) as err:
        raise ValueError(f"corrupt: {type(err).__name__}: {err}") from None
    return image


def decode_image(data: bytes) -> Image.Image:
    """Bytes from a request or file -> an upright RGB image at most MAX_INPUT_SIDE pixels on its longer side, with
    `info["source_size"]` its size as sent (detections are given in it); ValueError with a plain reason when they
    are not one. Models read a few hundred pixels, while a queue of full-size decodes of 80-megapixel images held
    half a gigabyte each."""
    if not data:
        raise ValueError("empty: no image bytes")
    image = open_checked(data, draft_side=MAX_INPUT_SIDE)
    source = image.info["source_size"]
    image = to_rgb(image)
    if max(image.size) > MAX_INPUT_SIDE:
        image.thumbnail((MAX_INPUT_SIDE, MAX_INPUT_SIDE), Image.Resampling.BICUBIC)
    image.info["source_size"] = source
    return image


def load_image(path: str | Path, size_hint: int | None = None) -> Image.Image:
    """Read an image file as upright RGB; `size_hint` lets a large JPEG decode at a reduced scale (much faster)."""
    with Image.open(path) as image:
        if size_hint and image.format == "JPEG":
            image.draft("RGB", (size_hint, size_hint))
        image.load()
        return to_rgb(upright(image))


def check_file(path: Path, root: Path) -> dict[str, Any]:
    """Everything `validate` needs about one file; raises ValueError with the reason to skip it."""
    if (outside := escapes(path, root)) is not None:
        raise ValueError(f"outside the data folder: a symlink or '..' leads to {outside}")
    resolved = path.resolve()
    if not resolved.is_file():
        raise ValueError("missing: no such file")
    if resolved.stat().st_size == 0:
        raise ValueError("empty: 0 bytes")
    image = open_checked(resolved)
    fmt = image.format or ""
    thumb = to_rgb(image).resize((16, 16))
    r, g, b = thumb.split()
    grey = image.mode in ("1", "L", "LA", "I", "I;16", "F") or (r.tobytes() == g.tobytes() == b.tobytes())
    return {
        "sha256": sha256_file(resolved),
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "format": fmt,
        "grey": grey,
    }


def verify(frame: pd.DataFrame, root: Path, report: ImageReport, workers: int = 2) -> pd.DataFrame:
    """Open every listed image (two threads: Pillow decodes without the GIL); keep the good ones."""
    report.files += len(frame)
    paths = [Path(p) for p in frame["path"]]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: _try_check(p, root), paths))
    rows, keep = [], []
    for (_, row), result in zip(frame.iterrows(), results, strict=True):
        if isinstance(result, str):
            report.skip(row["file"], result)
            continue
        suffix = Path(row["file"]).suffix.lower()
        if suffix and suffix not in FORMAT_EXTENSIONS.get(result["format"], {suffix}):
            report.extension_mismatch.append(f"{row['file']}: named {suffix} but the content is {result['format']}")
        report.modes[result["mode"]] += 1
        rows.append(result)
        keep.append(row)
    report.kept += len(keep)
    columns = ["sha256", "width", "height", "mode", "format", "grey"]
    kept = pd.DataFrame(keep, columns=frame.columns).reset_index(drop=True)
    return pd.concat([kept, pd.DataFrame(rows, columns=columns)], axis=1)


def _try_check(path: Path, root: Path) -> dict[str, Any] | str:
    try:
        return check_file(path, root)
    except ValueError as err:
        return str(err)
    except OSError as err:
        return f"unreadable: {err.strerror or err}"


def list_class_folders(root: Path) -> pd.DataFrame:
    """`root/<class>/<file>` -> rows (path, file, label); hidden and loose files in `root` are ignored."""
    rows = []
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(
            f"{root}: no class subfolders",
            "put the images of each class in their own subfolder, e.g. train/cats/1.jpg, train/dogs/2.jpg",
        )
    for folder in classes:
        for path in sorted(folder.rglob("*")):
            if path.name.startswith(".") or path.is_dir():
                continue
            rows.append(
                {
                    "path": str(path.absolute()),
                    "file": path.relative_to(root).as_posix(),
                    "label": folder.name,
                }
            )
    return pd.DataFrame(rows, columns=["path", "file", "label"])


def split_folders(root: Path) -> dict[str, Path]:
    """A folder with `train/` (maybe `val/`, `validation/`, `test/`) names its splits; else it is train."""
    if not (root / "train").is_dir():
        return {"train": root}
    found = {"train": root / "train"}
    for name in VALIDATION_DIRS:
        if (root / name).is_dir():
            found["validation"] = root / name
            break
    if (root / "test").is_dir():
        found["test"] = root / "test"
    return found


def list_table(
    path: Path, image_column: str, label_column: str, fmt: FormatOptions, max_rows: int | None
) -> pd.DataFrame:
    """A CSV/JSONL of image paths (relative to the file's folder) and labels -> rows (path, file, label)."""
    frame, _ = read_table(path, fmt, max_rows)
    require_columns(frame, {"image_column": image_column, "label_column": label_column}, str(path))
    labels = frame[label_column].map(category_text)  # a blank label is no label
    kept = frame[image_column].notna() & labels.notna()
    frame, labels = frame[kept], labels[kept]
    base = path.parent
    rows = []
    for name, label in zip(frame[image_column].astype(str), labels, strict=True):
        given = Path(name.strip()).expanduser()
        full = given if given.is_absolute() else base / given
        rows.append({"path": str(full.absolute()), "file": given.as_posix(), "label": label})
    return pd.DataFrame(rows, columns=["path", "file", "label"])


def paths_in(frame: pd.DataFrame, column: str) -> list[str]:
    """A table's column of file paths, the relative ones starting at the table's folder (`frame.attrs["source"]`,
    as in training data; a DataFrame given in Python: the current folder)."""
    base = Path(frame.attrs.get("source", "-")).parent
    return [str(base / Path(name.strip()).expanduser()) for name in frame[column].astype(str)]


def read_source(
    location: str, image_column: str, label_column: str, fmt: FormatOptions, max_rows: int | None
) -> tuple[dict[str, pd.DataFrame], Path]:
    """One config path -> {split: listing} and the data folder that symlinks must stay inside."""
    path = Path(location)
    if not path.exists():
        raise DataError(f"data path not found: {path}", "image data is a folder of class subfolders or a CSV/JSONL")
    if path.is_file():
        return {"train": list_table(path, image_column, label_column, fmt, max_rows)}, path.parent
    return {name: list_class_folders(folder) for name, folder in split_folders(path).items()}, path


def size_summary(frame: pd.DataFrame) -> dict[str, Any]:
    if frame.empty:
        return {}
    short = frame[["width", "height"]].min(axis=1)
    return {
        "width": {
            "min": int(frame.width.min()),
            "median": int(frame.width.median()),
            "max": int(frame.width.max()),
        },
        "height": {
            "min": int(frame.height.min()),
            "median": int(frame.height.median()),
            "max": int(frame.height.max()),
        },
        "median_short_side": int(short.median()),
        "grey_fraction": round(float(frame.grey.mean()), 3),
    }


def load_splits(
    train: str,
    validation: str | None,
    test: str | None,
    split: SplitConfig,
    image_column: str,
    label_column: str,
    fmt: FormatOptions,
    max_rows: int | None,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any], list[str]]:
    """Read and verify every image of the configured sources; carve missing splits from train (seeded)."""
    listings, root = read_source(train, image_column, label_column, fmt, max_rows)
    roots = {name: root for name in listings}
    for name, location in (("validation", validation), ("test", test)):
        if location:
            given, given_root = read_source(location, image_column, label_column, fmt, max_rows)
            listings[name], roots[name] = given["train"], given_root
    report = ImageReport()
    checked: dict[str, pd.DataFrame] = {}
    files: dict[str, dict[str, Any]] = {}
    sources = {"train": train, "validation": validation, "test": test}
    for name, listing in listings.items():
        if max_rows is not None and len(listing) > max_rows:
            listing = listing.sample(n=max_rows, random_state=split.seed).sort_index()
        before = dict(report.skipped)
        checked[name] = verify(listing, roots[name], report)
        skipped = {k: v - before.get(k, 0) for k, v in report.skipped.items() if v > before.get(k, 0)}
        files[name] = {
            "read": {"file": str(sources[name] or roots[name])},
            "summary": f"{len(listing)} files, {len(checked[name])} usable images"
            + (f", skipped {skipped}" if skipped else ""),
        }
    if checked["train"].empty:
        raise DataError(
            f"{train}: no readable images in the training data{_why_none(report)}",
            "see the skipped files in the data report (`modelyard validate CONFIG`)",
        )
    splits, notes = make_splits(checked["train"], checked.get("validation"), checked.get("test"), split, "label")
    unknown = {n: sorted(set(f.label) - set(splits["train"].label)) for n, f in splits.items() if n != "train"}
    warnings_ = [f"{n}: labels never seen in train: {', '.join(u[:10])}" for n, u in unknown.items() if u]
    summary = {
        "files": files,
        "images": report.as_dict(),
        "splits": {
            n: {"images": len(f), "classes": f.label.value_counts().sort_index().to_dict()} for n, f in splits.items()
        },
        "sizes": size_summary(checked["train"]),
        "split_notes": notes,
    }
    if report.skipped:
        total, named = sum(report.skipped.values()), report.skipped_files[:MAX_NAMED]
        more = f"; and {total - len(named)} more (see images.skipped_files in the report)" if total > len(named) else ""
        warnings_.append(f"skipped {total} unusable files {dict(report.skipped)}: {'; '.join(named)}{more}")
    if report.extension_mismatch:
        warnings_.append(
            f"{len(report.extension_mismatch)} files whose extension does not match their content "
            "(kept, read by content)"
        )
    return splits, summary, warnings_


def _why_none(report: ImageReport) -> str:
    """Why a source gave no usable image: how many files were skipped and the first with its reason."""
    if not report.skipped_files:
        return ""
    return f": all {report.files} files were skipped, e.g. {report.skipped_files[0]}"


def _skip_note(source: str, report: ImageReport) -> str:
    total, named = sum(report.skipped.values()), report.skipped_files[:MAX_NAMED]
    more = f"; and {total - len(named)} more" if total > len(named) else ""
    return f"{source}: skipped {total} unusable files {dict(report.skipped)}: {'; '.join(named)}{more}"


def read_labelled(
    location: str, image_column: str, label_column: str, fmt: FormatOptions
) -> tuple[pd.DataFrame, list[str]]:
    """A labelled evaluation folder or CSV/JSONL, every image checked as training checks it, nothing split off:
    (usable rows, notes naming the split subfolders read and the skipped files). A DataError names the file when
    no image is usable."""
    listings, root = read_source(location, image_column, label_column, fmt, None)
    listing, notes = listings["train"], []
    if len(listings) > 1:  # train/ with val/ or test/ beside it: every labelled image counts, not train/'s alone
        folders = split_folders(root)
        listing = pd.concat([_in_split(listings[n], folders[n].name) for n in listings], ignore_index=True)
        read = ", ".join(f"{folders[n].name}/ ({len(listings[n])} files)" for n in listings)
        notes.append(f"{location}: a folder of split subfolders; evaluated every image of {read}")
    report = ImageReport()
    rows = verify(listing, root, report)
    if rows.empty:
        raise DataError(
            f"{location}: no readable images to evaluate{_why_none(report)}",
            "list each image by a path inside this file's folder (no '..' or symlink out of it) or by its absolute "
            "path",
        )
    return rows, notes + ([_skip_note(location, report)] if report.skipped else [])


def _in_split(listing: pd.DataFrame, split: str) -> pd.DataFrame:
    """A split subfolder's listing with its files named from the data folder (train/ants/1.jpg), so that the
    same name in two splits stays two files in the reports."""
    return listing.assign(file=split + "/" + listing["file"])


def fingerprints(splits: dict[str, pd.DataFrame]) -> dict[str, dict[str, Any]]:
    """sha256 over the sorted (relative path, file sha256, label) rows of each split."""
    return {name: fingerprint(frame.sort_values("file"), ["file", "sha256", "label"]) for name, frame in splits.items()}
