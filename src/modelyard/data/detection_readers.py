"""Object-detection annotations: Pascal-VOC XML, COCO JSON and YOLO txt, one reader each, and the checks
`validate` runs on them.

Every reader returns one `ImageBoxes` per image: its file, size and boxes as absolute pixel corners
[x1, y1, x2, y2] with class names. `check_boxes` then names every box outside its image, every zero-area box,
every unknown class and every image without boxes (the first three are errors, the last a warning: such images
are kept as background-only examples, as YOLO and COCO training do).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from modelyard.data.images import EXTENSIONS, QUARTER_TURNS, exif_orientation, open_checked
from modelyard.errors import DataError
from modelyard.fsutil import sha256_file

EDGE_TOLERANCE = 1.0  # pixels a box may reach past the image edge (VOC's 1-based corners reach W or W+1)
MAX_NAMED = 10


@dataclass
class ImageBoxes:
    """One image and its boxes, in absolute pixel corners."""

    path: Path
    width: int
    height: int
    boxes: list[list[float]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    source: str = ""  # the annotation file (and entry) these boxes came from, for error messages


def _int_text(node: ET.Element, tag: str, where: str) -> float:
    found = node.find(tag)
    if found is None or found.text is None:
        raise DataError(f"{where}: missing <{tag}>")
    try:
        return float(found.text.strip())
    except ValueError:
        raise DataError(f"{where}: <{tag}> is '{found.text.strip()}', not a number") from None


def _find_image(name: str, candidates: list[Path]) -> Path:
    for folder in candidates:
        path = folder / name
        if path.is_file():
            return path
    return candidates[0] / name


def read_voc(folder: Path, images: Path | None) -> list[ImageBoxes]:
    """Pascal-VOC: one XML per image (`<filename>`, `<size>`, `<object><name><bndbox>`); images in `images`,
    else the `images/` folder beside the annotations, else the annotations' own folder."""
    xml_dir = folder / "annotations" if (folder / "annotations").is_dir() else folder
    files = sorted(xml_dir.glob("*.xml"))
    if not files:
        raise DataError(f"{folder}: no Pascal-VOC .xml annotation files found")
    candidates = [images] if images else [folder / "images", xml_dir.parent / "images", xml_dir]
    out = []
    for xml in files:
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError as err:
            raise DataError(f"{xml}: not valid XML ({err})") from None
        name = (root.findtext("filename") or f"{xml.stem}.jpg").strip()
        size = root.find("size")
        width = int(_int_text(size, "width", str(xml))) if size is not None else 0
        height = int(_int_text(size, "height", str(xml))) if size is not None else 0
        item = ImageBoxes(_find_image(name, candidates), width, height, source=str(xml))
        for index, obj in enumerate(root.iter("object")):
            where = f"{xml}: object {index}"
            box = obj.find("bndbox")
            if box is None:
                raise DataError(f"{where}: no <bndbox>")
            item.boxes.append([_int_text(box, tag, where) for tag in ("xmin", "ymin", "xmax", "ymax")])
            item.labels.append((obj.findtext("name") or "").strip())
        out.append(item)
    return out


def read_coco(path: Path, images: Path | None) -> list[ImageBoxes]:
    """COCO JSON: `images` (id, file_name, width, height), `annotations` (image_id, category_id, bbox as
    [x, y, width, height]) and `categories` (id, name); images in `images`, else beside the JSON file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        categories = {c["id"]: str(c["name"]) for c in doc.get("categories", [])}
        root = images or path.parent
        by_id = {
            im["id"]: ImageBoxes(
                _find_image(im["file_name"], [root, root / "images"]),
                int(im.get("width", 0)),
                int(im.get("height", 0)),
                source=f"{path}: image id {im['id']}",
            )
            for im in doc["images"]
        }
        for index, ann in enumerate(doc.get("annotations", [])):
            where = f"{path}: annotations[{index}]"
            if ann["image_id"] not in by_id:
                raise DataError(f"{where}: image_id {ann['image_id']} is not among the file's images")
            x, y, w, h = (float(v) for v in ann["bbox"])
            by_id[ann["image_id"]].boxes.append([x, y, x + w, y + h])
            by_id[ann["image_id"]].labels.append(categories.get(ann["category_id"], str(ann["category_id"])))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid COCO JSON ({err})") from None
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path}: not COCO detection JSON (missing or bad field {err})") from None
    return list(by_id.values())


def yolo_class_names(folder: Path) -> list[str] | None:
    """YOLO's class names: `classes.txt` (one a line) or `names` in `data.yaml`, when the folder has either."""
    if (folder / "classes.txt").is_file():
        return [n.strip() for n in (folder / "classes.txt").read_text(encoding="utf-8").splitlines() if n.strip()]
    if (folder / "data.yaml").is_file():
        import yaml

        names = (yaml.safe_load((folder / "data.yaml").read_text(encoding="utf-8")) or {}).get("names")
        return list(names.values()) if isinstance(names, dict) else names
    return None


