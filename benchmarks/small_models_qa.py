"""The bundled small causal LMs on the same short questions, 20 English and 20 Chinese (benchmarks/data/small_qa.jsonl,
written for this benchmark: general-knowledge questions with their accepted short answers), and their single-stream
speed. Every model gets the same 3-shot completion prompt in the question's language ("Q: ... A: ..."; Gemma 3 270M
is a base model without a chat format), greedy, ending at the line's end; SmolLM2 is also asked through its chat
template. Scores: exact match, token F1 (CJK per character), "contains" (an accepted answer occurs in the reply)
and corpus chrF, per language, with int4 decoding weights (the default; `--weights int4 float` adds float); and
single-stream tokens/s with both. Prints one JSON line per model.

    python benchmarks/small_models_qa.py [--models gemma3-270m smollm2-135m] [--tokens 64] [--weights int4 float]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from modelyard.generation.engine import Request
from modelyard.learners.lora import CausalLMLearner
from modelyard.metrics.generation import chrf, exact_match, normalize_answer, token_f1
from modelyard.tasks.text_generation import GenerationModelConfig

DATA = Path(__file__).parent / "data" / "small_qa.jsonl"
SHOTS = {
    "en": [
        ("What is the capital of Spain?", "Madrid"),
        ("How many wheels does a bicycle have?", "Two"),
        ("What colour is grass?", "Green"),
    ],
    "zh": [("西班牙的首都是哪里？", "马德里"), ("自行车有几个轮子？", "两个"), ("草是什么颜色？", "绿色")],
}


def few_shot(language: str, question: str) -> str:
    lines = [f"Q: {q}\nA: {a}\n" for q, a in SHOTS[language]]
    return "".join(lines) + f"Q: {question}\nA:"


def contains(reply: str, answers: list[str]) -> float:
    words = " ".join(normalize_answer(reply))
    return float(any(" ".join(normalize_answer(a)) in words for a in answers))


def score(rows: list[dict], replies: list[str]) -> dict:
    out = {}
    for language in ("en", "zh"):
        pairs = [(r, reply) for r, reply in zip(rows, replies, strict=True) if r["language"] == language]
        n = len(pairs)
        out[language] = {
            "questions": n,
            "exact_match": round(sum(max(exact_match(p, a) for a in r["answers"]) for r, p in pairs) / n, 3),
            "token_f1": round(sum(max(token_f1(p, a) for a in r["answers"]) for r, p in pairs) / n, 3),
            "contains": round(sum(contains(p, r["answers"]) for r, p in pairs) / n, 3),
            "chrf": round(chrf([p for _, p in pairs], [r["answers"][0] for r, _ in pairs]), 1),
        }
    return out


def answers(learner: CausalLMLearner, prompts: list, batch: int = 8) -> list[str]:
    replies = []
    for start in range(0, len(prompts), batch):
        done = learner.generator.complete(prompts[start : start + batch], max_new_tokens=16, temperature=0, stop="\n")
        replies += [d["text"].strip() for d in done]
    return replies


def speed(learner: CausalLMLearner, tokens: int) -> float:
    """Single-stream tokens/s on one chat question, exactly `tokens` new tokens (median of 3)."""
    ids = learner.generator.prompt_ids([{"role": "user", "content": "Write one sentence about the sea."}])
    eos, learner.generator.decoder.eos_ids = learner.generator.decoder.eos_ids, set()
    runs = []
    for _ in range(4):  # the first builds the int4 copy
        start = time.perf_counter()
        for _ in learner.generator.run([Request(ids, learner.generator.options(max_new_tokens=tokens, temperature=0))]):
            pass
        runs.append(time.perf_counter() - start)
    learner.generator.decoder.eos_ids = eos
    return round(tokens / sorted(runs[1:])[1], 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["gemma3-270m", "smollm2-135m"])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--weights", nargs="+", default=["int4"], help="decoding weights to score (int4, float)")
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    print(json.dumps({"benchmark": "small_models_qa", "data": DATA.name, "load_average": os.getloadavg()}), flush=True)
    for name in args.models:  # one JSON line per model, as soon as it is done
        learner = CausalLMLearner.pretrained(name, GenerationModelConfig(backbone=name, lora=None))
        result = {"model": name, "parameters_m": round(sum(p.numel() for p in learner.module.parameters()) / 1e6, 1)}
        for weights in args.weights:
            learner.generator.decoder.weights = weights
            replies = answers(learner, [few_shot(r["language"], r["question"]) for r in rows])
            result[f"three_shot_{weights}"] = {**score(rows, replies), "replies": replies}
            if name == "smollm2-135m":  # instruction-tuned: also asked as a chat (Gemma 3 270M here is a base model)
                chat = answers(learner, [[{"role": "user", "content": r["question"]}] for r in rows])
                result[f"chat_{weights}"] = {**score(rows, chat), "replies": chat}
        for weights in ("int4", "float"):
            learner.generator.decoder.weights = weights
            result[f"tokens_per_second_{weights}"] = speed(learner, args.tokens)
        result["load_average_after"] = os.getloadavg()
        print(json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
