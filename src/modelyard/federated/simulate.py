"""`modelyard federate CONFIG --clients N`: N sites simulated in one process, one after another on one copy of
the model (a site's state is only its rows and, under secure aggregation, its key pair), so memory does not grow
with N. The same `rounds` code serves the real multi-process federation (`transport`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from modelyard.config import Config
from modelyard.federated import aggregate, partition, sites
from modelyard.federated.rounds import Federation, Settings, check_site, site_message


def simulate(
    config: Config,
    settings: Settings,
    output: str | Path,
    split: Literal["iid", "dirichlet"] = "iid",
    alpha: float = 0.5,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[Federation], None] | None = None,
    track: bool = True,
    on_warning: Callable[[str], None] | None = None,
):
    """Partition the training split among `settings.clients` sites, run the rounds, write the bundle.
    Under SCAFFOLD each site's control variate lives here, in memory, from round to round.

    With `federated.dropout` p, each asked site fails to report with probability p (drawn from the round's
    seed, so a run repeats); the round then goes on as `Federation.close` decides."""
    federation = Federation.start(config, settings, track=track, on_warning=on_warning)
    try:
        return _run(federation, settings, output, split, alpha, on_round, on_start)
    except BaseException:
        federation.fail()
        raise


def _run(
    federation: Federation,
    settings: Settings,
    output: str | Path,
    split: Literal["iid", "dirichlet"],
    alpha: float,
    on_round: Callable[[dict[str, Any]], None] | None,
    on_start: Callable[[Federation], None] | None,
):
    """The simulation's sites and rounds, after the server's start; `simulate` marks the run failed if it raises."""
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
    names = [f"site-{k}" for k in range(len(parts))]
    defaults = sites.local_learner(federation.learner).train_defaults()
    for name, rows in zip(names, local, strict=True):
        work = (settings.local_epochs, config.federated.local_steps, settings.rounds)
        check_site(config, work, len(rows), name, defaults)
    controls = [np.zeros_like(federation.weights) for _ in parts] if federation.control is not None else []
    dropout = config.federated.dropout
    if on_start is not None:
        on_start(federation)
    while not federation.done:
        asked = [k for k in range(len(parts)) if federation.takes_part(names[k])]
        draw = np.random.default_rng([seed, federation.round, federation.attempt]).random(len(parts))
        why = f"simulated dropout (federated.dropout {dropout:g})"
        missing = {names[k]: why for k in asked if draw[k] < dropout}
        messages = []
        for k in asked:
            if names[k] in missing:
                continue
            masks = None
            if keys:  # masks with every site asked, dropped or not: a dropout's masks stay in the sum
                round_ = (federation.round, federation.attempt)
                masks = (k, {j: aggregate.shared_seed(keys[k][0], keys[j][1], *round_) for j in asked if j != k})
            request = federation.local_settings(k)
            messages.append(
                site_message(
                    federation.learner,
                    federation.names,
                    federation.weights,
                    local[k],
                    config,
                    request,
                    settings,
                    names[k],
                    masks,
                    (federation.control, controls[k]) if controls else None,
                )
            )
        entry = federation.close(messages, missing)
        if entry is not None and controls:  # SCAFFOLD: a site keeps its new c_i once the round counted it
            for m in messages:
                controls[names.index(m.site)] = m.control
        if entry is not None and on_round is not None:
            on_round(entry)
    report = {"mode": "simulation", "partition": split, **({"alpha": alpha} if split == "dirichlet" else {})}
    report["sites"] = names
    if counts is not None:
        report["label_counts"] = counts
    return federation.finish(output, report)
