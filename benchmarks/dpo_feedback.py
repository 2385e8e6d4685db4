"""DPO from feedback on the bundled SmolLM2-135M-Instruct with LoRA: the held-out preference win rate over the
starting model, its answers judged by a rule before and after, and the training time. Prints one JSON object.

    nice -n 10 python benchmarks/dpo_feedback.py [--train-pairs 96] [--epochs 1] [--beta 0.1] [--generate 50]
        [--learning-rate 2e-4] [--held-out-pairs 100]

The preference set is built from the committed chat data (examples/data/chat_intents, derived from BANKING77,
CC BY 4.0): each conversation asks the model to route a customer message to one of ten intent names. The chosen
answer is the labelled intent (what a support agent's correction would say); the rejected answer is another
intent of the list, drawn with a fixed seed (a plausible wrong routing, what a thumbs-down marks). Training pairs
come from train.jsonl, held-out pairs from test.jsonl (different customer messages, split before training).

Reported on the held-out pairs, against the starting model (SmolLM2 with its LoRA adapter still zero, i.e. the
base model, which is also DPO's reference): `win_rate`, the share of pairs whose implicit reward margin is
positive (the tuned model moved towards the chosen answer more than towards the rejected one); the preference
accuracy (chosen likelier than rejected) of both models; and with --generate N, the share of N held-out prompts
whose greedy answer names the labelled intent first among the ten (the rule judge), before and after. `test_loss` is the
per-token loss on the reference answers of test.jsonl (the SFT likelihood the retrain gate guards).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import time
from pathlib import Path

import torch

from modelyard.data import text_corpus
from modelyard.learners.lora import CausalLMLearner
from modelyard.learners.preference import PreferenceLearner, pair_logprobs, preference_scores
from modelyard.monitoring.preference_retrain import gate
from modelyard.protocols import PreparedData
from modelyard.tasks import config_from_dict
from modelyard.training.loop import fit

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data" / "chat_intents"
# the ten intents the data's system prompt lists (examples/data/chat_intents/build.py wrote them there)
INTENTS = sorted(
    {json.loads(line)["messages"][-1]["content"] for line in (DATA / "train.jsonl").read_text().splitlines()}
)


def preference_pairs(path: Path, count: int | None, seed: int) -> tuple[list[dict], list[dict]]:
    """(pairs, the chat examples they came from): chosen = the labelled intent, rejected = another one."""
    rng = random.Random(seed)
    examples = text_corpus.read(path, text_corpus.Fields())[:count]
    pairs = []
    for example in examples:
        chosen = example["messages"][-1]["content"]
        rejected = rng.choice([i for i in INTENTS if i != chosen])
        pairs.append({"messages": example["messages"][:-1], "chosen": chosen, "rejected": rejected})
    return pairs, examples


def first_intent(text: str) -> str | None:
    """The intent name an answer mentions first (the rule judge: answers may wrap the name in words)."""
    found = [(text.find(i), i) for i in INTENTS if i in text]
    return min(found)[1] if found else None


def judged_accuracy(learner: CausalLMLearner, pairs: list[dict]) -> float:
    """Share of prompts whose greedy answer names the chosen (labelled) intent first."""
    answers = learner.generator.complete([p["messages"] for p in pairs], max_new_tokens=12, temperature=0.0)
    return sum(first_intent(a["text"]) == p["chosen"] for a, p in zip(answers, pairs, strict=True)) / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-pairs", type=int, default=96)
    parser.add_argument("--held-out-pairs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--generate", type=int, default=50, help="held-out prompts judged by the rule (0: skip)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    load_before = os.getloadavg()
    raw = {
        "name": "dpo-feedback-bench",
        "task": "text_generation",
        "data": {"train": str(DATA / "train.jsonl")},
        "model": {
            "backbone": "smollm2-135m",
            "max_length": 256,
            "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
            "decode_weights": "float",  # a LoRA-wrapped model decodes in float; both sides judged alike
        },
        "train": {
            "epochs": args.epochs,
            "batch_size": 8,
            "learning_rate": args.learning_rate,
            "scheduler": "cosine",
            "early_stopping": None,
            "seed": args.seed,
        },
    }
    config = config_from_dict(raw, str(ROOT / "benchmarks" / "dpo.yaml"))
    train_pairs, _ = preference_pairs(DATA / "train.jsonl", args.train_pairs, args.seed)
    held_pairs, test_examples = preference_pairs(DATA / "test.jsonl", args.held_out_pairs, args.seed + 1)
    policy = CausalLMLearner.pretrained("smollm2-135m", config.model)
    learner = PreferenceLearner(policy, args.beta)
    held = learner.encode(held_pairs)

    def scores(reference=None) -> tuple[dict, object]:
        logps = pair_logprobs(policy, held)
        result = preference_scores(logps, reference, args.beta)
        result["preference_margin"] = float((logps[:, 0] - logps[:, 1]).mean())
        result["test_loss"] = round(policy.evaluate(test_examples)["loss"], 4)
        if args.generate:
            result["judged_accuracy"] = judged_accuracy(policy, held_pairs[: args.generate])
        return result, logps

    policy.precision = "fp32"
    started = time.perf_counter()
    before, reference = scores()
    before_seconds = time.perf_counter() - started
    trained = fit(learner, config, PreparedData(splits={"train": train_pairs, "validation": []}), quiet=True)
    policy.precision = "fp32"  # score both sides alike
    after, _ = scores(reference)
    decision = gate({**before, "loss": before["test_loss"]}, {**after, "loss": after["test_loss"]}, 0.0, 0.05)
    print(
        json.dumps(
            {
                "benchmark": "dpo_feedback",
                "model": "smollm2-135m + LoRA r16 (all linear layers)",
                "data": "examples/data/chat_intents (BANKING77, CC BY 4.0): chosen = labelled intent, "
                "rejected = another intent (seeded)",
                "train_pairs": len(train_pairs),
                "held_out_pairs": len(held),
                "beta": args.beta,
                "learning_rate": args.learning_rate,
                "epochs": args.epochs,
                "held_out": {
                    "win_rate_over_start": round(after["win_rate"], 4),
                    "mean_reward_margin": round(after["reward_margin"], 4),
                    "preference_accuracy": {
                        "start": round(before["preference_accuracy"], 4),
                        "dpo": round(after["preference_accuracy"], 4),
                    },
                    "preference_margin_nats": {
                        "start": round(before["preference_margin"], 4),
                        "dpo": round(after["preference_margin"], 4),
                    },
                    "judged_accuracy": {"start": before.get("judged_accuracy"), "dpo": after.get("judged_accuracy")},
                    "judged_prompts": min(args.generate, len(held_pairs)),
                },
                "test_loss": {"start": before["test_loss"], "dpo": after["test_loss"]},
                "retrain_gate": {"promoted": decision[0], "reason": decision[1]},
                "train": {
                    "seconds": round(trained.seconds, 1),
                    "steps": trained.steps,
                    "sequences_per_second": round(trained.samples_per_second, 2),
                    "precision": trained.precision,
                },
                "scoring_seconds_per_side": round(before_seconds, 1),
                "threads": torch.get_num_threads(),
                "load_average_at_start": [round(x, 2) for x in load_before],
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
