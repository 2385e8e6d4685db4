"""The `modelyard` command line (Typer): parses, calls the Python API, renders results. No logic of its own."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from modelyard.commands.console import STATE, err
from modelyard.commands.console import data_report as _data_report
from modelyard.commands.console import metrics_table as _metrics_table
from modelyard.commands.console import print_json as _print_json
from modelyard.commands.console import warn as _warn
from modelyard.errors import UserError

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="From raw data to a trained, evaluated, served model - offline, on a CPU.",
)


def _quiet_libraries() -> None:
    """Hide third-party chatter (download bars that never download, deprecation notes) from users. Through the
    environment, which transformers reads when imported: importing it here would cost every command seconds."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not sys.stderr.isatty():  # libraries' own tqdm bars (GGUF dequantising) as \r-lines in a log file
        os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    if "transformers" in sys.modules:  # already imported: tell it directly
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()


def _show_version(value: bool) -> None:
    """`modelyard --version`: the package version (as `doctor` reports it), before any command runs."""
    if value:
        from modelyard import __version__

        print(f"modelyard {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="no progress bars or reports (warnings still show)")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    STATE["debug"], STATE["quiet"] = debug, quiet
    _quiet_libraries()


@app.command()
def init(
    task: Annotated[str, typer.Argument(help="text_classification, image_classification, ...")],
    output: Annotated[Path, typer.Option("--output", "-o", help="where to write the config")] = Path("modelyard.yaml"),
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a commented starter config for a task.

    Example: modelyard init text_classification --output intents.yaml
    """
    from modelyard.fsutil import atomic_write_text
    from modelyard.tasks import get_task, task_names

    if task not in task_names():
        raise UserError(f"unknown task '{task}'", f"choose one of: {', '.join(task_names())}")
    if output.exists() and not force:
        raise UserError(f"{output} exists; not overwriting it", "pass --force or choose another --output")
    atomic_write_text(output, get_task(task).starter_config())
    err.print(f"wrote {output}; edit data.train, then run `modelyard validate {output}`", soft_wrap=True)


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="the YAML config")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a key: --set train.epochs=1")] = None,
    json_: Annotated[bool, typer.Option("--json", help="print the full report as JSON")] = False,
    stream: Annotated[
        bool, typer.Option("--stream", help="files too large for memory: one streaming pass, no splits")
    ] = False,
    audit_labels: Annotated[
        bool, typer.Option("--audit-labels", help="rank training rows whose labels look wrong (confident learning)")
    ] = False,
    audit_output: Annotated[
        Path, typer.Option("--audit-output", help="CSV of every suspected row (with --audit-labels)")
    ] = Path("label_audit.csv"),
    audit_top: Annotated[int, typer.Option("--audit-top", min=0, help="rows to print (with --audit-labels)")] = 20,
) -> None:
    """Check the config and the actual data, print a data report; trains nothing.

    Example: modelyard validate examples/quickstart.yaml --audit-labels
    """
    from modelyard import api

    if stream:
        _print_json(api.validate_stream(config, set_ or []))
        return
    data = api.validate(config, set_ or [])
    if json_:
        _print_json({**data.report, "fingerprints": data.fingerprints, "warnings": data.warnings})
    else:
        STATE["quiet"] = False
        _data_report(data)
        err.print("[green]ok[/]: the config and data are usable")
    if audit_labels:
        from modelyard.commands.label_audit import show_audit

        show_audit(api.audit_labels(config, set_ or [], data), audit_output, audit_top)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="the YAML config")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="bundle folder")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a key: --set train.epochs=1")] = None,
    resume: Annotated[bool, typer.Option(help="continue an interrupted run in --output")] = False,
    keep_checkpoints: Annotated[bool, typer.Option(help="keep checkpoints/ in the bundle")] = False,
    nproc: Annotated[int, typer.Option("--nproc", min=1, help="data-parallel processes on this machine")] = 1,
    nnodes: Annotated[int, typer.Option("--nnodes", min=1, help="machines taking part (torchrun)")] = 1,
    node_rank: Annotated[int, typer.Option("--node-rank", min=0, help="this machine's rank")] = 0,
    master_addr: Annotated[str, typer.Option("--master-addr", help="rank 0's address")] = "127.0.0.1",
    master_port: Annotated[int, typer.Option("--master-port", help="rank 0's port")] = 29500,
) -> None:
    """Train, evaluate on the test split, write a bundle; prints the bundle path last.

    Example: modelyard train examples/quickstart.yaml --set train.epochs=1 --nproc 2
    """
    from modelyard import api
    from modelyard.pipeline import output_lock
    from modelyard.tasks import load_config
    from modelyard.training.distributed import Launch, die_with_launcher, is_main_process, torchrun
    from modelyard.training.privacy import refuse_processes

    die_with_launcher()  # a rank of `train --nproc` ends with its launcher, however that was killed
    launch = Launch(nproc, nnodes, node_rank, master_addr, master_port)
    if launch.needed:
        loaded = load_config(config, set_ or [])
        refuse_processes(loaded, nproc * nnodes)  # before torchrun starts: one clear message, not one per rank
        name = loaded.name
        output = output or (api.latest_unfinished(name) if resume else None) or api.default_output(name)
        argv = [*(["-q"] if STATE["quiet"] else []), *(["--debug"] if STATE["debug"] else [])]
        argv += ["train", str(config), "--output", str(output), *[f"--set={item}" for item in set_ or []]]
        argv += ["--resume"] * resume + ["--keep-checkpoints"] * keep_checkpoints
        # the node that writes the bundle holds its --output for the ranks' whole run
        with output_lock(Path(output).resolve()) if node_rank == 0 else contextlib.nullcontext():
            torchrun(launch, argv, debug=STATE["debug"])
        return
    model = api.train(
        config,
        output,
        set_ or [],
        resume=resume,
        quiet=STATE["quiet"],
        keep_checkpoints=keep_checkpoints,
        on_report=_data_report,
        on_warning=_warn,
    )
    if is_main_process():
        _metrics_table(json.loads((model.path / "metrics.json").read_text(encoding="utf-8")))
        print(model.path)


@app.command()
def evaluate(
    model: Annotated[str, typer.Argument(help="bundle path or models:/NAME@ALIAS")],
    data: Annotated[Path | None, typer.Option(help="a labelled file; default: the bundle's test split")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="also write the JSON here")] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="accepted like other commands' --json; evaluate always prints JSON")
    ] = False,
    encoding: Annotated[str, typer.Option(help="--data text encoding (not the training file's)")] = "utf-8",
    sep: Annotated[str | None, typer.Option(help="--data field separator; default by extension")] = None,
) -> None:
    """Metrics of a bundle on a data file as JSON.

    Example: modelyard evaluate ./bundle --data new_labelled.csv
    """
    from modelyard import api
    from modelyard.fsutil import atomic_write_json, check_writable
    from modelyard.predict_io import input_format

    if output:
        check_writable(output)
    if data is not None and not data.exists():  # before the model loads, and named as the option the user gave
        raise UserError(f"--data {data}: no such file or folder")
    if data is None and (encoding != "utf-8" or sep is not None):  # the test split is read as it was trained
        raise UserError("--encoding and --sep say how to read --data FILE", "add --data, or leave them out")
    input_format(encoding, sep)  # a bad --encoding or --sep is refused before the model loads
    metrics = api.load(model).evaluate(data, encoding=encoding, sep=sep)
    if output:
        atomic_write_json(output, metrics)
    _print_json(metrics)


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="bundle path or models:/NAME@ALIAS")],
    text: Annotated[list[str] | None, typer.Option("--text", help="a text to classify (repeatable)")] = None,
    image: Annotated[list[Path] | None, typer.Option("--image", help="an image file or folder")] = None,
    audio: Annotated[list[Path] | None, typer.Option("--audio", help="an audio file or folder")] = None,
    input_: Annotated[Path | None, typer.Option("--input", help="a .parquet/.csv/.tsv/.jsonl/.txt file")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="predictions (.parquet, .csv, .jsonl)")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="labels with probabilities per input (classifiers)")] = 1,
    engine: Annotated[str, typer.Option(help="local (one process, resumable) or ray (on RAY_ADDRESS)")] = "local",
    workers: Annotated[int, typer.Option(min=1, help="Ray workers, each loading the bundle once")] = 2,
    chunk_rows: Annotated[int, typer.Option(min=1, help="rows scored (and journalled) at a time")] = 100_000,
    draw: Annotated[Path | None, typer.Option("--draw", help="detection: write each image with its boxes here")] = None,
    encoding: Annotated[str, typer.Option(help="--input text encoding (not the training file's)")] = "utf-8",
    sep: Annotated[str | None, typer.Option(help="--input field separator; default by extension")] = None,
) -> None:
    """Predict for one input or a whole file; a table of any size is streamed, and a killed run resumes.

    Example: modelyard predict ./bundle --text "I lost my card" --top-k 3
    Example: modelyard predict ./detector --image photo.jpg --draw drawn/
    Example: modelyard predict ./bundle --input rows.parquet --output scored.parquet [--engine ray --workers 2]
    """
    import pandas as pd

    from modelyard import api
    from modelyard.commands.batch_predict import score, streams
    from modelyard.predict_io import (
        audio_files,
        check_output,
        image_files,
        input_format,
        predict_audio,
        predict_images,
        predict_rows,
        read_inputs,
        write_predictions,
    )
    from modelyard.protocols import check_top_k

    if sum(x is not None for x in (text, image, audio, input_)) != 1:
        raise typer.BadParameter("give exactly one of --text, --image, --audio or --input")
    if input_ is not None and not input_.exists():  # before the model loads, named as the option given
        raise UserError(f"--input {input_}: no such file or folder")
    if input_ is not None and input_.is_dir() and engine != "ray":  # Ray reads a folder of Parquet files
        raise UserError(
            f"--input {input_} is a folder",
            "give a table file (a folder of Parquet files takes --engine ray); a folder of images or audio goes to "
            "--image/--audio",
        )
    if output is not None:
        check_output(output, input_)
    fmt = input_format(encoding, sep)
    loaded = api.load(model)
    check_top_k(loaded, top_k)  # the server refuses the same as `top_k`
    if image is not None or audio is not None:
        skipped: list[str] = []

        def skip(path: str, reason: str) -> None:
            skipped.append(path)
            _warn(f"skipped {path}: {reason}")

        kind = "images" if image is not None else "audio files"
        files = image_files(image) if image is not None else audio_files(audio)
        inputs, predictions = (predict_images if image is not None else predict_audio)(loaded, files, top_k, skip)
        frame = pd.DataFrame({"input": inputs})  # each row names its file: skipped files shift no answer
        if skipped:
            _warn(f"predicted {len(inputs)} of {len(files)} {kind}; skipped {len(skipped)} unusable")
    elif engine != "local" or (input_ is not None and output is not None and streams(loaded, top_k)):
        if engine not in ("local", "ray") or input_ is None or output is None:
            raise typer.BadParameter("--engine is local or ray, and needs --input and --output")
        score(loaded, input_, output, engine, workers, chunk_rows, fmt, top_k)  # any size, in bounded memory
        return
    else:
        inputs, frame = read_inputs(loaded, text, input_, _warn, fmt)
        if frame is None:
            predictions = loaded.predict(inputs, top_k=top_k)
        else:
            rows = frame.index
            frame, predictions = predict_rows(loaded, inputs, frame, input_, top_k, _warn)
            inputs = [inputs[i] for i in rows.get_indexer(frame.index)]  # those of the rows scored
    if draw is not None:
        from modelyard.predict_io import draw_predictions

        err.print(f"drew boxes on {len(draw_predictions(loaded, inputs, predictions, draw))} images in {draw}")
    if output:
        write_predictions(output, frame, predictions)
        err.print(f"wrote {len(predictions)} predictions to {output}")
    else:
        _print_json(
            predictions if input_ else [{"input": str(i), **p} for i, p in zip(inputs, predictions, strict=True)]
        )


@app.command()
def quickstart(
    serve: Annotated[bool, typer.Option(help="serve the trained model afterwards")] = True,
    port: Annotated[int, typer.Option(help="port for serving")] = 8000,
) -> None:
    """Train the README's example (BANKING77 intents, fine-tuned MiniLM) and print where it is.

    Example: modelyard quickstart --no-serve
    """
    from modelyard import api

    config = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"
    if not config.exists():
        raise UserError(f"{config} not found", "run quickstart from a modelyard checkout")
    model = api.train(config, quiet=STATE["quiet"], on_report=_data_report, on_warning=_warn)
    _metrics_table(json.loads((model.path / "metrics.json").read_text(encoding="utf-8")))
    print(model.path)
    if serve:
        from modelyard.serving.run import run_server

        run_server(str(model.path), port=port)


@app.command()
def report(
    model: Annotated[str, typer.Argument(help="bundle path or models:/NAME@ALIAS")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="default: NAME-report.html")] = None,
    cpu_hour_price: Annotated[
        float, typer.Option("--cpu-hour-price", min=0, help="USD per CPU-hour, for the cost per 1,000 predictions")
    ] = 0.05,
) -> None:
    """Write one self-contained HTML evaluation report (metrics with intervals, errors, cost, model card).

    Example: modelyard report ./bundle --output report.html
    """
    from contextlib import nullcontext

    from modelyard.evaluation.report import write_report
    from modelyard.fsutil import check_writable

    if output:
        check_writable(output)
    busy = nullcontext() if STATE["quiet"] else err.status("predicting the test split, timing, drawing")
    with busy:
        path = write_report(model, output, cpu_hour_price)
    print(path)


# --- doctor, explain: the commands live in modelyard/commands/inspect.py ---
from modelyard.commands.inspect import doctor as _doctor  # noqa: E402
from modelyard.commands.inspect import explain as _explain  # noqa: E402

app.command("doctor")(_doctor)
app.command("explain")(_explain)

# --- serve (issue 4): the command lives beside the server in modelyard/commands/serve.py ---
from modelyard.commands.serve import serve as _serve  # noqa: E402

app.command("serve")(_serve)

# --- models (issue 3): the registry sub-app lives in modelyard/commands/models.py ---
from modelyard.commands.models import app as _models_app  # noqa: E402

app.add_typer(_models_app, name="models")

# --- generate (issue 6): the command lives beside the decoder in modelyard/commands/generate.py ---
from modelyard.commands.generate import generate as _generate  # noqa: E402

app.command("generate")(_generate)

# --- monitor, feedback, retrain (issue 9): the commands live in modelyard/commands/monitor.py ---
from modelyard.commands.monitor import feedback_app as _feedback_app  # noqa: E402
from modelyard.commands.monitor import monitor as _monitor  # noqa: E402
from modelyard.commands.monitor import retrain as _retrain  # noqa: E402

app.command("monitor")(_monitor)
app.add_typer(_feedback_app, name="feedback")
app.command("retrain")(_retrain)

# --- export, distill (issue 8): the commands live in modelyard/commands/export.py ---
from modelyard.commands.export import distill as _distill  # noqa: E402
from modelyard.commands.export import export as _export  # noqa: E402

app.command("export")(_export)
app.command("distill")(_distill)

# --- federate (issue 25): the command lives in modelyard/commands/federate.py ---
from modelyard.commands.federate import federate as _federate  # noqa: E402

app.command("federate")(_federate)

# --- synthesize (issue 25): the command lives in modelyard/commands/synthesize.py ---
from modelyard.commands.synthesize import synthesize as _synthesize  # noqa: E402

app.command("synthesize")(_synthesize)


from modelyard.commands.tune import tune as _tune  # noqa: E402

app.command("tune")(_tune)

# --- index (issue 24): the command lives in modelyard/commands/index.py ---
from modelyard.commands.index import index as _index  # noqa: E402

app.command("index")(_index)

# --- containerize (issue 27): the command lives in modelyard/commands/containerize.py ---
from modelyard.commands.containerize import containerize as _containerize  # noqa: E402

app.command("containerize")(_containerize)


def main() -> None:
    """Entry point: user errors become one clear message and exit code 1 (tracebacks only with --debug)."""
    try:
        app()
    except Exception as error:
        from modelyard.training.distributed import record_rank_failure

        if record_rank_failure(error):  # a rank of `train --nproc`: the launcher reports it, once
            if STATE["debug"]:
                raise
            sys.exit(1)
        if isinstance(error, OSError) and error.filename is not None and not STATE["debug"]:
            error = UserError(f"{error.filename}: {error.strerror or error}")  # a file the system refused: named
        if STATE["debug"] or not isinstance(error, UserError):
            raise
        err.print(f"[red]error:[/] {escape(error.message)}", highlight=False, soft_wrap=True)  # quoted names may
        if error.hint:  # hold Rich markup ("[/x]"): escaped, they print as written
            err.print(f"  hint: {escape(error.hint)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
