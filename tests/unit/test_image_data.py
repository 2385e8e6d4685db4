"""Reading image folders: every file opened, bad ones named and skipped, splits and fingerprints."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from image_helpers import colour_squares, png_header_only
from PIL import Image

from modelyard.config import FormatOptions, SplitConfig
from modelyard.data import images


def load(train: Path, **kwargs):
    split = kwargs.pop("split", SplitConfig(validation=0.2, test=0.2))
    return images.load_splits(str(train), None, None, split, "image", "label", FormatOptions(), None, **kwargs)


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    root = colour_squares(tmp_path / "data")
    (root / "red" / "empty.jpg").write_bytes(b"")
    (root / "red" / "notes.jpg").write_text("not an image at all")
    whole = (root / "blue" / "0.png").read_bytes()
    (root / "blue" / "cut.png").write_bytes(whole[: len(whole) // 2])
    (root / "blue" / "bomb.png").write_bytes(png_header_only(30000, 30000))
    garbled = bytearray(whole)
    at = garbled.index(b"IDAT")
    garbled[at + 20 : at + 40] = b"x" * 20
    (root / "blue" / "garbled.png").write_bytes(bytes(garbled))
    outside = tmp_path / "elsewhere.png"
    Image.new("RGB", (40, 40), "red").save(outside)
    (root / "red" / "link.png").symlink_to(outside)
    return root


def test_unusable_files_are_named_and_skipped_not_fatal(messy):
    splits, report, warnings = load(messy)
    skipped = "\n".join(report["images"]["skipped_files"])
    for name in (
        "red/empty.jpg",
        "red/notes.jpg",
        "blue/cut.png",
        "blue/bomb.png",
        "blue/garbled.png",
        "red/link.png",
    ):
        assert name in skipped
    assert report["images"]["kept"] == 20
    assert sum(len(f) for f in splits.values()) == 20
    assert any("skipped 6" in w for w in warnings)


def test_each_skip_says_why(messy):
    _, report, _ = load(messy)
    assert report["images"]["skipped"] == {
        "empty": 1,
        "not an image": 1,
        "truncated": 1,
        "too large": 1,
        "corrupt": 1,
        "outside the data folder": 1,
    }


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(ValueError, match="decompression-bomb"):
        images.decode_image(png_header_only(30000, 30000))


def test_symlink_inside_the_data_folder_is_kept(tmp_path):
    root = colour_squares(tmp_path / "data", per_class=5)
    (root / "red" / "again.png").symlink_to(root / "red" / "0.png")
    _, report, _ = load(root)
    assert report["images"]["kept"] == 11


def test_a_path_leaving_the_data_folder_is_named_for_what_it_is(tmp_path):
    root = colour_squares(tmp_path / "data", per_class=2)
    Image.new("RGB", (8, 8), "red").save(tmp_path / "elsewhere.png")
    (root / "red" / "link.png").symlink_to(tmp_path / "elsewhere.png")
    for path in (root / "red" / ".." / ".." / "elsewhere.png", root / "red" / "link.png"):
        with pytest.raises(ValueError, match=r"outside the data folder: a symlink or '\.\.' leads to .*elsewhere\.png"):
            images.check_file(path, root)
    assert images.check_file(tmp_path / "elsewhere.png", root)["width"] == 8  # written out in full: the user's choice


@pytest.mark.parametrize(
    ("values", "fmt", "expected"),
    [
        (np.array([[0, 32896, 65535]], dtype=np.uint16), "PNG", [0, 128, 255]),  # 16-bit: scaled, not clipped
        (np.array([[0, 128, 255]], dtype=np.int32), "TIFF", [0, 128, 255]),  # 32-bit holding 8-bit values: kept
        (np.array([[-50, 0, 50]], dtype=np.int32), "TIFF", [0, 128, 255]),  # outside 0..65535: stretched
        (np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "TIFF", [0, 128, 255]),  # float in 0..1
    ],
)
def test_deep_greyscale_keeps_its_contrast(values, fmt, expected):
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format=fmt)
    rgb = np.asarray(images.decode_image(buffer.getvalue()))
    assert rgb[0, :, 0].tolist() == expected
    assert (rgb[..., 0] == rgb[..., 2]).all()


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "1"])
def test_every_colour_mode_becomes_rgb(mode):
    image = Image.new("RGBA", (12, 10), (10, 200, 30, 128)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF" if mode == "CMYK" else "PNG")
    assert images.decode_image(buffer.getvalue()).mode == "RGB"


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert images.to_rgb(image).getpixel((0, 0)) == (255, 255, 255)


def test_a_png_named_jpg_is_kept_and_reported(tmp_path):
    root = colour_squares(tmp_path / "data", per_class=5)
    (root / "red" / "0.png").rename(root / "red" / "0.jpg")
    _, report, _ = load(root)
    assert report["images"]["kept"] == 10
    assert report["images"]["extension_mismatch"] == ["red/0.jpg: named .jpg but the content is PNG"]


def test_train_val_test_folders_are_used_as_given(tmp_path):
    for split in ("train", "val", "test"):
        colour_squares(tmp_path / "data" / split, per_class=3)
    splits, report, _ = load(tmp_path / "data")
    assert {n: len(f) for n, f in splits.items()} == {"train": 6, "validation": 6, "test": 6}
    assert report["split_notes"] == []


def test_missing_splits_are_carved_stratified_and_seeded(tmp_path):
    root = colour_squares(tmp_path / "data", per_class=10)
    first, _, _ = load(root)
    again, _, _ = load(root)
    assert first["test"]["file"].tolist() == again["test"]["file"].tolist()
    assert first["test"]["label"].value_counts().to_dict() == {"blue": 2, "red": 2}


def test_csv_paths_resolve_against_the_csv_folder(tmp_path):
    root = colour_squares(tmp_path / "pics", per_class=4)
    rows = [f"pics/{p.relative_to(root).as_posix()},{p.parent.name}" for p in sorted(root.rglob("*.png"))]
    (tmp_path / "list.csv").write_text("image,label\n" + "\n".join(rows) + "\nmissing.png,red\n")
    splits, report, _ = load(tmp_path / "list.csv", split=SplitConfig(validation=0.25, test=0.0))
    assert report["images"]["kept"] == 8
    assert report["images"]["skipped_files"] == ["missing.png: missing: no such file"]
    assert set(splits["train"]["label"]) == {"red", "blue"}


def test_fingerprint_ignores_listing_order_but_not_labels(tmp_path):
    root = colour_squares(tmp_path / "data", per_class=4)
    splits, _, _ = load(root, split=SplitConfig(validation=0.0, test=0.0))
    frame = splits["train"]
    shuffled = frame.sample(frac=1.0, random_state=1)
    relabelled = frame.assign(label="red")
    one = images.fingerprints({"train": frame})["train"]["sha256"]
    assert images.fingerprints({"train": shuffled})["train"]["sha256"] == one
    assert images.fingerprints({"train": relabelled})["train"]["sha256"] != one


def test_sizes_and_class_counts_are_reported(tmp_path):
    _, report, _ = load(colour_squares(tmp_path / "data", per_class=5))
    assert report["sizes"]["median_short_side"] == 40
    assert report["splits"]["train"]["classes"] == {"blue": 3, "red": 3}


def test_an_image_path_that_does_not_exist_is_named_as_a_path_not_as_bad_base64(tmp_path):
    import base64

    from modelyard.errors import DataError
    from modelyard.learners.image_inputs import input_image

    with pytest.raises(DataError, match=r"nope\.jpg: no such image file$"):
        input_image(str(tmp_path / "nope.jpg"))
    with pytest.raises(DataError, match="is a folder, not an image file"):
        input_image(str(tmp_path))
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="JPEG")
    assert input_image(base64.b64encode(buffer.getvalue()).decode()).size == (4, 4)  # '/9j/...' is still base64
    with pytest.raises(DataError, match="neither an image file nor a base64 image"):
        input_image("not an image at all")


def _sideways_photo(path: Path, orientation: int = 6) -> Image.Image:
    """An upright 60x40 picture (red left half) stored turned, with the EXIF orientation that turns it back."""
    upright = Image.new("RGB", (60, 40), "blue")
    upright.paste((255, 0, 0), (0, 0, 30, 40))
    stored = upright.transpose(Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, exif=exif, quality=95)
    return upright


@pytest.mark.parametrize("orientation", [6, 8])
def test_a_sideways_phone_photo_is_read_upright_everywhere(tmp_path, orientation):
    from modelyard.learners.image_inputs import input_image

    path = tmp_path / "phone.jpg"
    upright = np.asarray(_sideways_photo(path, orientation), dtype=np.int16)
    for image in (images.load_image(path), images.decode_image(path.read_bytes())):
        assert image.size == (60, 40)
        assert np.abs(np.asarray(image, dtype=np.int16) - upright).mean() < 8
    assert input_image(str(path)).size == (60, 40)
    assert images.load_image(path, 20).size == (30, 20)  # a reduced-scale JPEG decode is turned too
    checked = images.check_file(path, tmp_path)
    assert (checked["width"], checked["height"]) == (60, 40)


def test_an_evaluation_file_whose_images_all_lie_outside_its_folder_says_so_naming_the_first(tmp_path):
    from modelyard.errors import DataError

    colour_squares(tmp_path / "data", per_class=2)
    (tmp_path / "csvdir").mkdir()
    listing = tmp_path / "csvdir" / "test.csv"
    listing.write_text("image,label\n../data/red/0.png,red\n../data/blue/0.png,blue\n")
    with pytest.raises(DataError) as caught:
        images.read_labelled(str(listing), "image", "label", FormatOptions())
    message = caught.value.message
    assert message.startswith(f"{listing}: no readable images to evaluate: all 2 files were skipped, e.g. ")
    assert "../data/red/0.png: outside the data folder" in message and "training" not in message
    assert "validate" not in (caught.value.hint or "") and "absolute" in caught.value.hint


def test_an_evaluation_file_keeps_every_usable_image_and_notes_the_skipped(tmp_path):
    root = colour_squares(tmp_path / "data", per_class=2)
    (root / "red" / "empty.png").write_bytes(b"")
    rows, notes = images.read_labelled(str(root), "image", "label", FormatOptions())
    assert len(rows) == 4 and set(rows["label"]) == {"red", "blue"}
    assert len(notes) == 1 and "skipped 1 unusable files" in notes[0] and "red/empty.png: empty" in notes[0]


def test_training_data_with_no_usable_image_names_the_first_skipped_file(tmp_path):
    from modelyard.errors import DataError

    (tmp_path / "data" / "red").mkdir(parents=True)
    (tmp_path / "data" / "red" / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"training data: all 1 files were skipped, e.g. red/a.png: empty"):
        load(tmp_path / "data")


@pytest.mark.parametrize(("fmt", "orientation"), [("PNG", 1), ("JPEG", 1), ("JPEG", 6)])
def test_a_large_input_is_shrunk_as_it_is_decoded_and_keeps_its_size_as_sent(monkeypatch, fmt, orientation):
    monkeypatch.setattr(images, "MAX_INPUT_SIDE", 64)
    stored = Image.new("RGB", (400, 100), "blue")
    stored.paste((255, 0, 0), (0, 0, 200, 100))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, format=fmt, exif=exif)
    image = images.decode_image(buffer.getvalue())
    sent = (100, 400) if orientation == 6 else (400, 100)  # as a viewer shows it
    assert max(image.size) == 64 and image.size[0] / image.size[1] == pytest.approx(sent[0] / sent[1], rel=0.1)
    assert image.info["source_size"] == sent
    small = io.BytesIO()
    Image.new("RGB", (50, 30), "blue").save(small, format=fmt)
    assert images.decode_image(small.getvalue()).size == (50, 30)  # within the bound: as it was


def test_detections_on_a_shrunk_input_are_given_in_the_pixels_of_the_image_as_sent():
    from modelyard.learners.detection import DetectorLearner
    from modelyard.tasks.object_detection import DetectionModelConfig

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    learner = DetectorLearner.create(["thing"], DetectionModelConfig(trunk="random", image_size=64))
    full = Image.new("RGB", (800, 400), "white")
    full.paste((200, 30, 30), (100, 100, 500, 300))
    shrunk = full.resize((200, 100))
    shrunk.info["source_size"] = full.size
    (on_full,), (on_shrunk,) = learner.detect([full]), learner.detect([shrunk])
    assert np.abs(on_full[:5, :4] - on_shrunk[:5, :4]).max() < 8  # the same boxes, in the 800x400 image's pixels


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_an_orientation_outside_one_to_eight_leaves_the_image_and_its_size_as_stored(orientation):
    stored = Image.new("RGB", (400, 200), "blue")
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", exif=exif)
    image = images.decode_image(buffer.getvalue())
    assert image.size == (400, 200) and image.info["source_size"] == (400, 200)  # boxes keep their axes


def test_an_evaluation_folder_of_splits_scores_every_split_and_says_which_were_read(tmp_path):
    """Only train/ was scored: accuracy on the training images, val/ silently ignored."""
    colour_squares(tmp_path / "data" / "train", per_class=3)
    colour_squares(tmp_path / "data" / "val", per_class=2)
    rows, notes = images.read_labelled(str(tmp_path / "data"), "image", "label", FormatOptions())
    assert len(rows) == 10 and {"train/red/0.png", "val/red/0.png"} <= set(rows["file"])
    assert notes == [
        f"{tmp_path / 'data'}: a folder of split subfolders; evaluated every image of train/ (6 files), val/ (4 files)"
    ]


def test_every_image_extension_training_reads_is_listed_from_a_folder(tmp_path):
    """predict --image FOLDER skipped .jfif and .jpe photos that train and evaluate read."""
    from modelyard.predict_io import image_files

    for name in ("a.jfif", "b.jpe", "c.jpg", "d.pbm", "e.dib", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [Path(p).name for p in image_files([tmp_path])] == ["a.jfif", "b.jpe", "c.jpg", "d.pbm", "e.dib"]
