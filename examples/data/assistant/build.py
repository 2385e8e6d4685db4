"""Rebuild questions.jsonl: answerable questions from ../squad_retrieval (its 4 indexed articles) and questions
about other SQuAD v1.1 dev articles, which those documents cannot answer (`answers: []`).

    python examples/data/assistant/build.py dev-v1.1.json
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PER_KIND = 60


def main(source: Path) -> None:
    indexed = [json.loads(line) for line in (HERE.parent / "squad_retrieval" / "questions.jsonl").open()]
    titles = {q["file"].removesuffix(".md").replace("_", " ") for q in indexed}
    others = [
        qa["question"]
        for article in json.loads(source.read_text(encoding="utf-8"))["data"]
        if article["title"].replace("_", " ") not in titles
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]
    rng = random.Random(0)
    rows = [{"question": q["question"], "answers": q["answers"]} for q in rng.sample(indexed, PER_KIND)]
    rows += [{"question": q, "answers": []} for q in rng.sample(others, PER_KIND)]
    rng.shuffle(rows)
    with (HERE / "questions.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
