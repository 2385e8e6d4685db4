"""SQuAD v1.1 JSON -> a retrieval collection: one Markdown file per Wikipedia article (each paragraph under its
own "## Paragraph N" heading) and questions.jsonl, each question with its gold file, section and answers.

    python benchmarks/retrieval_data.py dev-v1.1.json [more.json] --output DIR [--articles N] [--questions N]

The committed slice examples/data/squad_retrieval/ was made with --articles 4 --questions 100 --seed 0 (SOURCE.md).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path


def file_name(title: str) -> str:
    return re.sub(r"[^\w.-]+", "_", title).strip("_") + ".md"


def convert(sources: list[Path], output: Path, articles: int | None, questions: int | None, seed: int) -> dict:
    data = [a for source in sources for a in json.loads(source.read_text(encoding="utf-8"))["data"]]
    if articles:
        data = data[:articles]
    (output / "docs").mkdir(parents=True, exist_ok=True)
    asked = []
    for article in data:
        name = file_name(article["title"])
        title = article["title"].replace("_", " ")
        parts = [f"# {title}\n"]
        for n, paragraph in enumerate(article["paragraphs"], start=1):
            section = f"Paragraph {n}"
            parts.append(f"## {section}\n\n{paragraph['context'].strip()}\n")
            for qa in paragraph["qas"]:
                answers = sorted({a["text"] for a in qa["answers"]})
                asked.append(
                    {
                        "id": qa["id"],
                        "question": qa["question"],
                        "file": name,
                        "section": f"{title} > {section}",
                        "answers": answers,
                    }
                )
        (output / "docs" / name).write_text("\n".join(parts), encoding="utf-8")
    if questions and questions < len(asked):
        asked = sorted(random.Random(seed).sample(asked, questions), key=lambda q: (q["file"], q["id"]))
    with (output / "questions.jsonl").open("w", encoding="utf-8") as f:
        for q in asked:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    return {"articles": len(data), "paragraphs": sum(len(a["paragraphs"]) for a in data), "questions": len(asked)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--articles", type=int)
    parser.add_argument("--questions", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(convert(args.sources, args.output, args.articles, args.questions, args.seed)))


if __name__ == "__main__":
    main()
