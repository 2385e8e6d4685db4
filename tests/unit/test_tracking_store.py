"""What the tracking store shows users: URIs without passwords, quick failures, no MLflow chatter on stdout."""

from __future__ import annotations

import socket
import time

import pytest

from modelyard.tracking import registry, store


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_failure_names_the_store_without_its_password():
    uri = "postgresql://u:secretpw@db-host:5432/mlflow"
    err = store.describe_failure(uri, RuntimeError("login with secretpw refused"))
    assert "secretpw" not in f"{err.message} {err.hint}"
    assert "postgresql://u:***@db-host:5432/mlflow" in err.message


def test_an_unreachable_database_fails_in_seconds_and_hides_its_password(monkeypatch):
    monkeypatch.setenv("MODELYARD_TRACKING_URI", f"postgresql://u:secretpw@127.0.0.1:{closed_port()}/db")
    started = time.monotonic()
    with pytest.raises(store.TrackingStoreError, match="tracking database postgresql://u:\\*\\*\\*@") as caught:
        registry.list_models()
    assert time.monotonic() - started < 20  # MLflow alone retries for ~110 s
    assert "secretpw" not in str(caught.value)


@pytest.mark.parametrize("folder", ["file:///{}", "{}"])
def test_a_file_store_is_refused_with_the_sqlite_uri_to_use(monkeypatch, tmp_path, folder):
    monkeypatch.setenv("MODELYARD_TRACKING_URI", folder.format(tmp_path / "mlruns"))
    with pytest.raises(store.TrackingStoreError, match="MLflow's file store is in maintenance mode") as caught:
        registry.list_models()
    assert "sqlite:///" in caught.value.hint and "server is running" not in caught.value.hint


def test_ending_a_run_on_a_server_prints_no_run_links(monkeypatch, capsys):
    from mlflow.store.tracking.rest_store import RestStore

    ml = store.mlflow()
    monkeypatch.setattr(RestStore, "get_run", lambda self, run_id: pytest.fail("MLflow built a run link"))
    monkeypatch.setattr(RestStore, "update_run_info", lambda self, *args, **kwargs: None)
    ml.MlflowClient(tracking_uri=f"http://127.0.0.1:{closed_port()}").set_terminated("0" * 32, "FINISHED")
    assert capsys.readouterr().out == ""
