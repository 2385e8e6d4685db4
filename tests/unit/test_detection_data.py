"""Detection annotations (VOC, COCO, YOLO), the checks `validate` runs on them, CenterNet targets and mAP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.data import detection_readers as readers
from modelyard.errors import DataError
from modelyard.metrics.detection import detection_metrics
from modelyard.models import detector

MINI = Path(__file__).resolve().parents[2] / "examples" / "data" / "raccoon_mini"


def _boxes(items: list[readers.ImageBoxes]) -> dict[str, list[list[float]]]:
    return {item.path.name: [[round(v, 3) for v in b] for b in item.boxes] for item in items}


def test_the_voc_slice_reads_every_image_with_its_boxes():
    items = readers.read_annotations(MINI, None, None)
    assert len(items) == 20
    assert all(item.path.is_file() and item.labels and set(item.labels) == {"raccoon"} for item in items)
    assert readers.check_boxes(items, ["raccoon"], "train") == (items, [])


def test_coco_and_yolo_readers_give_the_voc_boxes(tmp_path):
    items = readers.read_annotations(MINI, None, None)[:5]
    coco = {
        "images": [
            {"id": i, "file_name": it.path.name, "width": it.width, "height": it.height} for i, it in enumerate(items)
        ],
        "categories": [{"id": 7, "name": "raccoon"}],
        "annotations": [
            {"image_id": i, "category_id": 7, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
            for i, it in enumerate(items)
            for b in it.boxes
        ],
    }
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "train.json").write_text(json.dumps(coco))
    from_coco = readers.read_annotations(tmp_path / "coco" / "train.json", MINI / "images", None)
    yolo = tmp_path / "yolo"
    (yolo / "images").mkdir(parents=True)
    (yolo / "labels").mkdir()
    (yolo / "classes.txt").write_text("raccoon\n")
    for it in items:
        shutil.copy(it.path, yolo / "images" / it.path.name)
        lines = [
            f"0 {(b[0] + b[2]) / 2 / it.width} {(b[1] + b[3]) / 2 / it.height} "
            f"{(b[2] - b[0]) / it.width} {(b[3] - b[1]) / it.height}"
            for b in it.boxes
        ]
        (yolo / "labels" / f"{it.path.stem}.txt").write_text("\n".join(lines))
    from_yolo = readers.read_annotations(yolo, None, None)
    assert _boxes(from_coco) == _boxes(items)
    voc = _boxes(items)
    assert _boxes(from_yolo).keys() == voc.keys()
    assert all(np.allclose(_boxes(from_yolo)[name], voc[name], atol=1e-3) for name in voc)
    assert {lbl for it in from_yolo + from_coco for lbl in it.labels} == {"raccoon"}


def _one(tmp_path: Path, box: list[float], label: str = "raccoon") -> list[readers.ImageBoxes]:
    image = MINI / "images" / "raccoon-106.jpg"
    from PIL import Image

    width, height = Image.open(image).size
    return [readers.ImageBoxes(image, width, height, [box], [label], source=str(tmp_path / "a.xml"))]


@pytest.mark.parametrize(
    ("box", "label", "said"),
    [
        ([10, 10, 5000, 50], "raccoon", "outside the"),
        ([10, 10, 10, 50], "raccoon", "zero area"),
        ([10, 10, 40, 50], "badger", "unknown class 'badger'"),
        ([float("nan"), 10, 40, 50], "raccoon", "a coordinate is not a number"),
    ],
)
def test_validate_names_the_file_and_box_of_each_bad_annotation(tmp_path, box, label, said):
    with pytest.raises(DataError) as caught:
        readers.check_boxes(_one(tmp_path, box, label), ["raccoon"], "train")
    assert said in caught.value.message
    assert "a.xml: box 0" in caught.value.message and "raccoon-106.jpg" in caught.value.message


def test_images_without_boxes_are_kept_with_a_warning(tmp_path):
    items = _one(tmp_path, [10, 10, 40, 50])
    items[0].boxes, items[0].labels = [], []
    kept, warnings = readers.check_boxes(items, ["raccoon"], "train")
    assert kept == items and len(warnings) == 1
    assert "1 images without annotations" in warnings[0] and "raccoon-106.jpg" in warnings[0]


@pytest.mark.parametrize("content", [b"", b"not an image", (MINI / "images" / "raccoon-106.jpg").read_bytes()[:2000]])
def test_images_that_do_not_decode_are_skipped_and_named(tmp_path, content):
    """Annotations give the size, so nothing else would open the image before training did."""
    broken = tmp_path / "raccoon-broken.jpg"
    broken.write_bytes(content)
    good = _one(tmp_path, [10, 10, 40, 50])[0]
    bad = readers.ImageBoxes(broken, good.width, good.height, [[10, 10, 40, 50]], ["raccoon"], source="b.xml")
    kept, warnings = readers.check_boxes([good, bad], ["raccoon"], "train")
    assert kept == [good]
    assert warnings[0].startswith("train: 1 unreadable images skipped: raccoon-broken.jpg (")


def test_a_yolo_folder_with_an_unreadable_image_reads_the_rest(tmp_path):
    yolo = tmp_path / "yolo"
    (yolo / "images").mkdir(parents=True)
    (yolo / "labels").mkdir()
    (yolo / "classes.txt").write_text("raccoon\n")
    shutil.copy(MINI / "images" / "raccoon-106.jpg", yolo / "images")
    (yolo / "labels" / "raccoon-106.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    (yolo / "images" / "notes.jpg").write_text("not an image")
    kept, warnings = readers.check_boxes(readers.read_annotations(yolo, None, None), ["raccoon"], "train")
    assert [item.path.name for item in kept] == ["raccoon-106.jpg"] and "notes.jpg (not an image" in warnings[0]


def test_a_split_list_naming_an_unannotated_image_is_refused(tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_text("raccoon-106.jpg\nraccoon-999.jpg\n")
    with pytest.raises(DataError, match=r"raccoon-999\.jpg"):
        readers.pick(readers.read_annotations(MINI, None, None), listing)


def test_perfect_centernet_maps_decode_back_to_the_boxes():
    boxes = torch.tensor([[16.0, 24.0, 80.0, 100.0], [70.0, 10.0, 120.0, 40.0]])
    target = detector.encode(boxes, torch.tensor([0, 1]), 2, 128)
    logits = torch.logit(target["heatmap"].clamp(1e-4, 1 - 1e-4))[None]  # (1, 2, 16, 16)
    box_map = torch.zeros(1, 4, 16, 16)
    box_map.view(1, 4, -1)[0, :, target["index"]] = target["box_target"].T
    decoded = detector.decode(logits, box_map, min_score=0.5)[0]
    order = decoded[:, 5].argsort()
    assert torch.allclose(decoded[order, :4], boxes, atol=1e-3)
    assert decoded[order, 5].tolist() == [0.0, 1.0]


def test_map_is_one_for_exact_boxes_and_falls_for_shifted_ones():
    truth = [{"boxes": np.array([[10, 10, 50, 50], [60, 60, 90, 100]]), "classes": np.array([0, 1])}]
    exact = [{**truth[0], "scores": np.array([0.9, 0.8])}]
    shifted = [{"boxes": truth[0]["boxes"] + 5, "classes": truth[0]["classes"], "scores": np.array([0.9, 0.8])}]
    perfect = detection_metrics(truth, exact, ["a", "b"])
    assert perfect["map50"] == 1.0 and perfect["map50_95"] == 1.0
    assert perfect["confusion"]["matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    worse = detection_metrics(truth, shifted, ["a", "b"])
    assert worse["map50"] == 1.0 and worse["map50_95"] < 0.5  # IoU ~0.6: a hit at 0.5, a miss from 0.65 up


def test_the_starter_and_example_configs_are_valid_detection_configs():
    import yaml

    from modelyard.tasks import config_from_dict, get_task, load_config

    starter = config_from_dict(yaml.safe_load(get_task("object_detection").starter_config()))
    example = load_config(Path(__file__).resolve().parents[2] / "examples" / "object_detection.yaml")
    assert starter.task == example.task == "object_detection"
    assert example.data.annotations.endswith("raccoon_detection") and example.data.train.endswith("train_labels.csv")


def _voc_copy(tmp_path: Path, name: str, scale: float = 1.0) -> Path:
    """raccoon_mini's `name` image (resized by `scale`) with its XML unchanged, in a VOC folder of its own."""
    from PIL import Image

    folder = tmp_path / "voc"
    (folder / "images").mkdir(parents=True)
    shutil.copy(MINI / "annotations" / f"{name}.xml", folder / f"{name}.xml")
    with Image.open(MINI / "images" / f"{name}.jpg") as image:
        image.resize((round(image.width * scale), round(image.height * scale))).save(folder / "images" / f"{name}.jpg")
    return folder