def read_yolo(folder: Path, images: Path | None, names: list[str] | None) -> list[ImageBoxes]:
    """YOLO: `images/` and `labels/` (one `class cx cy w h` line per box, normalised to 0..1; a missing label file
    means no boxes); class names from `names`, classes.txt or data.yaml."""
    image_dir, label_dir = images or folder / "images", folder / "labels"
    names = names or yolo_class_names(folder)
    if not names:
        raise DataError(f"{folder}: YOLO labels need class names", "add classes.txt, or set data.classes")
    files = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in EXTENSIONS) if image_dir.is_dir() else []
    if not files:
        raise DataError(f"{image_dir}: no images found for the YOLO labels in {label_dir}")
    out = []
    for image in files:
        try:
            width, height = image_size(image)
        except ValueError:  # `check_boxes` skips it and says why
            out.append(ImageBoxes(image, 0, 0, source=str(label_dir / f"{image.stem}.txt")))
            continue
        label_file = label_dir / f"{image.stem}.txt"
        item = ImageBoxes(image, width, height, source=str(label_file))
        lines = label_file.read_text(encoding="utf-8").splitlines() if label_file.is_file() else []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                cls, cx, cy, w, h = int(parts[0]), *(float(v) for v in parts[1:5])
            except (ValueError, IndexError):
                raise DataError(f"{label_file}:{number}: expected 'class cx cy w h', got '{line.strip()}'") from None
            item.boxes.append(
                [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
            )
            item.labels.append(names[cls] if 0 <= cls < len(names) else f"class {cls}")
        out.append(item)
    return out


def read_annotations(location: Path, images: Path | None, names: list[str] | None) -> list[ImageBoxes]:
    """The reader a location asks for: a .json file is COCO; a folder with labels/ is YOLO; XML files are VOC."""
    if not location.exists():
        raise DataError(f"{location}: no such file or folder")
    if location.is_file() and location.suffix.lower() == ".json":
        return read_coco(location, images)
    if location.is_dir() and (location / "labels").is_dir():
        return read_yolo(location, images, names)
    if location.is_dir():
        return read_voc(location, images)
    raise DataError(
        f"{location}: not a detection dataset",
        "give a COCO .json file, a folder of Pascal-VOC .xml files, or a YOLO folder with images/ and labels/",
    )


def pick(items: list[ImageBoxes], listing: Path) -> list[ImageBoxes]:
    """The images a split file names (.csv with a `filename` column, or .txt with one file name a line)."""
    if listing.suffix.lower() == ".csv":
        frame = pd.read_csv(listing)
        if "filename" not in frame.columns:
            raise DataError(f"{listing}: no 'filename' column; it has {', '.join(map(str, frame.columns))}")
        wanted = list(dict.fromkeys(frame["filename"].astype(str)))
    else:
        wanted = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_name = {item.path.name: item for item in items}
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise DataError(f"{listing}: {len(missing)} listed images have no annotations: {', '.join(missing[:5])}")
    return [by_name[name] for name in wanted]


def _named(problems: list[str]) -> str:
    more = f"; and {len(problems) - MAX_NAMED} more" if len(problems) > MAX_NAMED else ""
    return "; ".join(problems[:MAX_NAMED]) + more


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file as shown (EXIF orientation applied), decoded whole; ValueError with the
    reason when it is not a usable one."""
    if path.stat().st_size == 0:
        raise ValueError("empty: 0 bytes")
    with open_checked(path) as image:
        return image.size


def _turn_point(x: float, y: float, orientation: int, width: int, height: int) -> tuple[float, float]:
    """A point of the stored (width x height) pixels in the upright image EXIF `orientation` makes of them."""
    return {
        2: (width - x, y),
        3: (width - x, height - y),
        4: (x, height - y),
        5: (y, x),
        6: (height - y, x),
        7: (height - y, width - x),
        8: (y, width - x),
    }.get(orientation, (x, y))


def _turn_boxes(item: ImageBoxes, orientation: int) -> str:
    """Boxes drawn on the stored pixels of a sideways photo (the annotation declares the stored size) turned with
    the photo, into the upright image's pixels; what changed."""
    turned = []
    for x1, y1, x2, y2 in item.boxes:
        (ax, ay), (bx, by) = (_turn_point(x, y, orientation, item.width, item.height) for x, y in ((x1, y1), (x2, y2)))
        turned.append([min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)])
    item.boxes = turned
    return f" (turned from the stored {item.width}x{item.height} by EXIF orientation {orientation})"


