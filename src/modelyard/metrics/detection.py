"""Detection metrics: COCO mAP@0.5 and mAP@0.5:0.95 (pycocotools, the reference implementation), AP per class,
and a class confusion table of matched boxes.

Boxes are [x1, y1, x2, y2] in pixels; predictions carry scores. Classes are indices into `labels`.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

CONFUSION_SCORE = 0.3  # predictions at least this confident count in the confusion table
BACKGROUND = "background"


def _coco(truths: list[dict[str, np.ndarray]], labels: list[str]) -> COCO:
    annotations = []
    for image_id, truth in enumerate(truths):
        for box, cls in zip(np.asarray(truth["boxes"]).reshape(-1, 4), truth["classes"], strict=True):
            x1, y1, x2, y2 = map(float, box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(cls),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    coco = COCO()
    coco.dataset = {
        "images": [{"id": i} for i in range(len(truths))],
        "annotations": annotations,
        "categories": [{"id": i, "name": name} for i, name in enumerate(labels)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) -> (N, M) intersection over union."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def confusion(truths: list[dict[str, np.ndarray]], preds: list[dict[str, np.ndarray]], labels: list[str]) -> dict:
    """Rows true class (or background: a false alarm), columns predicted class (or background: a miss); each
    confident prediction greedily matched, most confident first, to an unmatched true box of IoU >= 0.5."""
    names = [*labels, BACKGROUND]
    table = np.zeros((len(names), len(names)), dtype=int)
    for truth, pred in zip(truths, preds, strict=True):
        gt_boxes, gt_cls = np.asarray(truth["boxes"]).reshape(-1, 4), np.asarray(truth["classes"], dtype=int)
        keep = np.asarray(pred["scores"]) >= CONFUSION_SCORE
        boxes = np.asarray(pred["boxes"]).reshape(-1, 4)[keep]
        cls = np.asarray(pred["classes"], dtype=int)[keep]
        order = np.argsort(-np.asarray(pred["scores"])[keep])
        iou = _iou(boxes, gt_boxes) if len(boxes) and len(gt_boxes) else np.zeros((len(boxes), len(gt_boxes)))
        taken = np.zeros(len(gt_boxes), dtype=bool)
        for p in order:
            candidates = np.where(~taken & (iou[p] >= 0.5))[0] if len(gt_boxes) else []
            if len(candidates):
                g = candidates[np.argmax(iou[p, candidates])]
                taken[g] = True
                table[gt_cls[g], cls[p]] += 1
            else:
                table[-1, cls[p]] += 1
        for g in np.where(~taken)[0]:
            table[gt_cls[g], -1] += 1
    return {"labels": names, "matrix": table.tolist(), "min_score": CONFUSION_SCORE}


def detection_metrics(
    truths: list[dict[str, np.ndarray]], preds: list[dict[str, np.ndarray]], labels: list[str]
) -> dict[str, Any]:
    """`map50`, `map50_95`, `per_class` AP, `confusion`; truths have boxes and classes, preds also scores."""
    gt = _coco(truths, labels)
    results = [
        {"image_id": i, "category_id": int(c), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(s)}
        for i, pred in enumerate(preds)
        for (x1, y1, x2, y2), s, c in zip(
            np.asarray(pred["boxes"], dtype=float).reshape(-1, 4).tolist(), pred["scores"], pred["classes"], strict=True
        )
    ]
    boxes = sum(len(t["classes"]) for t in truths)
    empty = {"map50": 0.0, "map50_95": 0.0, "images": len(truths), "boxes": boxes}
    if not results or not boxes:
        per_class = {n: {"ap50": 0.0, "ap50_95": 0.0} for n in labels}
        return {**empty, "per_class": per_class, "confusion": confusion(truths, preds, labels)}  # false alarms
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.params.maxDets = [1, 10, 100]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"]  # (iou thresholds, recall points, classes, areas, max dets)

    def ap(values: np.ndarray) -> float:
        valid = values[values > -1]
        return round(float(valid.mean()), 4) if valid.size else 0.0

    per_class = {
        name: {"ap50": ap(precision[0, :, k, 0, -1]), "ap50_95": ap(precision[:, :, k, 0, -1])}
        for k, name in enumerate(labels)
    }
    return {
        "map50": round(max(0.0, float(evaluator.stats[1])), 4),
        "map50_95": round(max(0.0, float(evaluator.stats[0])), 4),
        "images": len(truths),
        "boxes": boxes,
        "per_class": per_class,
        "confusion": confusion(truths, preds, labels),
    }


def image_scores(truth: dict[str, np.ndarray], pred: dict[str, np.ndarray]) -> float:
    """One image's quality for the report's worst-images list: F1 of confident boxes matched at IoU >= 0.5."""
    table = confusion([truth], [pred], ["x"] * (max([*truth["classes"], *pred["classes"], 0]) + 1))
    matrix = np.asarray(table["matrix"])
    hits = int(np.trace(matrix[:-1, :-1]))
    misses, alarms = int(matrix[:-1].sum()) - hits, int(matrix[:, :-1].sum()) - hits
    return 1.0 if hits + misses + alarms == 0 else 2 * hits / (2 * hits + misses + alarms)


def all_matched(boxes: np.ndarray, candidates: np.ndarray, min_iou: float = 0.5) -> bool:
    """Whether each box (rows [x1, y1, x2, y2, score, class]) has a candidate of its own, of the same class, at
    IoU >= min_iou: greedy, most confident box first, each taking its best-overlapping free candidate."""
    if not len(boxes):
        return True
    if not len(candidates):
        return False
    overlap = np.where(boxes[:, 5:6] == candidates[None, :, 5], _iou(boxes[:, :4], candidates[:, :4]), 0.0)
    free = np.ones(len(candidates), dtype=bool)
    for i in np.argsort(-boxes[:, 4], kind="stable"):
        choices = np.flatnonzero(free & (overlap[i] >= min_iou))
        if not len(choices):
            return False
        free[choices[np.argmax(overlap[i, choices])]] = False
    return True
