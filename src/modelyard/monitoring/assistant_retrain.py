"""`modelyard retrain` for a grounded assistant: DPO on its chat model from the feedback on its answers, gated as
chat models are (monitoring.preference_retrain), and a new assistant bundle around the challenger.

Pairs are built on the prompt the chat model saw: the system prompt, the remembered turns, and the question after the
retrieved passages, rebuilt from the logged conversation and the logged ids of those passages
(`AssistantLearner.logged_prompt`). Answers declined on the retrieval score and hand-overs were never generated, so
feedback on them pairs nothing (`not_generated`). The challenger continues the LoRA adapter of a chat bundle, or
starts a fresh adapter (text_generation's LoRA defaults) on a bundled backbone; the assistant config's `train`
section sets the DPO run. The gate's loss guard is scored on the assistant's own labelled questions (its test split,
else its validation split) that reach the chat model: the grounded prompt followed by the first gold answer, or
"I don't know." for a question the documents do not answer. The new assistant bundle has the champion's index,
decline threshold and calibration, and hand-over, with the challenger chat bundle as `chat/`.
"""

from __future__ import annotations

import dataclasses
import gc
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from modelyard.config import Config
from modelyard.errors import DataError, UserError
from modelyard.monitoring.preference_retrain import judge, train_dpo, training_pairs
from modelyard.monitoring.preferences import collect_pairs
from modelyard.tasks import config_from_dict, get_task

GROUNDED_MAX_LENGTH = 2048  # tokens per pair: passages make prompts longer than chat examples (text_generation: 512)
DECLINE = "I don't know."  # what the grounding instruction tells the model to reply without an answer
HINT = (
    "correct the assistant's answers with /v1/feedback ({prediction_id, corrected}), or rate answers to one "
    "question up and down; answers declined on the retrieval score and hand-overs are not generated, so not paired"
)


def _with_chat(config: Config, chat: Path) -> Config:
    """The assistant config with its chat model read from the bundle's `chat/` copy (the folder it was copied
    from may be gone)."""
    return config.model_copy(update={"model": config.model.model_copy(update={"backbone": str(chat)})})


def grounded_test(champion: Any, config: Config) -> tuple[Any, list[dict[str, Any]]]:
    """The assistant's prepared data (its splits checked against the champion's fingerprints) and the loss guard's
    chat examples: each labelled question the champion sends to its chat model, in the prompt it builds, followed by
    the reference answer."""
    chat = champion.path / "chat"
    prepared = champion.task.prepare(_with_chat(config, chat) if chat.is_dir() else config)
    for split in ("validation", "test"):
        expected = champion.manifest.get("data", {}).get(split, {}).get("sha256")
        if prepared.fingerprints[split]["sha256"] != expected:
            raise DataError(
                f"the config's {split} questions are not the ones '{champion.name}' was calibrated and scored on "
                "(fingerprint mismatch)",
                "retrain with the config and questions the assistant was trained from",
            )
    examples = []
    for question in prepared.splits["test"] or prepared.splits["validation"]:
        reply = champion.learner.plan([{"role": "user", "content": question["question"]}])
        if reply.kind == "answer":
            reference = question["answers"][0] if question["answers"] else DECLINE
            examples.append({"messages": [*reply.prompt, {"role": "assistant", "content": reference}]})
    if not examples:
        raise UserError(
            f"no labelled question of '{champion.name}' reaches its chat model: the challenger's loss on them guards "
            "what the model already knew",
            "give the assistant data.validation (or data.test) questions its documents answer, and train it again",
        )
    return prepared, examples


def chat_policy(champion: Any, config: Config) -> tuple[Config, Any, dict[str, Any]]:
    """The text_generation config the DPO run is written with, the trainable policy (the chat bundle's LoRA adapter
    continued, or a fresh adapter on a bundled backbone), and the chat bundle's data fingerprints."""
    from modelyard import bundle
    from modelyard.learners.lora import CausalLMLearner
    from modelyard.learners.preference import trainable_champion

    chat = champion.path / "chat"
    train = config.train.model_dump(mode="json")
    if chat.is_dir():
        raw = yaml.safe_load((chat / "config.yaml").read_text(encoding="utf-8"))
        raw["model"]["max_length"] = max(raw["model"].get("max_length", 0), GROUNDED_MAX_LENGTH)
        chat_config = config_from_dict({**raw, "train": train}, str(chat / "config.yaml"))
        manifest = bundle.read_manifest(chat)
        return chat_config, trainable_champion(chat, manifest, chat_config.model), manifest.get("data", {})
    model = config.model
    raw = {
        "name": f"{champion.name}-chat",
        "task": "text_generation",
        "data": {"train": str(champion.path)},  # the pairs came from this assistant's prediction log
        "model": {
            "backbone": model.backbone,
            "max_length": GROUNDED_MAX_LENGTH,
            "decode_weights": model.decode_weights,
            "generation": model.generation.model_dump(mode="json"),
        },
        "train": train,
    }
    chat_config = config_from_dict(raw, str(champion.path / "chat.yaml"))
    return chat_config, CausalLMLearner.pretrained(model.backbone, chat_config.model), {}


