"""`modelyard models ...`: the registry from the terminal (list, show, promote, rollback, log)."""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from modelyard.commands.console import print_json
from modelyard.errors import ModelNotFoundError, UserError
from modelyard.state import masked
from modelyard.tracking import registry

app = typer.Typer(
    name="models",
    help="The model registry: versions, aliases (champion, challenger, ...) and their audit trail.",
    no_args_is_help=True,
)
console = Console()


def _table_console() -> Console:
    """Where tables go: the terminal's width on a terminal; piped or redirected, wide enough that no row wraps, so
    a bundle path stays whole for grep and copy-paste (Rich would wrap to 80 columns)."""
    return console if sys.stdout.isatty() else Console(width=10_000)


def age(when: datetime) -> str:
    seconds = max(0.0, (datetime.now(UTC) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def _metric(version: registry.VersionInfo | None) -> str:
    if version is None or not version.metrics:
        return "-"
    name = version.main_metric if version.main_metric in version.metrics else next(iter(version.metrics))
    return f"{name} {version.metrics[name]:.4g} (v{version.version})"


def _aliases(aliases: dict[str, str]) -> str:
    return ", ".join(f"{a} -> v{v}" for a, v in sorted(aliases.items())) or "-"


def _model_name(name: str) -> str:
    """The registered model's name; a models:/ URI here (a bundle reference) is refused naming the name in it."""
    if registry.is_model_uri(name):
        bare = registry.parse_model_uri(name)[0]
        raise UserError(
            f"{name} is a model URI; this command takes a registered model NAME", f"give the name in it: {bare}"
        )
    return name


def _registered_as(name: str, bundle_id: str) -> registry.VersionInfo | None:
    """The newest version of `name` that registered the bundle with this id, if any."""
    try:
        versions = registry.describe(name).versions
    except ModelNotFoundError:  # no version of that name yet
        return None
    return next((v for v in versions if v.bundle_id == bundle_id), None)


JSON_OPTION = typer.Option("--json", help="print every version, alias and audit entry as JSON")


@app.command("list")
def list_(json_: Annotated[bool, JSON_OPTION] = False) -> None:
    """Every registered model with its versions, aliases, main test metric and age.

    Example: modelyard models list --json
    """
    models = registry.list_models()
    if json_:
        print_json([asdict(model) for model in models])
        return
    if not models:
        console.print("No registered models yet: `modelyard train CONFIG` registers one.")
        return
    table = Table(title=f"Registered models ({masked(registry.store.tracking_uri())})")
    for column in ("name", "versions", "aliases", "main test metric", "updated"):
        table.add_column(column, justify="right" if column == "versions" else "left", no_wrap=column == "name")
    for model in models:
        table.add_row(
            model.name,
            str(len(model.versions)),
            _aliases(model.aliases),
            _metric(model.headline()),
            age(model.updated),
        )
    _table_console().print(table)


@app.command()
def show(
    name: str = typer.Argument(..., help="registered model name (the config's `name`)"),
    json_: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Versions with their test metrics, aliases and bundles, then the audit trail of alias moves.

    Example: modelyard models show banking-intents
    """
    model = registry.describe(_model_name(name))
    if json_:
        print_json(asdict(model))
        return
    out = _table_console()
    table = Table(title=f"{model.name}: {len(model.versions)} version(s), aliases {_aliases(model.aliases)}")
    for column in ("version", "aliases", "test metrics", "created", "bundle"):
        table.add_column(column, overflow="fold")
    for v in model.versions:
        shown = {k: val for k, val in v.metrics.items() if k != "samples"}  # a count, not a score
        ordered = sorted(shown.items(), key=lambda kv: (kv[0] != v.main_metric, kv[0]))
        metrics = "\n".join(f"{k} {val:.4g}" for k, val in ordered)
        table.add_row(v.version, ", ".join(v.aliases) or "-", metrics or "-", age(v.created), v.bundle_path or "-")
    out.print(table)
    if not model.trail:
        out.print("No alias moves recorded yet.")
        return
    trail = Table(title="Audit trail (alias moves)")
    for column in ("when", "who", "action", "alias", "move", "why"):
        trail.add_column(column)
    for move in model.trail:
        before = f"v{move.from_version}" if move.from_version else "(none)"
        trail.add_row(
            move.when[:16].replace("T", " "),
            move.who,
            move.action,
            move.alias,
            f"{before} -> v{move.to_version}",
            move.why or "-",
        )
    out.print(trail)


@app.command()
def promote(
    name: str = typer.Argument(..., help="registered model name"),
    version: str = typer.Argument(..., help="version number to point the alias at"),
    alias: str = typer.Option(..., "--alias", "-a", help="alias to move, e.g. champion or challenger"),
    reason: str = typer.Option("", "--reason", "-r", help="why (kept in the audit trail)"),
) -> None:
    """Point an alias at a version and record who, when and why.

    Example: modelyard models promote banking-intents 3 --alias champion --reason "beats v2 on macro_f1"
    """
    move = registry.promote(_model_name(name), version, alias, reason)
    if move is None:
        console.print(f"'{alias}' of {name} already points at version {version}; nothing changed.")
        return
    before = f"version {move.from_version}" if move.from_version else "nothing"
    console.print(f"{name}@{alias}: {before} -> version {move.to_version} (by {move.who})")


@app.command()
def rollback(
    name: str = typer.Argument(..., help="registered model name"),
    alias: str = typer.Option("champion", "--alias", "-a", help="alias to move back"),
    reason: str = typer.Option("", "--reason", "-r", help="why (kept in the audit trail)"),
) -> None:
    """Move an alias back to the version that held it before its last promotion.

    Example: modelyard models rollback banking-intents --reason "v3 misroutes card questions"
    """
    move = registry.rollback(_model_name(name), alias, reason)
    console.print(f"{name}@{alias}: version {move.from_version} -> version {move.to_version} (rolled back)")


@app.command()
def log(bundle: Path = typer.Argument(..., help="a bundle folder written by `modelyard train`")) -> None:
    """Log an existing bundle as a run and register it as a new version (e.g. after the store was down); a bundle
    already registered is reported, not registered again, so a retried script makes no duplicate versions.

    Example: modelyard models log runs/banking-intents
    """
    from modelyard.bundle import identity, read_manifest
    from modelyard.tracking.runs import log_bundle

    manifest = read_manifest(bundle)
    if held := _registered_as(manifest["name"], identity(manifest)):
        console.print(
            f"already registered: {manifest['name']} version {held.version} (run {held.run_id}); nothing logged"
        )
        return
    version = log_bundle(bundle)
    console.print(f"registered {version.name} version {version.version} (run {version.run_id})")