def test_boxes_follow_a_resized_image_whose_annotation_kept_the_old_size(tmp_path):
    original = readers.read_annotations(MINI, None, None)
    before = next(item for item in original if item.path.name == "raccoon-106.jpg")
    items = readers.read_annotations(_voc_copy(tmp_path, "raccoon-106", 2.0), None, None)
    kept, warnings = readers.check_boxes(items, ["raccoon"], "test")
    assert (kept[0].width, kept[0].height) == (2 * before.width, 2 * before.height)
    assert np.allclose(kept[0].boxes, np.asarray(before.boxes) * 2)
    assert len(warnings) == 1 and "1 annotations declare another size than their image" in warnings[0]
    assert f"raccoon-106.xml ({before.width}x{before.height}, image {2 * before.width}x" in warnings[0]


def test_a_box_outside_its_image_is_refused_whatever_size_the_annotation_declares(tmp_path):
    folder = _voc_copy(tmp_path, "raccoon-106")
    xml = folder / "raccoon-106.xml"
    text = xml.read_text()
    for tag, value in {"width": 1000, "height": 800, "xmax": 1200, "ymax": 700}.items():
        text = text.replace(text[text.index(f"<{tag}>") : text.index(f"</{tag}>")], f"<{tag}>{value}")
    xml.write_text(text)
    with pytest.raises(DataError, match=r"scaled from the declared 1000x800\) of raccoon-106.jpg: outside the"):
        readers.check_boxes(readers.read_annotations(folder, None, None), ["raccoon"], "train")


