"""`modelyard doctor` (what this machine offers) and `modelyard explain` (why a model answered as it did)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from modelyard.commands.console import warn
from modelyard.errors import UserError
from modelyard.fsutil import atomic_write_bytes, same_file
from modelyard.protocols import reads_text


def doctor() -> None:
    """Environment report: versions, CPU features, bundled models, tracking store.

    Example: modelyard doctor
    """
    import torch

    from modelyard.bundle import environment
    from modelyard.home import home
    from modelyard.models import catalog
    from modelyard.precision import cpu_has_fast_bf16
    from modelyard.state import masked
    from modelyard.tracking.store import tracking_uri

    report = {
        "versions": environment(),
        "cpu": {
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "capability": torch.backends.cpu.get_cpu_capability(),
            "fast_bf16": cpu_has_fast_bf16(),
        },
        "cuda": torch.cuda.is_available(),
        "bundled_models": catalog.installed(),
        "home": str(home()),
        "tracking_uri": masked(tracking_uri()),
    }
    print(json.dumps(report, indent=2, ensure_ascii=False, default=str))


def explain(
    model: Annotated[str, typer.Argument(help="bundle path or models:/NAME@ALIAS")],
    texts: Annotated[list[str] | None, typer.Option("--text", help="the text to explain")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="the image file to explain")] = None,
    row: Annotated[str | None, typer.Option("--row", help="a table row as JSON, e.g. '{\"income\": 3200}'")] = None,
    label: Annotated[str | None, typer.Option("--label", help="explain this label, not the top one")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="images: heat-map PNG file")] = None,
    json_: Annotated[bool, typer.Option("--json", help="print the attributions as JSON")] = False,
) -> None:
    """Attributions: which words (or image regions) pushed the model towards its answer.

    Example: modelyard explain ./bundle --text "I lost my card"
    """
    import base64

    from rich.text import Text

    from modelyard import api
    from modelyard.evaluation.explain import explain

    if texts is not None and len(texts) > 1:  # typer keeps only the last of a repeated option: never silently
        raise typer.BadParameter(f"--text given {len(texts)} times: explain reads one input (predict takes several)")
    text = texts[0] if texts else None
    if sum(x is not None for x in (text, image, row)) != 1:
        raise typer.BadParameter("give exactly one of --text, --image or --row")
    if output is not None and image is None:
        raise typer.BadParameter("--output writes an image's heat-map; a text or a row is explained on the screen")
    item: Any = text if image is None else image
    if row is not None:
        try:
            item = json.loads(row)
        except ValueError as err:
            raise typer.BadParameter(f"--row is not JSON: {err}") from None
    if output is not None and output.suffix.lower() != ".png":  # the heat-map is PNG whatever the name says
        raise UserError(f"--output {output}: the heat-map is a PNG image", f"name it {output.with_suffix('.png')}")
    if output is not None and image is not None and same_file(output, image):
        raise UserError(f"--output {output} is the --image file: the heat-map would replace the photo")
    loaded = api.load(model)
    takes = loaded.task.Input
    reads = "a text" if reads_text(takes) else "a table row" if takes == dict[str, Any] else None
    given = "a text" if text is not None else "a table row" if row is not None else None
    if reads and given and reads != given:
        option = "--text" if reads == "a text" else "--row"
        raise UserError(f"{model} explains {reads}, not {given}", f"pass it with {option}")
    result = explain(loaded, item, label)
    if result.get("truncated"):
        warn(
            f"the text is {result['text_tokens']} tokens long; the model reads its first {len(result['tokens'])} "
            f"(model.max_length {result['max_length']}): the rest is in neither the answer nor its explanation"
        )
    if result.get("converged") is False:
        warn(
            f"the attributions have not converged: they miss output - baseline_output by {result['relative_delta']:.0%}"
            f" of it after {result['steps']} steps; read the heat-map as a rough guide"
        )
    if "heatmap" in result:
        path = output or Path(f"{image.stem}-explained.png")
        atomic_write_bytes(path, base64.b64decode(result["heatmap"]))
        result = {**result, "heatmap": str(path)}
    if json_:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
        return
    out = Console()
    out.print(f"[bold]{result['label']}[/] ({result['score']:.3f}); {result['method']}")
    if "entity" in result:  # an entity extractor: the span whose tags are explained
        span = result["entity"]
        out.print(f"entity {span['text']!r} at characters {span['start']}-{span['end']}")
    if "heatmap" in result:
        out.print(f"heat-map written to {result['heatmap']}")
        return
    if "reasons_up" in result:  # tables: reason codes
        for title, reasons in (("pushing up", result["reasons_up"]), ("pushing down", result["reasons_down"])):
            out.print(f"{title}: " + ", ".join(f"{r['feature']} ({r['contribution']:+.3f})" for r in reasons))
        return
    scale = max((abs(a) for a in result["attributions"]), default=0.0) or 1.0
    line = Text()
    for token, value in zip(result["tokens"], result["attributions"], strict=True):
        shade = int(255 * (1 - min(1.0, abs(value) / scale)))
        color = f"rgb(255,{shade},{shade})" if value >= 0 else f"rgb({shade},{shade},255)"
        line.append(token, style=f"black on {color}")
        line.append(" ")
    out.print(line)
    out.print(
        "red: towards this label, blue: away from it; sum of attributions "
        f"{sum(result['attributions']):.4f} = output {result['output']:.4f} - baseline "
        f"{result['baseline_output']:.4f}",
        style="dim",
    )
