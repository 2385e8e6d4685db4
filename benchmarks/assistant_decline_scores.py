"""Which retrieval score should the assistant decline on? Judged on calibration questions only (issue 24).

    python benchmarks/assistant_decline_scores.py --data DIR [--questions 400]

DIR is a retrieval collection as benchmarks/retrieval_data.py writes it (all 24 articles of SQuAD v1.1
dev-v1.1.json). The sets are made exactly as benchmarks/assistant_grounding.py makes them (12 articles indexed,
its validation and test questions); the test questions are excluded here. From the rest, --questions answerable
questions (about the indexed articles) and as many unanswerable ones (about the others) are sampled. For each, the
assistant's two candidate decline scores: the cosine of the question to its closest chunk, and the first passage's
re-ranked score. Prints JSON: per score, the ROC-AUC of answerable against unanswerable, and the threshold each of
the two calibration rules picks with the answerable questions it then declines and the share still cited right.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import yaml
from assistant_grounding import make_sets
from sklearn.metrics import roc_auc_score


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--questions", type=int, default=400, help="per kind (answerable, not)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="decline-scores-"))
    os.environ["MODELYARD_HOME"] = str(work / "home")
    from modelyard.learners.assistant import AssistantLearner, choose_threshold
    from modelyard.pipeline import train

    sets = make_sets(args.data, 200, work)
    config = {
        "name": "decline-scores",
        "task": "assistant",
        "data": {"train": str(work / "docs"), "validation": str(work / "validation.jsonl")},
        "model": {"backbone": "smollm2-135m", "encoder": "minilm-l6"},
    }
    (work / "assistant.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    reranked = train(work / "assistant.yaml", work / "bundle", quiet=True, track=False).learner
    cosine = AssistantLearner(reranked.index, reranked.chat, reranked.options, state={})
    cosine.decline_on = "cosine"
    test = {q["question"] for q in sets["test"]}
    inside = set(sets["indexed_articles"])
    questions = [json.loads(line) for line in (args.data / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    rng, asked = random.Random(7), []
    for answerable in (True, False):
        pool = [q for q in questions if (q["file"] in inside) == answerable and q["question"] not in test]
        asked += [{**q, "answerable": answerable} for q in rng.sample(pool, min(args.questions, len(pool)))]
    truth = np.array([q["answerable"] for q in asked])
    hits = []
    for q in asked:
        passages, _ = reranked.retrieve(q["question"])
        hits.append(q["answerable"] and bool(passages) and any(a in passages[0]["text"] for a in q["answers"]))
    hits = np.array(hits)
    out = {"data": str(args.data), "questions": {"answerable": int(truth.sum()), "unanswerable": int((~truth).sum())},
           "first_passage_holds_answer": round(float(hits[truth].mean()), 4), "scores": {}}  # fmt: skip
    for name, learner in (("cosine", cosine), ("reranked", reranked)):
        scores = np.array([learner.retrieve(q["question"])[1] for q in asked])
        found = {"roc_auc": round(float(roc_auc_score(truth, scores)), 4)}
        for rule in (None, 0.85):
            chosen = choose_threshold(list(scores[truth]), list(scores[~truth]), rule)
            answered = scores >= chosen["threshold"]
            found["best balanced accuracy" if rule is None else f"decline >= {rule}"] = {
                **chosen,
                "unanswerable_declined": round(float((~answered[~truth]).mean()), 4),
                "answerable_declined": round(float((~answered[truth]).mean()), 4),
                "cited_answer_rate": round(float((answered & hits)[truth].mean()), 4),
            }
        out["scores"][name] = found
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