def retrain_assistant(
    champion: Any,
    config: Config,
    margin: float,
    beta: float,
    loss_tolerance: float,
    output: str | Path | None,
    alias: str,
    quiet: bool,
) -> dict[str, Any]:
    """Collect grounded pairs, train the chat challenger with DPO, write a new assistant bundle around it, score
    both chat models, move the alias if the gate says so; the decision (as for chat models, plus `assistant`)."""
    from modelyard import bundle, pipeline
    from modelyard.data.text_corpus import fingerprint
    from modelyard.learners.assistant import AssistantLearner
    from modelyard.protocols import PreparedData
    from modelyard.tasks.assistant import load_bundle

    learner = champion.learner
    pairs, found = collect_pairs(champion.name, prompt=learner.logged_prompt)
    train_pairs, held_out = training_pairs(champion.name, pairs, found, config.train.seed, HINT)
    prepared, test = grounded_test(champion, config)
    output = Path(output or pipeline.default_output(config.name)).resolve()
    cpu0, wall0 = pipeline._cpu_seconds(), time.perf_counter()
    chat_config, policy, fingerprints = chat_policy(champion, config)
    started_from = "the chat bundle's LoRA adapter" if (champion.path / "chat").is_dir() else "a fresh LoRA adapter"
    result, summary = train_dpo(policy, chat_config, train_pairs, beta, quiet)
    chosen = [{"messages": [*p["messages"], {"role": "assistant", "content": p["chosen"]}]} for p in train_pairs]
    chat_data = PreparedData(
        splits={"train": chosen, "validation": [], "test": []},
        report={"preference": {**summary, "started_from": started_from}},
        fingerprints={**fingerprints, "preference_pairs": fingerprint(chosen)},
    )
    staged = output.parent / f".{output.name}.chat-{uuid.uuid4().hex[:8]}"
    try:  # the chat challenger is a bundle of its own, copied whole into the assistant's bundle as chat/
        chat_resolved = chat_config.model_copy(update={"train": result.train})
        chat_task = get_task("text_generation")
        trained = [(chat_resolved, policy, result)]
        pipeline.write_results(staged, chat_task, chat_data, trained, cpu0, wall0, False, extra={"preference": summary})
        policy.bundle_path = staged
        options = config.model.model_copy(update={"backbone": str(output / "chat")})
        state = {"threshold": learner.threshold, "decline_on": learner.decline_on, "calibration": learner.calibration}
        assistant = AssistantLearner(learner.index, policy, options, learner.intents, state)
        resolved = config.model_copy(update={"model": options, "train": result.train})
        validation = assistant.evaluate(prepared.splits["validation"]) if prepared.splits["validation"] else {}
        scored = dataclasses.replace(result, validation=validation)
        extra = {"preference": {**summary, "started_from": started_from}}
        pipeline.write_results(
            output, champion.task, prepared, [(resolved, assistant, scored)], cpu0, wall0, False, extra=extra
        )
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    del policy, assistant
    gc.collect()
    bundle.verify(output)  # sealed whole; its chat model is what the gate scores
    chats = (learner.chat, load_bundle(output / "chat"))
    for chat in chats:  # both score the same grounded prompts, uncut
        chat.options = chat.options.model_copy(update={"max_length": chat_config.model.max_length})
    trained_with = (result, summary, found)
    decision = judge(champion, output, chats, test, held_out, trained_with, margin, beta, loss_tolerance, alias)
    decision["assistant"] = {
        "started_from": started_from,
        "loss_questions": len(test),
        "chat_bundle": str(output / "chat"),
    }
    return decision
