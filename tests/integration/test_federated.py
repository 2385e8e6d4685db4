"""Federated training on real slices: the tabular MLP on the committed credit-default rows, MiniLM on BANKING77,
simulated in one process and run as a server and two site processes on localhost."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import modelyard
from modelyard.federated import aggregate, sites
from modelyard.federated.rounds import Federation, Settings, site_message
from modelyard.federated.simulate import simulate
from modelyard.tasks import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CREDIT = EXAMPLES / "data" / "credit_default" / "credit_default_2000.csv"
ROW = {"LIMIT_BAL": 20000, "EDUCATION": 2, "MARRIAGE": 1, "AGE": 24, "PAY_0": 2, "PAY_2": 2, "BILL_AMT1": 3913}


def credit_config(folder: Path, name: str = "credit", rows: slice = slice(None), epochs: int = 2) -> Path:
    pd.read_csv(CREDIT).iloc[rows].to_csv(folder / f"{name}.csv", index=False)
    config = yaml.safe_load((EXAMPLES / "credit_scoring.yaml").read_text())
    config["data"]["train"] = f"{name}.csv"
    config["model"]["backbone"] = "mlp"
    config["train"] = {"epochs": epochs, "time_limit_s": None}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def credit_bundle(tmp_path_factory):
    """Three simulated sites, non-IID by label, two rounds on the 1,400 training rows of the committed slice."""
    folder = tmp_path_factory.mktemp("federated")
    config = load_config(credit_config(folder))
    return simulate(config, Settings(clients=3), folder / "bundle", "dirichlet", 0.5)


def test_simulation_with_three_clients_writes_a_bundle_that_predicts(credit_bundle):
    loaded = modelyard.load(credit_bundle.path)
    answer = loaded.predict([ROW])[0]
    assert answer["label"] in ("0", "1") and 0 <= answer["probability"] <= 1
    history = [json.loads(line) for line in (loaded.path / "history.jsonl").read_text().splitlines()]
    assert [h["round"] for h in history] == [1, 2]
    assert len(history[0]["clients"]) == 3 and all(c["samples"] > 0 for c in history[0]["clients"])
    assert "roc_auc" in history[-1]["validation"]
    metrics = json.loads((loaded.path / "metrics.json").read_text())
    report = json.loads((loaded.path / "data_report.json").read_text())
    assert metrics["federation"]["clients"] == 3
    assert sum(metrics["federation"]["clients_samples"]) == report["splits"]["train"]
    assert report["federation"]["partition"] == "dirichlet" and len(report["federation"]["label_counts"]) == 3
    assert 0.5 < metrics["test"]["roc_auc"] <= 1


def test_the_report_shows_the_federation_rounds_and_sites(credit_bundle, tmp_path):
    from modelyard.evaluation.report import write_report

    html = write_report(credit_bundle.path, tmp_path / "report.html").read_text()
    assert "Federation" in html and "site-0" in html and "site-2" in html
    assert "rows per label at each site" in html


def _first_round(config_path: Path, settings: Settings, site: int = 0) -> tuple[Federation, np.ndarray]:
    federation = Federation.start(load_config(config_path), settings)
    rows = sites.local_data(federation.learner, federation.data.splits["train"])
    request = federation.local_settings(site)
    message = site_message(
        federation.learner, federation.names, federation.weights, rows, federation.config, request, settings, "site"
    )
    return federation, message.payload / message.samples


def test_fedprox_pulls_the_local_update_towards_the_global_model(tmp_path):
    path = credit_config(tmp_path, epochs=1)
    _, fedavg = _first_round(path, Settings(clients=1))
    _, fedprox = _first_round(path, Settings(clients=1, strategy="fedprox", mu=1.0))
    assert not np.allclose(fedavg, fedprox)
    assert np.linalg.norm(fedprox) < np.linalg.norm(fedavg)


def test_secure_aggregation_trains_the_same_model_as_plain_aggregation(tmp_path):
    config = load_config(credit_config(tmp_path, epochs=1))
    weights = {}
    for secure in (False, True):
        simulate(
            config,
            Settings(clients=3, secure_aggregation=secure),
            tmp_path / f"b{secure}",
            on_start=lambda f: None,
            on_round=lambda e, s=secure: None,
        )
        model = modelyard.load(tmp_path / f"b{secure}")
        module = sites.local_learner(model.learner).module
        weights[secure] = aggregate.flatten(module, aggregate.trainable_names(module))
    assert np.abs(weights[True] - weights[False]).max() < 1e-5


def test_client_dp_reports_the_privacy_spent(tmp_path):
    config = load_config(credit_config(tmp_path, epochs=1), ["model.norm=layer"])
    model = simulate(config, Settings(clients=2, dp_clip=1.0, dp_noise=2.0), tmp_path / "bundle")
    metrics = json.loads((model.path / "metrics.json").read_text())
    assert metrics["delta"] == 1e-5
    assert metrics["epsilon"] == pytest.approx(aggregate.dp_epsilon(2.0, 1, 1e-5), abs=1e-3)


def test_client_dp_refuses_batch_norm(tmp_path):
    from modelyard.errors import ConfigError

    with pytest.raises(ConfigError, match="batch norm"):
        Federation.start(load_config(credit_config(tmp_path)), Settings(clients=2, dp_clip=1.0, dp_noise=1.0))


@pytest.mark.slow  # MiniLM: about a minute of CPU
def test_minilm_text_classifier_federates_into_a_servable_bundle(banking_slice, tmp_path):
    config = {
        "name": "fed-text",
        "task": "text_classification",
        "data": {
            "train": str(banking_slice / "train.csv"),
            "test": str(banking_slice / "test.csv"),
            "text_column": "text",
            "label_column": "category",
        },
        "model": {"backbone": "minilm-l6", "max_length": 32},
        "train": {"epochs": 1, "batch_size": 16},
    }
    (tmp_path / "text.yaml").write_text(yaml.safe_dump(config))
    model = simulate(load_config(tmp_path / "text.yaml"), Settings(clients=3), tmp_path / "bundle", "dirichlet", 1.0)
    loaded = modelyard.load(model.path)
    answer = loaded.predict(["I lost my card, please block it"])[0]
    assert answer["label"] in loaded.manifest["labels"]
    history = [json.loads(line) for line in (model.path / "history.jsonl").read_text().splitlines()]
    assert "accuracy" in history[0]["validation"] and len(history[0]["clients"]) == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # three processes each importing torch: ~30 s of CPU
def test_a_server_and_two_site_processes_train_over_http_on_localhost(tmp_path):
    server = credit_config(tmp_path, "server", slice(0, 600))
    site_a = credit_config(tmp_path, "a", slice(600, 1300))
    site_b = credit_config(tmp_path, "b", slice(1300, 2000))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MODELYARD_FEDERATION_TOKEN": "s3cret"}
    cli = [sys.executable, "-m", "modelyard", "federate"]
    procs = [
        subprocess.Popen(
            [
                *cli,
                str(server),
                "--clients",
                "2",
                "--listen",
                f"127.0.0.1:{port}",
                "--secure-aggregation",
                "--output",
                str(tmp_path / "bundle"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ),
        *(
            subprocess.Popen(
                [*cli, str(p), "--join", url, "--site", p.stem], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for p in (site_a, site_b)
        ),
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
    assert outputs[0][0].decode().strip().splitlines()[-1] == str(tmp_path / "bundle")
    assert json.loads(outputs[1][0])["bundle_on_server"] == str(tmp_path / "bundle")
    model = modelyard.load(tmp_path / "bundle")
    assert model.predict([ROW])[0]["label"] in ("0", "1")
    history = [json.loads(line) for line in (model.path / "history.jsonl").read_text().splitlines()]
    assert [c["site"] for c in history[0]["clients"]] in (["a", "b"], ["b", "a"])
    assert [c["samples"] for c in history[0]["clients"]] == [700, 700]
    assert json.loads((model.path / "data_report.json").read_text())["federation"]["secure_aggregation"] is True


def test_a_site_without_the_token_is_refused(tmp_path):
    from modelyard.errors import UserError
    from modelyard.federated import transport

    coordinator = transport.Coordinator(
        Federation.start(load_config(credit_config(tmp_path)), Settings(clients=2)), tmp_path / "bundle", "s3cret"
    )
    from fastapi.testclient import TestClient

    client = TestClient(transport.make_app(coordinator))
    assert client.get(transport.PREFIX).status_code == 401
    ok = client.get(transport.PREFIX, headers={"Authorization": "Bearer s3cret"})
    assert ok.json()["clients"] == 2
    with pytest.raises(UserError, match="join first"):
        coordinator.status(5)
