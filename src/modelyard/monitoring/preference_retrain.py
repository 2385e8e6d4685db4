"""`modelyard retrain` for chat models: DPO with LoRA on the preference pairs that feedback gave, gated against
the champion as classifiers are.

Pairs (monitoring.preferences) are split by prompt before anything trains: a seeded quarter of the prompts is held
out, so no held-out conversation is trained on. The challenger continues the champion's LoRA adapter (or adds one
to merged weights) with the DPO loss on the shared training loop, and is written as an ordinary chat bundle with
the champion's data fingerprints. Both models are then scored, loaded from their bundles in fp32, on

- the held-out pairs: `preference_margin`, the mean of log p(chosen) - log p(rejected) (nats), and
  `preference_accuracy`, the share of pairs where chosen is the likelier; the challenger also gets `win_rate`,
  the share of pairs with a positive implicit reward margin over the champion (DPO's reward accuracy);
- the champion's frozen test split (the original chat examples): `loss`, mean per-token cross-entropy.

The challenger is promoted only if its preference margin beats the champion's by more than `margin` (the same
`decide` rule as classifiers), its preference accuracy is not lower (a mean margin can be carried by a few pairs),
it wins on at least half of the held-out pairs, and its test loss is at most
(1 + loss_tolerance) times the champion's: learning the preferences must not cost what the model already knew.
"""

from __future__ import annotations

import gc
import json
import math
import random
import time
from pathlib import Path
from typing import Any

from modelyard.config import Config
from modelyard.errors import DataError, UserError
from modelyard.monitoring.preferences import collect_pairs, prompt_count
from modelyard.monitoring.retrain import HELD_OUT_SHARE, champion_version, decide, register_challenger

METRIC = "preference_margin"


def split_pairs(pairs: list[dict[str, Any]], seed: int) -> tuple[list[dict], list[dict]]:
    """(train, held out): a seeded HELD_OUT_SHARE of the distinct prompts (at least one when there are two or
    more) with all their pairs is held out."""
    keys = sorted({json.dumps(p["messages"], sort_keys=True) for p in pairs})
    random.Random(seed).shuffle(keys)
    held = set(keys[: math.ceil(len(keys) * HELD_OUT_SHARE)] if len(keys) >= 2 else [])
    inside = [json.dumps(p["messages"], sort_keys=True) in held for p in pairs]
    return [p for p, h in zip(pairs, inside, strict=True) if not h], [
        p for p, h in zip(pairs, inside, strict=True) if h
    ]


def _scores(learner: Any, test: list, encoded: list, reference: Any, beta: float) -> tuple[dict[str, Any], Any]:
    """Test-split loss and held-out pair scores of a loaded chat model; also its pair log-probabilities."""
    from modelyard.learners.preference import pair_logprobs, preference_scores

    result = learner.evaluate(test)  # a test split max_length leaves unscorable was refused before training
    logps = pair_logprobs(learner, encoded)
    scores = {"loss": result["loss"], "perplexity": result.get("perplexity")}
    scores.update(preference_scores(logps, reference, beta))
    scores[METRIC] = float((logps[:, 0] - logps[:, 1]).mean()) if len(logps) else 0.0
    return scores, logps


def gate(old: dict[str, Any], new: dict[str, Any], margin: float, loss_tolerance: float) -> tuple[bool, str]:
    """The promotion rule of the module docstring; the reason names the first test that failed, or all passed."""
    if not old["pairs"]:
        return False, "no held-out preference pairs to compare the models on (collect more feedback)"
    promoted, reason = decide({**old, "feedback": {}}, {**new, "feedback": {}}, METRIC, margin, ())
    if not promoted:
        return False, reason
    if new["preference_accuracy"] < old["preference_accuracy"]:  # a mean can be carried by a few pairs
        return False, (
            f"preference accuracy {new['preference_accuracy']:.4f} is below the champion's "
            f"{old['preference_accuracy']:.4f} on the held-out pairs"
        )
    if new["win_rate"] < 0.5:
        return False, f"wins on only {new['win_rate']:.0%} of the {new['pairs']} held-out pairs (needs half)"
    ceiling = old["loss"] * (1 + loss_tolerance)
    if new["loss"] > ceiling:
        return False, (
            f"test loss {new['loss']:.4f} regresses beyond the champion's {old['loss']:.4f} "
            f"x (1 + {loss_tolerance:g}) = {ceiling:.4f}"
        )
    return (
        True,
        f"{reason}; wins on {new['win_rate']:.0%} of held-out pairs; test loss {new['loss']:.4f} within tolerance",
    )


def training_pairs(
    name: str, pairs: list[dict[str, Any]], found: dict[str, Any], seed: int, hint: str
) -> tuple[list[dict], list[dict]]:
    """(train, held out) pairs; a UserError before anything is trained or written when there are too few to both
    train a challenger and judge it (pairs on at least two different prompts)."""
    train_pairs, held_out = split_pairs(pairs, seed)
    if not train_pairs or not held_out:
        raise UserError(
            f"too few preference pairs to tune '{name}': {len(pairs)} pairs on {prompt_count(pairs)} prompts "
            f"({found['rated_answers']} rated answers, {found['imported_pairs']} imported pairs); DPO needs pairs on "
            "at least two different prompts, some to train on and some held out to judge the challenger",
            hint,
        )
    return train_pairs, held_out


