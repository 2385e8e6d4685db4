"""Report sections for detectors: mAP per split, AP per class, the class confusion of matched boxes, and the
worst test images with their true (green) and predicted (red) boxes drawn."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import ImageDraw

from modelyard.data.images import load_image
from modelyard.evaluation.sections import Figure, ReportContext, Section, Table, Text, fmt, provides

WORST = 8
THUMB = 360  # pixels on the long side of each drawn image


def _is_detector(model: Any) -> bool:
    return hasattr(model.learner, "worst_images")


def _drawn(item: dict[str, Any]) -> str:
    image = load_image(item["path"])
    pen = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 150))
    for box in item["truth"]:
        pen.rectangle(box["box"], outline=(22, 163, 74), width=width)
    for det in item["predicted"]:
        pen.rectangle(det["box"], outline=(220, 38, 38), width=width)
        pen.text(
            (det["box"][0] + width, det["box"][1] + width), f"{det['label']} {det['score']:.2f}", fill=(255, 255, 0)
        )
    image.thumbnail((THUMB, THUMB))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@provides("detection", _is_detector, exclusive=True)
def detection_sections(context: ReportContext) -> list[Section]:
    metrics = context.metrics
    rows = [
        [split, fmt(m.get("map50")), fmt(m.get("map50_95")), fmt(m.get("images")), fmt(m.get("boxes"))]
        for split in ("validation", "test")
        if (m := metrics.get(split))
    ]
    test = metrics.get("test") or {}
    blocks: list[Any] = [Table(["split", "mAP@0.5", "mAP@0.5:0.95", "images", "boxes"], rows, "COCO mAP (pycocotools)")]
    if test.get("per_class"):
        per_class = [[name, fmt(v["ap50"]), fmt(v["ap50_95"])] for name, v in test["per_class"].items()]
        blocks.append(Table(["class", "AP@0.5", "AP@0.5:0.95"], per_class, "test split"))
    if test.get("confusion"):
        table = test["confusion"]
        blocks.append(
            Table(
                ["true \\ predicted", *table["labels"]],
                [[name, *row] for name, row in zip(table["labels"], table["matrix"], strict=True)],
                f"boxes scoring >= {table['min_score']} matched at IoU >= 0.5; background row: false alarms, "
                "background column: missed objects",
            )
        )
    sections = [Section("detection", "Detection quality", blocks)]
    split = context.prepared.splits["test"] if context.prepared is not None else []
    if not len(split):
        return [*sections, Section("worst", "Worst test images", [Text("no test split", tone="note")])]
    worst = context.model.learner.worst_images(split, WORST)
    figures = [
        Figure(
            _drawn(item),
            f"{item['file']}: F1 {item['f1']:.2f}, {len(item['truth'])} true, {len(item['predicted'])} predicted",
        )
        for item in worst
    ]
    note = Text("green: true boxes; red: predicted boxes with their scores (at the model's min_score)", tone="note")
    return [*sections, Section("worst", "Worst test images", [note, *figures])]