def _scale_boxes(item: ImageBoxes, size: tuple[int, int]) -> str:
    """Boxes annotated on an image of another size (a resized image whose annotation was not updated) scaled to
    the decoded image, so that training, evaluation and detections all work in its own pixels; what changed."""
    (width, height), declared = size, f"{item.width}x{item.height}"
    sx, sy = width / item.width, height / item.height
    item.boxes = [[x1 * sx, y1 * sy, x2 * sx, y2 * sy] for x1, y1, x2, y2 in item.boxes]
    return f" (scaled from the declared {declared})"


def check_boxes(items: list[ImageBoxes], classes: list[str] | None, split: str) -> tuple[list[ImageBoxes], list[str]]:
    """The images that decode, and warnings naming the ones skipped (empty, truncated, not an image), those
    without any box (kept: they teach the detector what is background) and those whose annotation declares another
    size than the image (boxes scaled to it); a DataError names boxes outside their image, zero-area or
    not-a-number boxes, unknown classes and missing image files."""
    problems, empty, skipped, kept, rescaled, turned = [], [], [], [], [], []
    for item in items:
        if not item.path.is_file():
            problems.append(f"{item.source}: image file {item.path} not found")
            continue
        try:
            size = image_size(item.path)
        except ValueError as why:
            skipped.append(f"{item.path.name} ({why})")
            continue
        scaled = ""
        if item.width and item.height and (item.width, item.height) != size:
            orientation = exif_orientation(item.path)
            if orientation in QUARTER_TURNS and (item.height, item.width) == size:
                scaled = _turn_boxes(item, orientation)
                turned.append(f"{item.source} ({item.path.name}, orientation {orientation})")
            else:
                scaled = _scale_boxes(item, size)
                rescaled.append(f"{item.source} ({item.width}x{item.height}, image {size[0]}x{size[1]})")
        item.width, item.height = size
        kept.append(item)
        if not item.boxes:
            empty.append(item.path.name)
        for index, (box, label) in enumerate(zip(item.boxes, item.labels, strict=True)):
            x1, y1, x2, y2 = box
            where = f"{item.source}: box {index} [{x1:g}, {y1:g}, {x2:g}, {y2:g}]{scaled} of {item.path.name}"
            if not all(math.isfinite(v) for v in box):
                problems.append(f"{where}: a coordinate is not a number")
            elif x2 <= x1 or y2 <= y1:
                problems.append(f"{where}: zero area")
            elif (
                x1 < -EDGE_TOLERANCE
                or y1 < -EDGE_TOLERANCE
                or x2 > item.width + EDGE_TOLERANCE
                or (y2 > item.height + EDGE_TOLERANCE)
            ):
                problems.append(f"{where}: outside the {item.width}x{item.height} image")
            if classes is not None and label not in classes:
                problems.append(f"{where}: unknown class '{label}' (data.classes: {', '.join(classes)})")
    if problems:
        raise DataError(
            f"{split} annotations: {len(problems)} bad boxes: {_named(problems)}",
            "fix those boxes in the annotation files (a class that belongs: add it to data.classes)",
        )
    warnings = [f"{split}: {len(skipped)} unreadable images skipped: {_named(skipped)}"] if skipped else []
    if rescaled:
        warnings.append(
            f"{split}: {len(rescaled)} annotations declare another size than their image; their boxes were scaled "
            f"to the image: {_named(rescaled)}"
        )
    if turned:
        warnings.append(
            f"{split}: {len(turned)} annotations declare the stored size of a photo that EXIF turns; their boxes "
            f"were turned with it to the upright image: {_named(turned)}"
        )
    if empty:
        warnings.append(f"{split}: {len(empty)} images without annotations (kept as background): {_named(empty)}")
    return kept, warnings


def to_frame(items: list[ImageBoxes], root: Path) -> pd.DataFrame:
    """One row per image: path, file (relative, for reports), width, height, boxes (clipped), labels, sha256."""
    rows: list[dict[str, Any]] = []
    for item in items:
        boxes = [
            [max(0.0, x1), max(0.0, y1), min(float(item.width), x2), min(float(item.height), y2)]
            for x1, y1, x2, y2 in item.boxes
        ]
        try:
            file = str(item.path.resolve().relative_to(root.resolve()))
        except ValueError:
            file = item.path.name
        rows.append(
            {
                "path": str(item.path.resolve()),
                "file": file,
                "width": item.width,
                "height": item.height,
                "boxes": boxes,
                "labels": list(item.labels),
                "sha256": sha256_file(item.path),
            }
        )
    columns = ["path", "file", "width", "height", "boxes", "labels", "sha256"]
    return pd.DataFrame(rows, columns=columns)