def test_evaluating_a_folder_drops_classes_the_model_never_learned_and_names_them(tmp_path):
    from modelyard.tasks.object_detection import ObjectDetectionTask

    folder = _voc_copy(tmp_path, "raccoon-106")
    xml = folder / "raccoon-106.xml"
    xml.write_text(xml.read_text().replace("<name>raccoon</name>", "<name>dog</name>"))
    rows, notes = ObjectDetectionTask().evaluation_rows(None, str(folder), ["raccoon"])
    assert rows["boxes"].tolist() == [[]] and rows["labels"].tolist() == [[]]
    assert any(f"{folder}: 1 boxes of classes the model never learned are not scored: dog" in n for n in notes)
    assert any(f"{folder}: no boxes to find" in n for n in notes)


def test_a_background_only_set_is_scored_by_its_false_alarms():
    truths = [{"boxes": np.zeros((0, 4)), "classes": np.zeros(0, dtype=int)}]
    preds = [{"boxes": np.array([[1.0, 1, 20, 20]]), "scores": np.array([0.9]), "classes": np.array([0])}]
    metrics = detection_metrics(truths, preds, ["raccoon"])
    assert metrics["boxes"] == 0 and metrics["confusion"]["matrix"] == [[0, 0], [1, 0]]


def _sideways(tmp_path: Path, name: str, declared: str) -> tuple[Path, readers.ImageBoxes]:
    """raccoon_mini's `name` image stored turned a quarter (EXIF orientation 6 turns it back), its VOC annotation
    declaring the `declared` ("upright" or "stored") size with boxes drawn on that picture."""
    from PIL import Image

    before = next(item for item in readers.read_annotations(MINI, None, None) if item.path.name == f"{name}.jpg")
    folder = _voc_copy(tmp_path, name)
    with Image.open(folder / "images" / f"{name}.jpg") as image:
        exif = Image.Exif()
        exif[0x0112] = 6
        image.transpose(Image.Transpose.ROTATE_90).save(folder / "images" / f"{name}.jpg", exif=exif)
    if declared == "stored":  # drawn by a tool that ignored the orientation: on the stored, sideways pixels
        xml = folder / f"{name}.xml"
        text = xml.read_text()
        (x1, y1, x2, y2), w = before.boxes[0], before.width
        swapped = {"width": before.height, "height": w, "xmin": y1, "ymin": w - x2, "xmax": y2, "ymax": w - x1}
        for tag, value in swapped.items():
            text = text.replace(text[text.index(f"<{tag}>") : text.index(f"</{tag}>")], f"<{tag}>{value:g}")
        xml.write_text(text)
    return folder, before


@pytest.mark.parametrize("declared", ["upright", "stored"])
def test_boxes_of_a_sideways_photo_are_in_the_upright_image(tmp_path, declared):
    folder, before = _sideways(tmp_path, "raccoon-106", declared)
    kept, warnings = readers.check_boxes(readers.read_annotations(folder, None, None), ["raccoon"], "train")
    assert (kept[0].width, kept[0].height) == (before.width, before.height)
    assert np.allclose(kept[0].boxes[0], before.boxes[0], atol=1)
    assert len(warnings) == (declared == "stored")
    assert declared == "upright" or "turned with it to the upright image: " in warnings[0]
