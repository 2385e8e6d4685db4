"""Retrieval targets (issue 24): recall@1/5/10 and MRR of hybrid, BM25-only and dense-only search over one index
in the same run, and the time to index 10,000 chunks. Prints JSON.

    python benchmarks/retrieval_targets.py                       # the committed slice (4 articles, 100 questions)
    python benchmarks/retrieval_targets.py --data /work/shared/datasets/squad_retrieval   # SQuAD v1.1 dev, all 48

DATA holds docs/ and questions.jsonl (benchmarks/retrieval_data.py makes both from SQuAD JSON). A question is
answered within k when a chunk of its gold paragraph (file and section) is among the top k chunks. Timing indexes
a fresh folder of copies of DATA's documents (distinct file names, identical text: embedding costs the same)
until it holds at least --timing-chunks chunks, end to end: read, hash, chunk, embed, faiss, BM25, atomic write.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from modelyard.metrics.retrieval import retrieval_metrics
from modelyard.retrieval import chunking
from modelyard.retrieval.index import Index, build
from modelyard.retrieval.readers import list_documents, read_document

ROOT = Path(__file__).resolve().parents[1]
MODES = ("hybrid", "bm25", "dense")


def load_questions(data: Path, limit: int | None) -> list[dict]:
    """All questions, or a seeded random sample of `limit` of them (spread over every document)."""
    rows = [json.loads(line) for line in (data / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    return random.Random(0).sample(rows, limit) if limit and limit < len(rows) else rows


PRINTED: dict[str, int] = {}  # stage -> the last tenth reported


def progress(stage: str, done: int, total: int) -> None:
    """A stderr line every 10% of a stage, with the load average (the machine may be shared)."""
    tenth = done * 10 // max(total, 1)
    if tenth > PRINTED.get(stage, -1):
        PRINTED[stage] = tenth
        print(f"{time.strftime('%H:%M:%S')} {stage} {done}/{total} load {os.getloadavg()[0]:.1f}", file=sys.stderr)


def quality(data: Path, encoder: str, questions: list[dict], work: Path) -> dict:
    PRINTED.clear()
    report = build(data / "docs", work / "quality", encoder, progress=progress)
    index = Index.load(work / "quality")
    relevant = [{(q["file"], q["section"])} for q in questions]
    out = {"chunks": report.chunks, "index_seconds": round(report.seconds, 1), "modes": {}}
    for mode in MODES:
        print(f"{time.strftime('%H:%M:%S')} searching: {mode}", file=sys.stderr)
        started = time.perf_counter()
        results = index.search([q["question"] for q in questions], k=10, mode=mode)
        seconds = time.perf_counter() - started
        ranked = [[(h.file, h.section) for h in hits] for hits in results]
        out["modes"][mode] = retrieval_metrics(ranked, relevant) | {
            "ms_per_query": round(1000 * seconds / len(questions), 2)
        }
    return out


def timing(data: Path, encoder: str, target: int, work: Path) -> dict:
    docs = list_documents(data / "docs")
    per_copy = sum(
        len(chunking.chunk_sections(p.name, read_document(p), chunking.DEFAULT_SIZE, chunking.DEFAULT_OVERLAP))
        for p in docs
    )
    copies = -(-target // per_copy)
    folder = work / "timing-docs"
    for copy in range(copies):
        for path in docs:
            target_path = folder / f"copy{copy}" / path.relative_to(data / "docs")
            target_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target_path)
    PRINTED.clear()
    report = build(folder, work / "timing-index", encoder, progress=progress)
    return {
        "chunks": report.chunks,
        "copies_of_the_collection": copies,
        "load_average_after": os.getloadavg(),
        "seconds": round(report.seconds, 1),
        "chunks_per_second": round(report.chunks / report.seconds, 1),
        "seconds_per_10000_chunks": round(report.seconds * 10_000 / report.chunks, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "examples" / "data" / "squad_retrieval")
    parser.add_argument("--encoder", default="minilm-l6")
    parser.add_argument("--questions", type=int, help="a seeded random sample of N questions")
    parser.add_argument("--timing-chunks", type=int, default=10_000, help="0 skips the timing run")
    parser.add_argument("--timing-only", action="store_true", help="skip the recall run")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's); 1 suits a crowded machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.data / "questions.jsonl").is_file():
        sys.exit(
            f"{args.data}: no questions.jsonl; make the folder with python benchmarks/retrieval_data.py "
            "dev-v1.1.json --output DIR (the SQuAD file named in examples/data/squad_retrieval/SOURCE.md)"
        )
    questions = load_questions(args.data, args.questions)
    with tempfile.TemporaryDirectory(prefix="retrieval-bench-") as tmp:
        work = Path(tmp)
        result = {
            "data": str(args.data),
            "documents": len(list_documents(args.data / "docs")),
            "questions": len(questions),
            "encoder": args.encoder,
            "chunk_size": chunking.DEFAULT_SIZE,
            "overlap": chunking.DEFAULT_OVERLAP,
            "torch_threads": torch.get_num_threads(),
            "load_average_before": os.getloadavg(),
        }
        if not args.timing_only:
            result["quality"] = quality(args.data, args.encoder, questions, work)
        if args.timing_chunks:
            result["timing"] = timing(args.data, args.encoder, args.timing_chunks, work)
        result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
