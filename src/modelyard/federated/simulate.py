"""`modelyard federate CONFIG --clients N`: N sites simulated in one process, one after another on one copy of
the model (a site's state is only its rows and, under secure aggregation, its key pair), so memory does not grow
with N. The same `rounds` code serves the real multi-process federation (`transport`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from modelyard.config import Config
from modelyard.federated import aggregate, partition, sites
from modelyard.federated.rounds import Federation, Settings, site_message


def simulate(
    config: Config,
    settings: Settings,
    output: str | Path,
    split: Literal["iid", "dirichlet"] = "iid",
    alpha: float = 0.5,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[Federation], None] | None = None,
):
    """Partition the training split among `settings.clients` sites, run the rounds, write the bundle."""
    federation = Federation.start(config, settings)
    config, train = federation.config, federation.data.splits["train"]
    seed = config.train.seed
    if split == "dirichlet":
        labels = sites.label_values(config, train)
        parts = partition.dirichlet(labels, settings.clients, alpha, seed)
        counts = partition.label_counts(labels, parts)
    else:
        parts = partition.iid(len(train), settings.clients, seed)
        counts = None
    local = [sites.local_data(federation.learner, train.iloc[rows]) for rows in parts]
    keys = [aggregate.key_pair() for _ in parts] if settings.secure_aggregation else []
    if on_start is not None:
        on_start(federation)
    while not federation.done:
        messages = []
        for k, data in enumerate(local):
            masks = None
            if keys:
                peers = {
                    j: aggregate.shared_seed(keys[k][0], keys[j][1], federation.round)
                    for j in range(len(keys))
                    if j != k
                }
                masks = (k, peers)
            request = federation.local_settings(k)
            messages.append(
                site_message(
                    federation.learner,
                    federation.names,
                    federation.weights,
                    data,
                    config,
                    request,
                    settings,
                    f"site-{k}",
                    masks,
                )
            )
        entry = federation.aggregate(messages)
        if on_round is not None:
            on_round(entry)
    report = {"mode": "simulation", "partition": split, **({"alpha": alpha} if split == "dirichlet" else {})}
    if counts is not None:
        report["label_counts"] = counts
    return federation.finish(output, report)
