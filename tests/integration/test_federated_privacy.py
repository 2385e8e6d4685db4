"""What a federation with DP checks before any round: every site trains with the server's train.privacy (an
update without its epsilon is refused), each site's rows can carry its share of the budget, and a site's table
has the server's columns."""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest
from test_federated import _free_port, credit_config

from modelyard.config import PrivacyConfig
from modelyard.errors import ConfigError, DataError, UserError
from modelyard.federated import sites, transport
from modelyard.federated.rounds import Federation, Settings
from modelyard.federated.simulate import simulate
from modelyard.tasks import load_config

PRIVATE = ["model.norm=layer", "train.batch_size=32", "train.privacy={epsilon: 8, delta: 1.0e-4}"]


def test_sites_over_http_train_with_the_servers_privacy_and_the_budget_is_reported(tmp_path):
    server_config = load_config(credit_config(tmp_path, "server", slice(0, 500), epochs=1), PRIVATE)
    site_config = load_config(credit_config(tmp_path, "a", slice(500, 1000), epochs=1), ["model.norm=layer"])
    port, result = _free_port(), {}
    run = lambda: result.setdefault("model", transport.serve(server_config, Settings(1), tmp_path / "b", port=port))  # noqa: E731
    server = threading.Thread(target=run, daemon=True)  # a failing site must not leave pytest waiting on it
    server.start()
    status = transport.join(site_config, f"http://127.0.0.1:{port}", "a", poll_s=0.1)  # no train.privacy of its own
    server.join(timeout=120)
    assert status["phase"] == "done"
    spent = json.loads((tmp_path / "b" / "metrics.json").read_text())["privacy"]
    assert 0 < spent["epsilon"] <= 8 and spent["delta"] == pytest.approx(1e-4)
    history = [json.loads(line) for line in (tmp_path / "b" / "history.jsonl").read_text().splitlines()]
    assert all(c["epsilon"] > 0 for h in history for c in h["clients"])


def test_a_site_refused_for_its_own_privacy_holds_no_place_and_joins_once_it_takes_the_servers(tmp_path):
    server_config = load_config(credit_config(tmp_path, "server", slice(0, 500), epochs=1), PRIVATE)
    other = [*PRIVATE[:2], "train.privacy={epsilon: 50, delta: 1.0e-4}"]
    refused = load_config(credit_config(tmp_path, "a", slice(500, 1000), epochs=1), other)
    site_config = load_config(credit_config(tmp_path, "a", slice(500, 1000), epochs=1), ["model.norm=layer"])
    port, result = _free_port(), {}
    run = lambda: result.setdefault("model", transport.serve(server_config, Settings(1), tmp_path / "b", port=port))  # noqa: E731
    server = threading.Thread(target=run, daemon=True)
    server.start()
    with pytest.raises(UserError, match="differs from the federation's"):
        transport.join(refused, f"http://127.0.0.1:{port}", "a", poll_s=0.1)
    # as the hint says, without train.privacy: the federation of one site still has its place free
    status = transport.join(site_config, f"http://127.0.0.1:{port}", "a", poll_s=0.1)
    server.join(timeout=120)
    assert status["phase"] == "done"


def test_a_private_federation_reports_its_privacy_in_metrics_and_card_as_a_private_train_run_does(tmp_path):
    config = load_config(credit_config(tmp_path, epochs=1), PRIVATE)
    model = simulate(config, Settings(clients=2, rounds=2), tmp_path / "b")
    metrics = json.loads((model.path / "metrics.json").read_text())
    assert "epsilon" not in metrics  # where a private `train` run keeps it too: under `privacy`
    spent = metrics["privacy"]
    assert 0 < spent["epsilon"] <= 8 and spent["delta"] == pytest.approx(1e-4)
    assert spent["target_epsilon"] == 8 and spent["accountant"] == "rdp"
    assert spent["federated"]["mechanism"] == "dp_sgd_at_sites" and spent["federated"]["updates"] == 2
    card = (model.path / "MODEL_CARD.md").read_text()
    assert f"## Privacy\n\nTrained federated with DP-SGD at each site: (ε = {spent['epsilon']:.4g}" in card


def test_a_private_federation_refuses_an_update_without_its_epsilon(tmp_path):
    config = load_config(credit_config(tmp_path, epochs=1), PRIVATE)
    federation = Federation.start(config, Settings(1), track=False)
    coordinator = transport.Coordinator(federation, tmp_path / "b", None)
    client = coordinator.join("a", None)
    body = np.zeros(len(federation.weights), dtype=np.float32).tobytes()
    with pytest.raises(UserError, match="without the epsilon"):
        coordinator.submit(client, 0, 0, 100, 0.5, "float32", body, None)


def test_a_site_takes_the_servers_privacy_and_batch_size_and_refuses_a_different_privacy(tmp_path):
    config = load_config(credit_config(tmp_path, epochs=1), ["model.norm=layer"])
    server = {"epsilon": 4.0, "delta": 1e-5, "max_grad_norm": 1.0, "train_layers": 2}
    taken = transport._server_training(config, {"privacy": server, "batch_size": 32}).train
    assert taken.privacy == PrivacyConfig(**server) and taken.batch_size == 32
    assert transport._server_training(config, {"privacy": None}).train.privacy is None
    own = load_config(credit_config(tmp_path, epochs=1), PRIVATE)
    same = own.train.privacy.model_dump()
    assert transport._server_training(own, {"privacy": same, "batch_size": 64}).train.batch_size == 32  # its own
    with pytest.raises(UserError, match="differs from the federation's"):
        transport._server_training(own, {"privacy": server})


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["train.privacy.delta=0.05"], r"site-0: train\.privacy\.delta 0\.05 is not below 1 / \d+ rows"),
        (["train.batch_size=400"], r"site-0: train\.privacy: train\.batch_size 400 is not below the \d+"),
        (["train.privacy.epsilon=1.0e-6"], r"site-0: train\.privacy\.epsilon .* cannot be reached"),
    ],
)
def test_each_simulated_sites_share_of_the_budget_is_checked_before_any_round(tmp_path, overrides, match):
    config = load_config(credit_config(tmp_path, rows=slice(0, 400), epochs=1), [*PRIVATE, *overrides])
    with pytest.raises(ConfigError, match=match):
        simulate(config, Settings(clients=3), tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_a_site_without_one_of_the_models_columns_is_refused(tmp_path):
    config = load_config(credit_config(tmp_path, epochs=1))
    federation = Federation.start(config, Settings(1), track=False)
    frame = pd.read_csv(tmp_path / "credit.csv").drop(columns=["PAY_AMT6"])
    with pytest.raises(DataError, match="lacks 1 of the model's columns: PAY_AMT6"):
        sites.local_data(federation.learner, frame)
