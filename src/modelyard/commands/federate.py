"""`modelyard federate`: federated training, simulated on this machine or as a server and sites over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)


def _round_line(metric: str):
    """Prints one line per aggregated round: the global model's validation `metric` and each site's rows."""

    def show(entry: dict[str, Any]) -> None:
        value = entry["validation"].get(metric)
        shown = f"validation {metric} {value:.4f}" if isinstance(value, float) else "no validation split"
        counts = " ".join(str(c["samples"]) for c in entry["clients"])
        console.print(
            f"round {entry['round']}: train loss {entry['train_loss']:.4f}, {shown} (site rows {counts})",
            highlight=False,
        )
        for failed in entry.get("failed_attempts", []):
            console.print(f"  attempt {failed['attempt']} refused: {escape(failed['reason'])}", highlight=False)
        for dropped in entry.get("dropped", []):
            console.print(f"  {escape(dropped['site'])} dropped out: {escape(dropped['reason'])}", highlight=False)

    return show


def _server_url(join: str) -> str:
    """--join's URL, checked before anything loads: a bare HOST:PORT would otherwise fail deep inside the HTTP
    client with no option named."""
    from urllib.parse import urlsplit

    parts = urlsplit(join)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # not a number, or above 65535
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise typer.BadParameter(
            f"{join!r} is not the server's URL: give http(s)://HOST:PORT, e.g. http://10.0.0.5:8765",
            param_hint="--join",
        )
    return join


def federate(
    config: Annotated[Path, typer.Argument(help="the YAML config (a site's: its own local data)")],
    clients: Annotated[int, typer.Option("--clients", min=1, help="sites to simulate, or to wait for (--listen)")] = 3,
    rounds: Annotated[
        int | None,
        typer.Option(min=1, help="rounds; default: the model's epochs (or its steps, with federated.local_steps)"),
    ] = None,
    local_epochs: Annotated[
        int,
        typer.Option("--local-epochs", min=1, help="epochs per site per round (federated.local_steps replaces them)"),
    ] = 1,
    strategy: Annotated[
        Literal["fedavg", "fedprox", "scaffold"],
        typer.Option(help="fedprox adds mu/2 ||w - w_global||^2; scaffold corrects drift with control variates"),
    ] = "fedavg",
    mu: Annotated[float, typer.Option(min=0.0, help="FedProx proximal weight (0.1: chosen on validation)")] = 0.1,
    partition: Annotated[Literal["iid", "dirichlet"], typer.Option(help="simulation: how rows are split")] = "iid",
    alpha: Annotated[float, typer.Option(help="Dirichlet concentration: small = skewed labels per site")] = 0.5,
    secure_aggregation: Annotated[bool, typer.Option("--secure-aggregation", help="pairwise masks")] = False,
    dp_clip: Annotated[float | None, typer.Option("--dp-clip", help="client DP: clip each update to this L2")] = None,
    dp_noise: Annotated[float | None, typer.Option("--dp-noise", help="client DP: noise std / clip")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="bundle folder")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a key: --set train.batch_size=64")] = None,
    listen: Annotated[str | None, typer.Option(help="run the server: HOST:PORT to listen on")] = None,
    join: Annotated[str | None, typer.Option(help="run a site: the server's URL, http://HOST:PORT")] = None,
    site: Annotated[str, typer.Option(help="this site's name in the server's history (--join)")] = "",
    token: Annotated[str | None, typer.Option(envvar="MODELYARD_FEDERATION_TOKEN", help="shared bearer token")] = None,
) -> None:
    """Federated training: sites train one model without pooling their rows; the result is an ordinary bundle.

    Simulation: modelyard federate examples/credit_scoring.yaml --clients 5 --partition dirichlet --alpha 0.5
    Server:     modelyard federate server.yaml --clients 2 --listen 0.0.0.0:8765
    Each site:  modelyard federate site.yaml --join http://SERVER:8765 --site branch-a
    """
    from modelyard.api import default_output
    from modelyard.commands.console import warn
    from modelyard.federated.rounds import Settings
    from modelyard.tasks import get_task, load_config

    url = _server_url(join) if join else None
    cfg = load_config(config, set_ or [])
    show = _round_line(get_task(cfg.task).main_metric)
    if url:
        from modelyard.federated.transport import join as join_federation

        def told(round_: int, message, reply: dict[str, Any]) -> None:
            console.print(f"round {round_ + 1}: trained on {message.samples} rows, loss {message.train_loss:.4f}")
            if not reply.get("accepted"):
                warn(f"the server did not take this update: {reply.get('reason')}")

        status = join_federation(cfg, url, site, token, on_round=told)
        print(json.dumps({"bundle_on_server": status["bundle"], "validation": status["validation"]}, indent=2))
        return
    settings = Settings(clients, rounds, local_epochs, strategy, mu, secure_aggregation, dp_clip, dp_noise)
    output = output or default_output(cfg.name)
    if listen:
        from modelyard.federated.transport import serve

        host, _, port = listen.rpartition(":")
        if not port.isdigit():
            raise typer.BadParameter("--listen takes HOST:PORT, e.g. 0.0.0.0:8765")

        def ready(federation) -> None:
            console.print(
                f"waiting for {clients} sites on http://{host or '127.0.0.1'}:{port} "
                f"({federation.settings.rounds} rounds)"
            )

        model = serve(cfg, settings, output, host or "127.0.0.1", int(port), token, show, ready, warn)
    else:
        from modelyard.federated.simulate import simulate

        model = simulate(cfg, settings, output, partition, alpha, on_round=show, on_warning=warn)
    metrics = json.loads((model.path / "metrics.json").read_text(encoding="utf-8"))
    test = {k: v for k, v in metrics.get("test", {}).items() if isinstance(v, int | float)}
    console.print(f"test: {escape(json.dumps({k: round(v, 4) for k, v in list(test.items())[:6]}))}", highlight=False)
    if model.version is not None:
        console.print(f"registered as {escape(cfg.name)} version {model.version}", highlight=False)
    print(model.path)
