"""`modelyard generate BUNDLE --prompt TEXT`: tokens streamed to the terminal as the model produces them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from modelyard.errors import UserError


def _schema_format(path: Path) -> dict:
    """An OpenAI-style response_format from a JSON schema file."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: cannot read the JSON schema: {err}") from None
    return {"type": "json_schema", "json_schema": {"name": path.stem, "schema": schema}}


def generate(
    model: Annotated[str, typer.Argument(help="bundle path or models:/NAME@ALIAS")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="text to continue (a chat model answers it)")],
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens", min=1, help="tokens to add")] = None,
    temperature: Annotated[float | None, typer.Option(min=0, help="0 = always the likeliest token")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, help="sample among the k likeliest")] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", min=0, max=1, help="nucleus sampling mass")] = None,
    repetition_penalty: Annotated[float | None, typer.Option("--repetition-penalty", min=0)] = None,
    stop: Annotated[list[str] | None, typer.Option("--stop", help="end before this text (repeatable)")] = None,
    seed: Annotated[int | None, typer.Option(help="makes sampling reproducible")] = None,
    chat: Annotated[bool, typer.Option("--chat/--raw", help="send the prompt as a user message")] = True,
    json_schema: Annotated[
        Path | None, typer.Option("--json-schema", help="JSON schema file: the answer is JSON valid against it")
    ] = None,
) -> None:
    """Generate text from a prompt, streamed as it is produced (defaults: the bundle's `model.generation`).

    Example: modelyard generate ./bundle --prompt "ROMEO:" --max-new-tokens 200 --temperature 0.8 --top-k 40
    Structured: modelyard generate ./chat-bundle --prompt "Ticket from: ..." --json-schema ticket.schema.json
    """
    from pydantic import ValidationError

    from modelyard import loader

    if json_schema and stop:  # as the server refuses it: a stop sequence would cut the JSON
        raise UserError("--stop cannot be combined with --json-schema (a stop sequence would cut the JSON)")
    learner = loader.load(model).learner
    if not hasattr(learner, "generate_stream"):
        raise UserError(f"{model} does not generate text", "use `modelyard predict` for this model")
    is_chat = chat and getattr(learner, "render_chat", None) is not None
    request = [{"role": "user", "content": prompt}] if is_chat else prompt
    options = {
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "repetition_penalty": repetition_penalty,
        "stop": stop or None,
        "seed": seed,
        "response_format": _schema_format(json_schema) if json_schema else None,
    }
    try:
        pieces = learner.generate_stream(request, **options)  # checks the options and schema: nothing written yet
    except ValidationError as err:
        raise UserError(f"invalid generation option: {err.errors()[0]['loc'][0]}: {err.errors()[0]['msg']}") from None
    if not is_chat:
        sys.stdout.write(prompt)
    try:
        for piece in pieces:  # with --json-schema, an answer cut or invalid ends in a UserError after it
            sys.stdout.write(piece)
            sys.stdout.flush()
    finally:
        sys.stdout.write("\n")