def train_dpo(policy: Any, config: Config, pairs: list[dict[str, Any]], beta: float, quiet: bool) -> tuple[Any, dict]:
    """`policy` (a CausalLMLearner with a trainable LoRA adapter) trained with DPO on `pairs` on the shared loop;
    the loop's result and a summary for metrics.json."""
    from modelyard.learners.preference import PreferenceLearner
    from modelyard.protocols import PreparedData
    from modelyard.training.loop import fit

    learner = PreferenceLearner(policy, beta)
    result = fit(learner, config, PreparedData(splits={"train": pairs, "validation": []}), quiet=quiet)
    return result, {"beta": beta, "used_for_training": learner.trained, "skipped_too_long": learner.skipped}


def judge(
    champion: Any,
    challenger: Path,
    chats: tuple[Any, Any],
    test: list,
    held_out: list[dict[str, Any]],
    trained: tuple[Any, dict[str, Any], dict[str, Any]],
    margin: float,
    beta: float,
    loss_tolerance: float,
    alias: str,
) -> dict[str, Any]:
    """Score the champion's and the challenger's chat models (`chats`, each loaded from its bundle) on the held-out
    pairs and `test`, apply the gate, register the challenger bundle (the folder `challenger`) under the champion's
    name (moving `alias` when promoted); the decision.
    `trained` is the loop's result, the training summary and what `collect_pairs` found."""
    from modelyard.learners.preference import encode_pair

    result, summary, found = trained
    encoded = [e for e in (encode_pair(chats[0], p) for p in held_out) if e is not None]
    old, reference = _scores(chats[0], test, encoded, None, beta)
    new, _ = _scores(chats[1], test, encoded, reference, beta)
    promoted, reason = gate(old, new, margin, loss_tolerance)
    trained_on = f"DPO on {summary['used_for_training']} preference pairs"
    version = register_challenger(challenger, champion.name, trained_on, promoted, alias, reason)
    return {
        "champion": {"version": champion_version(champion), "path": str(champion.path), **old},
        "challenger": {"version": version, "path": str(challenger), **new},
        "metric": METRIC,
        "margin": margin,
        "loss_tolerance": loss_tolerance,
        "preference": {
            **found,
            "held_out": len(held_out),
            "held_out_scored": len(encoded),
            "train_seconds": round(result.seconds, 2),
            "train_steps": result.steps,
            **summary,
        },
        "promoted": promoted,
        "alias": alias,
        "reason": reason,
    }


def retrain_chat(
    champion: Any,
    config: Config,
    margin: float,
    beta: float,
    loss_tolerance: float,
    output: str | Path | None,
    alias: str,
    quiet: bool,
) -> dict[str, Any]:
    """Collect pairs, train the DPO challenger, write its bundle, score both, move the alias if the gate says so."""
    from modelyard import loader, pipeline
    from modelyard.learners.lora import CausalLMLearner
    from modelyard.learners.preference import trainable_champion
    from modelyard.monitoring.retrain import _frozen_test

    if not isinstance(champion.learner, CausalLMLearner):
        raise UserError(
            f"'{champion.name}' is not a pretrained chat model: preference tuning (DPO) trains a LoRA adapter on one",
            "retrain a bundle of a pretrained backbone such as smollm2-135m",
        )
    test = _frozen_test(champion)
    pairs, found = collect_pairs(champion.name)
    train_pairs, held_out = training_pairs(
        champion.name,
        pairs,
        found,
        config.train.seed,
        "rate answers with /v1/feedback (a correction, or thumbs up and down on answers to one prompt) "
        "or import pairs: modelyard feedback import pairs.jsonl --model ...",
    )
    task = champion.task
    prepared = task.prepare(config)
    if prepared.fingerprints.get("test", {}).get("sha256") != champion.manifest["data"]["test"]["sha256"]:
        raise DataError(
            "the config's test split is not the champion's (fingerprint mismatch)",
            "retrain with the config and data the champion was trained from",
        )
    output = Path(output or pipeline.default_output(config.name)).resolve()
    cpu0, wall0 = pipeline._cpu_seconds(), time.perf_counter()
    policy = trainable_champion(champion.path, champion.manifest, config.model)
    result, summary = train_dpo(policy, config, train_pairs, beta, quiet)
    resolved = config.model_copy(update={"train": result.train})
    pipeline.write_results(
        output, task, prepared, [(resolved, policy, result)], cpu0, wall0, False, extra={"preference": summary}
    )
    del policy
    gc.collect()
    challenger = loader.load(output)
    chats = (champion.learner, challenger.learner)
    return judge(
        champion, challenger.path, chats, test, held_out, (result, summary, found), margin, beta, loss_tolerance, alias
    )
