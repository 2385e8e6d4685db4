"""SCAFFOLD (`--strategy scaffold`) on the committed credit-default slice: the drift correction reaches the local
steps, the control variates follow option II, and the site and server variates stay consistent in a simulation
and over HTTP with secure aggregation; federated.local_steps caps a site's steps per round."""

from __future__ import annotations

import dataclasses
import json
import math
import threading

import numpy as np
import pytest

from modelyard.errors import ConfigError
from modelyard.federated import aggregate, sites
from modelyard.federated.rounds import Federation, Settings, site_message
from modelyard.federated.simulate import simulate
from modelyard.tasks import load_config
from tests.integration.test_federated import ROW, _free_port, credit_config

SGD = ["federated.local_optimizer=sgd", "train.learning_rate=0.05", "train.weight_decay=0", "train.max_grad_norm=null"]


def _site(tmp_path, *overrides: str):
    config = load_config(credit_config(tmp_path, rows=slice(0, 500), epochs=1), [*overrides])
    federation = Federation.start(config, Settings(clients=1, strategy="scaffold"), track=False)
    rows = sites.local_data(federation.learner, federation.data.splits["train"])
    return federation, rows


def _send(federation, rows, request, control=None):
    f = federation
    return site_message(f.learner, f.names, f.weights, rows, f.config, request, f.settings, "s", None, control)


def test_scaffold_adds_c_minus_ci_to_each_gradient_and_updates_ci_by_option_two(tmp_path):
    federation, rows = _site(tmp_path, *SGD, "train.batch_size=4096")  # one epoch, one full batch: one SGD step
    request = federation.local_settings(0)
    assert request.scaffold and request.optimizer == "sgd" and request.epochs == 1
    size, lr = len(federation.weights), request.learning_rate
    mask = aggregate.parameter_mask(sites.local_learner(federation.learner).module, federation.names)
    rng = np.random.default_rng(0)
    server = np.where(mask, rng.normal(0, 0.02, size), 0).astype(np.float32)
    own = np.where(mask, rng.normal(0, 0.02, size), 0).astype(np.float32)

    plain = _send(federation, rows, dataclasses.replace(request, scaffold=False))
    zero = _send(federation, rows, request, (np.zeros(size, np.float32), np.zeros(size, np.float32)))
    np.testing.assert_allclose(zero.payload[:size], plain.payload, atol=1e-5)  # zero variates: FedAvg's update
    corrected = _send(federation, rows, request, (server, own))
    moved = (corrected.payload[:size] - plain.payload) / len(rows)  # the one step moved -lr * (c - c_i) further
    np.testing.assert_allclose(moved[mask], -lr * (server - own)[mask], atol=1e-6)

    batches = federation.config.train.model_copy(update={"batch_size": 128})
    federation.config = federation.config.model_copy(update={"train": batches})
    message = _send(federation, rows, request, (server, own))
    delta = message.payload[:size] / len(rows)
    option_two = own - server - delta / (math.ceil(len(rows) / 128) * lr)  # c_i - c + (x - y_i) / (K lr)
    np.testing.assert_allclose(message.control[mask], option_two[mask], atol=2e-4)
    np.testing.assert_array_equal(message.control[~mask], 0)  # batch norm statistics carry no variate
    np.testing.assert_allclose(message.payload[size:] / len(rows), message.control - own, atol=1e-5)


def test_local_steps_take_that_many_steps_a_round_and_the_default_rounds_match_the_centralised_steps(tmp_path):
    federation, rows = _site(tmp_path, *SGD, "train.batch_size=64", "federated.local_steps=1")
    request = federation.local_settings(0)
    assert request.steps == 1 and len(rows) > 3 * 64  # a full pass would take at least four steps
    train_rows = len(federation.data.splits["train"])
    assert federation.settings.rounds == 1 * math.ceil(train_rows / 64)  # epochs 1: a round per centralised step
    size, lr = len(federation.weights), request.learning_rate
    zero = np.zeros(size, np.float32)
    message = _send(federation, rows, request, (zero, zero))
    delta = message.payload[:size] / len(rows)
    mask = aggregate.parameter_mask(sites.local_learner(federation.learner).module, federation.names)
    np.testing.assert_allclose(message.control[mask], -delta[mask] / lr, atol=2e-4)  # option II with K = 1 step
    assert np.abs(delta[mask]).max() > 0


def test_a_scaffold_simulation_keeps_the_server_variate_the_weighted_mean_of_the_sites(tmp_path):
    config = load_config(credit_config(tmp_path, rows=slice(0, 900)))
    seen = {}
    model = simulate(
        config,
        Settings(clients=3, strategy="scaffold"),
        tmp_path / "bundle",
        "dirichlet",
        0.5,
        on_start=lambda f: seen.setdefault("federation", f),
        track=False,
    )
    federation = seen["federation"]
    assert model.predict([ROW])[0]["label"] in ("0", "1")
    assert federation.round == 2 and np.abs(federation.control).max() > 0
    assert json.loads((model.path / "metrics.json").read_text())["federation"]["strategy"] == "scaffold"


def test_scaffold_refuses_client_dp_naming_the_fields(tmp_path):
    config = load_config(credit_config(tmp_path), ["model.norm=layer"])
    with pytest.raises(ConfigError, match=r"scaffold.*train.privacy or --dp-clip/--dp-noise"):
        Federation.start(config, Settings(clients=2, strategy="scaffold", dp_clip=1.0, dp_noise=1.0), track=False)


def test_scaffold_over_http_with_secure_aggregation_keeps_site_and_server_variates_consistent(tmp_path):
    """A real server and two sites (threads) over HTTP, masks on: after the last round the server's c equals the
    sample-weighted mean of the c_i each site kept, to the masks' fixed point."""
    from modelyard.federated import transport

    port, url, result, kept = _free_port(), "", {}, {}
    url = f"http://127.0.0.1:{port}"
    server_config = load_config(credit_config(tmp_path, "server", slice(0, 300)))
    settings = Settings(2, strategy="scaffold", secure_aggregation=True)

    def run(key: str, work) -> threading.Thread:
        thread = threading.Thread(target=lambda: result.setdefault(key, work()))
        thread.start()
        return thread

    seen = {}
    threads = [
        run(
            "model",
            lambda: transport.serve(
                server_config, settings, tmp_path / "b", port=port, on_ready=lambda f: seen.setdefault("f", f)
            ),
        )
    ]
    for name, rows in (("a", slice(300, 800)), ("b", slice(800, 1000))):
        config = load_config(credit_config(tmp_path, name, rows))

        def keep(round_, message, reply, name=name):
            kept[name] = (message.samples, message.control, reply["accepted"])

        threads.append(run(name, lambda c=config, n=name, k=keep: transport.join(c, url, n, poll_s=0.1, on_round=k)))
    for thread in threads:
        thread.join(timeout=180)
    assert result["a"]["phase"] == "done" and result["b"]["phase"] == "done"
    assert kept["a"][2] and kept["b"][2]
    (na, ca, _), (nb, cb, _) = kept["a"], kept["b"]
    assert np.abs(ca - cb).max() > 1e-3  # the sites' data differ, so do their variates
    np.testing.assert_allclose(seen["f"].control, (na * ca + nb * cb) / (na + nb), atol=1e-5)
