"""Rebuild notes.csv: the 20 raccoon_mini photos, each labelled close_up or wide from its own bounding box, with a
short written note that only sometimes says which (see SOURCE.md).

Run from this folder: `python build.py`. Reads ../raccoon_mini (MIT, Copyright (c) 2017 Dat Tran).
"""

import csv
import random
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "raccoon_mini"
CLOSE_UP_SHARE = 0.45  # the largest box covers at least this share of the frame
SEED = 7
NOTES = {
    "close_up": [
        "it walked right up to the camera",
        "its face fills the whole picture",
        "so close I could count the whiskers",
        "a close portrait of a raccoon",
        "right in front of the lens",
    ],
    "wide": [
        "a raccoon far off across the yard",
        "small figure in the distance by the fence",
        "the whole tree with a raccoon somewhere in it",
        "taken from across the street",
        "you can barely spot it in the scene",
    ],
    "neutral": [
        "raccoon spotted this evening",
        "another raccoon photo",
        "saw this one last night",
        "raccoon in the neighbourhood",
        "uploaded from my phone",
    ],
}


def framing(annotation: Path) -> str:
    root = ET.parse(annotation).getroot()
    area = int(root.find("size/width").text) * int(root.find("size/height").text)
    boxes = [
        (int(o.find("bndbox/xmax").text) - int(o.find("bndbox/xmin").text))
        * (int(o.find("bndbox/ymax").text) - int(o.find("bndbox/ymin").text))
        for o in root.findall("object")
    ]
    return "close_up" if max(boxes) / area >= CLOSE_UP_SHARE else "wide"


def note(label: str, rng: random.Random) -> str:
    """60% a note that fits the label, 25% one that says nothing about framing, 15% one that fits the other."""
    draw = rng.random()
    other = "wide" if label == "close_up" else "close_up"
    pool = label if draw < 0.6 else "neutral" if draw < 0.85 else other
    return rng.choice(NOTES[pool])


def main() -> None:
    rng = random.Random(SEED)
    rows = []
    for annotation in sorted((SOURCE / "annotations").glob("*.xml")):
        label = framing(annotation)
        rows.append(
            {"photo": f"../raccoon_mini/images/{annotation.stem}.jpg", "note": note(label, rng), "framing": label}
        )
    with open(HERE / "notes.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["photo", "note", "framing"])
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
