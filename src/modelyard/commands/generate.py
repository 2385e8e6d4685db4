"""`modelyard generate BUNDLE --prompt TEXT`: tokens streamed to the terminal as the model produces them."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from modelyard.errors import UserError


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
) -> None:
    """Generate text from a prompt, streamed as it is produced (defaults: the bundle's `model.generation`).

    Example: modelyard generate ./bundle --prompt "ROMEO:" --max-new-tokens 200 --temperature 0.8 --top-k 40
    """
    from pydantic import ValidationError

    from modelyard import loader

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
    }
    try:
        pieces = learner.generate_stream(request, **options)
        if not is_chat:
            sys.stdout.write(prompt)
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
    except ValidationError as err:
        raise UserError(f"invalid generation option: {err.errors()[0]['loc'][0]}: {err.errors()[0]['msg']}") from None
    sys.stdout.write("\n")
