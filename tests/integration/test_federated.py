"""Federated training on real slices: the tabular MLP on the committed credit-default rows, MiniLM on BANKING77,
simulated in one process and run as a server and two site processes on localhost."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import subprocess
import sys
import time
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
def tracked(tmp_path_factory):
    """Three simulated sites, non-IID by label, two rounds on the 1,400 training rows of the committed slice,
    tracked in MLflow as `train` would be (its own home); returns the bundle and the tracking store's URI."""
    folder = tmp_path_factory.mktemp("federated")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELYARD_HOME", str(folder / "home"))
        mp.setenv("MODELYARD_TRACKING", "on")
        mp.delenv("MODELYARD_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        config = load_config(credit_config(folder))
        model = simulate(config, Settings(clients=3), folder / "bundle", "dirichlet", 0.5)
        return model, f"sqlite:///{folder / 'home' / 'mlflow.db'}"


@pytest.fixture(scope="module")
def credit_bundle(tracked):
    return tracked[0]


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


def test_a_federation_is_tracked_and_registered_like_train(tracked, monkeypatch):
    from modelyard.tracking import registry, store

    model, uri = tracked
    monkeypatch.setenv("MODELYARD_TRACKING_URI", uri)
    assert model.version == "1"
    version = registry.get_version("credit-scoring", version="1")
    assert version.tags["bundle_path"] == str(model.path)
    client = store.client()
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED" and "test_roc_auc" in run.data.metrics
    params = run.data.params
    assert params["federation.strategy"] == "fedavg" and params["federation.clients"] == "3"
    assert params["federation.partition"] == "dirichlet" and params["federation.alpha"] == "0.5"
    assert params["federation.secure_aggregation"] == "false" and params["federated.min_sites"] == "null"
    assert params["federation.min_sites"] == "2"
    curve = client.get_metric_history(version.run_id, "validation_roc_auc")
    assert [m.step for m in curve] == [1, 2]
    assert [m.value for m in client.get_metric_history(version.run_id, "sites_reported")] == [3.0, 3.0]
    logged = {f.path for f in client.list_artifacts(version.run_id, "bundle")}
    assert {"bundle/metrics.json", "bundle/history.jsonl"} <= logged


def _dropout_config(folder: Path, *overrides: str):
    return load_config(credit_config(folder, rows=slice(0, 700)), list(overrides))


def test_with_secure_aggregation_a_dropout_is_refused_and_the_round_rerun_without_the_site(tmp_path):
    config = _dropout_config(tmp_path, "federated.dropout=0.3", "federated.round_retries=3")
    model = simulate(config, Settings(clients=4, secure_aggregation=True), tmp_path / "bundle")
    history = [json.loads(line) for line in (model.path / "history.jsonl").read_text().splitlines()]
    rerun = [h for h in history if h.get("failed_attempts")]
    assert rerun, "the seeded draws drop a site in some round"
    failed = rerun[0]["failed_attempts"][0]
    assert "secure aggregation" in failed["reason"] and failed["missing"]
    gone = set(failed["missing"])
    assert gone == {d["site"] for d in rerun[0]["dropped"]}
    assert gone.isdisjoint(c["site"] for c in rerun[0]["clients"])
    assert rerun[0]["sites_reported"] == 4 - len(gone) >= 2
    assert rerun[0]["validation"]["roc_auc"] > 0.6  # masks that failed to cancel would leave noise of 2^64
    metrics = json.loads((model.path / "metrics.json").read_text())
    assert metrics["federation"]["dropouts"] >= len(gone)


def test_a_round_short_of_min_sites_fails_after_its_retries_naming_the_missing_sites(tmp_path):
    from modelyard.errors import UserError

    config = _dropout_config(tmp_path, "federated.dropout=0.95", "federated.round_retries=1")
    with pytest.raises(UserError, match=r"round 1 failed 2 times.*fewer than min_sites 2.*site-\d \(simulated"):
        simulate(config, Settings(clients=3), tmp_path / "bundle")
    assert not (tmp_path / "bundle" / "modelyard.json").exists()


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
    spent = json.loads((model.path / "metrics.json").read_text())["privacy"]
    assert spent["delta"] == 1e-5 and spent["federated"]["mechanism"] == "client_dp"
    assert spent["epsilon"] == pytest.approx(aggregate.dp_epsilon(2.0, 1, 1e-5), abs=1e-3)
    assert "## Privacy\n\nTrained federated with client-level DP" in (model.path / "MODEL_CARD.md").read_text()


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


def test_the_server_closes_a_round_without_sites_that_left_or_went_silent(tmp_path):
    """A real server over HTTP with three sites: one trains (in a thread), one leaves as a failing site does, one
    joins and is never heard from again; each round ends at its timeout with the site that reported."""
    import threading

    import httpx

    from modelyard.federated import transport

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    overrides = ["federated.round_timeout_s=2", "federated.min_sites=1", "federated.round_retries=10"]
    server_config = load_config(credit_config(tmp_path, "server", slice(0, 500)), overrides)
    site_config = load_config(credit_config(tmp_path, "a", slice(500, 1000)))
    result = {}

    def run(key: str, work) -> threading.Thread:
        thread = threading.Thread(target=lambda: result.setdefault(key, work()))
        thread.start()
        return thread

    server = run("model", lambda: transport.serve(server_config, Settings(3), tmp_path / "b", port=port))
    with httpx.Client(base_url=url) as http:
        silent = transport._call(http, "POST", f"{transport.PREFIX}/join", json={"site": "silent"}).json()
        failing = transport._call(http, "POST", f"{transport.PREFIX}/join", json={"site": "failing"}).json()
        assert silent["client_id"] != failing["client_id"]
        site = run("site", lambda: transport.join(site_config, url, "a", poll_s=0.1))
        while transport._call(http, "GET", f"{transport.PREFIX}/status", params=failing).json()["phase"] != "training":
            time.sleep(0.1)
        reason = {"client_id": failing["client_id"], "reason": "RuntimeError: disk full"}
        transport._call(http, "POST", f"{transport.PREFIX}/leave", json=reason)
        site.join(timeout=120)
    server.join(timeout=120)
    assert result["site"]["phase"] == "done" and result["model"].path == (tmp_path / "b").resolve()
    history = [json.loads(line) for line in (tmp_path / "b" / "history.jsonl").read_text().splitlines()]
    assert [[c["site"] for c in h["clients"]] for h in history] == [["a"], ["a"]]
    assert history[0]["dropped"] == [
        {"site": "silent", "reason": "no update within 2 s"},
        {"site": "failing", "reason": "left: RuntimeError: disk full"},
    ]
    assert history[1]["dropped"] == [{"site": "silent", "reason": "no update within 2 s"}]


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


def test_balanced_local_loss_keeps_a_label_skewed_site_from_dragging_the_global_model(tmp_path):
    """A site that holds ten defaults to one non-default: with plain cross-entropy its round pushes the shared
    model to call most rows defaults; balanced softmax (federated.local_loss balanced) removes the site's own
    label prior from the update."""
    config = load_config(credit_config(tmp_path, epochs=1), ["federated.local_loss=balanced", "train.batch_size=32"])
    federation = Federation.start(config, Settings(clients=1, local_epochs=2))
    learner, frame = federation.learner, federation.data.splits["train"]
    default = frame[learner.spec.target].astype(str).str.strip() == "1"
    rows = sites.local_data(learner, pd.concat([frame[default], frame[~default].iloc[: int(default.sum()) // 10]]))
    validation = learner.spec.encoder.transform(federation.data.splits["validation"])
    request = federation.local_settings(0)
    assert request.balanced
    share = {}
    for balanced in (False, True):
        ask = dataclasses.replace(request, balanced=balanced)
        message = site_message(learner, federation.names, federation.weights, rows, config, ask, Settings(1), "s")
        aggregate.assign(learner.mlp.module, federation.names, federation.weights + message.payload / message.samples)
        share[balanced] = float(learner.mlp.outputs(validation)[:, 1].mean())  # no hook left: unshifted logits
    assert share[False] > 0.6  # measured 0.67 after two local epochs
    assert share[True] < share[False] - 0.12  # measured 0.49


def test_the_label_skew_example_federates_within_two_points_of_central_training_one_step_per_round(tmp_path):
    """examples/credit_federated.yaml (one SGD step per site per round, Adam at the server, layer norm) on the
    committed slice, five Dirichlet(0.5) sites, against `train` of the MLP on the same rows."""
    central = modelyard.train(load_config(credit_config(tmp_path, epochs=20)), tmp_path / "central", quiet=True)
    config = load_config(EXAMPLES / "credit_federated.yaml")
    settings = Settings(clients=5)
    model = simulate(config, settings, tmp_path / "bundle", "dirichlet", 0.5, track=False)
    metrics = json.loads((model.path / "metrics.json").read_text())
    train_rows = sum(metrics["federation"]["clients_samples"])
    assert settings.rounds == 20 * math.ceil(train_rows / 512)  # one round per step of the MLP's 20 epochs
    assert metrics["federation"]["rounds"] == settings.rounds
    reference = json.loads((central.path / "metrics.json").read_text())["test"]["roc_auc"]
    assert metrics["test"]["roc_auc"] > reference - 0.02, (metrics["test"]["roc_auc"], reference)
