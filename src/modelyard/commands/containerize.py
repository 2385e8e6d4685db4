"""`modelyard containerize BUNDLE`: a Docker build context and a Kubernetes manifest that serve the bundle offline."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def containerize(
    bundle: Annotated[str, typer.Argument(help="the bundle folder to serve, or models:/NAME@ALIAS")],
    output: Annotated[Path, typer.Option("--output", "-o", help="new or empty folder for the build context")] = Path(
        "container"
    ),
    image: Annotated[str | None, typer.Option(help="image name in k8s.yaml (default modelyard-NAME:latest)")] = None,
    replicas: Annotated[int, typer.Option(min=1, help="pods in the Deployment")] = 1,
    wheel: Annotated[
        Path | None, typer.Option(help="a modelyard wheel to install (default: built from this checkout)")
    ] = None,
) -> None:
    """Write Dockerfile, .dockerignore, k8s.yaml (Deployment + Service with /healthz and /readyz probes and
    resources sized from the bundle), a copy of the bundle and a modelyard wheel. The image needs the Python
    package index only while it is built; it serves with HF_HUB_OFFLINE=1 as a non-root user.

    Example: modelyard containerize models:/banking-intents@champion --output build/banking
    """
    from modelyard.export.container import containerize as run
    from modelyard.loader import bundle_path

    written = run(bundle_path(bundle), output, image, replicas, wheel)
    err = Console(stderr=True)
    context, manifest = shlex.quote(str(output)), shlex.quote(str(output / "k8s.yaml"))
    # quoted as a shell reads them, on one line: a folder name with a space or markup must paste as it is
    err.print(
        f"build: docker build -t IMAGE {context}    deploy: kubectl apply -f {manifest}",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    for path in written:
        print(path)
