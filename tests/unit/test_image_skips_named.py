"""The data report names each unusable image file, not only how many were skipped per reason."""

from __future__ import annotations

from image_helpers import colour_squares

from modelyard.config import FormatOptions, SplitConfig
from modelyard.data import images


def test_the_skip_warning_names_the_corrupt_and_the_empty_file(tmp_path):
    root = colour_squares(tmp_path / "data")
    (root / "red" / "empty.jpg").write_bytes(b"")
    (root / "blue" / "notes.png").write_text("not an image at all")
    split = SplitConfig(validation=0.2, test=0.2)
    _, _, warnings = images.load_splits(str(root), None, None, split, "image", "label", FormatOptions(), None)
    [warning] = [w for w in warnings if w.startswith("skipped")]
    assert "red/empty.jpg: empty" in warning and "blue/notes.png: not an image" in warning
