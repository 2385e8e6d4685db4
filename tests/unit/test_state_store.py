"""MODELYARD_STATE_URI picks the state store: the SQLite default, another SQLite file, or PostgreSQL."""

from __future__ import annotations

import re
import time

import pytest

from modelyard import state
from modelyard.errors import ConfigError, UserError
from modelyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord, read_predictions


def test_unset_means_the_sqlite_file_in_modelyard_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path))
    monkeypatch.delenv(state.ENV, raising=False)
    assert state.store() == state.Store("sqlite", tmp_path / "predictions.db")


def test_a_sqlite_uri_moves_the_log_to_that_file(monkeypatch, tmp_path):
    monkeypatch.setenv(state.ENV, f"sqlite:///{tmp_path}/shared/log.db")
    writer = PredictionLogWriter()
    writer.append([PredictionRecord("p1", 1.5, "m", "1", "hello", {"label": "a"}, 2.0)])
    writer.close()
    assert (tmp_path / "shared" / "log.db").exists()
    assert list(read_predictions(model="m")["prediction_id"]) == ["p1"]


def test_an_explicit_file_wins_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(state.ENV, "postgresql://u@127.0.0.1:1/db")
    assert state.store(tmp_path / "x.db") == state.Store("sqlite", tmp_path / "x.db")


def test_an_unknown_scheme_is_a_config_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv(state.ENV, "mysql://u@host/db")
    with pytest.raises(
        ConfigError, match=re.escape("MODELYARD_STATE_URI='mysql://u@host/db': unsupported state store")
    ):
        state.store()


def test_postgresql_table_definitions_keep_timestamps_in_double_precision():
    sql = "ts REAL NOT NULL, latency_ms REAL NOT NULL, input TEXT"
    assert state.ddl(sql, "sqlite") == sql
    assert (
        state.ddl(sql, "postgresql") == "ts DOUBLE PRECISION NOT NULL, latency_ms DOUBLE PRECISION NOT NULL, input TEXT"
    )


def test_an_unreachable_database_is_one_clear_error_without_the_password(monkeypatch):
    monkeypatch.setenv(state.ENV, "postgresql://modelyard:s3cret@127.0.0.1:1/modelyard")
    monkeypatch.setattr(state, "CONNECT_TIMEOUT_S", 1)
    try:
        with pytest.raises(
            UserError, match=re.escape("cannot connect to postgresql://modelyard:***@127.0.0.1:1")
        ) as err:
            PredictionLogWriter()
        assert "s3cret" not in str(err.value)
    finally:
        state.close()


def test_an_unreachable_database_is_said_at_once_not_after_the_connect_timeout(monkeypatch):
    monkeypatch.setenv(state.ENV, "postgresql://modelyard:s3cret@127.0.0.1:1/modelyard")
    try:
        for _ in range(2):  # the request that opens the pool, then one to a pool that has no live connection
            started = time.monotonic()
            with pytest.raises(
                state.StateUnavailable, match=re.escape("cannot connect to postgresql://modelyard:***@")
            ):
                state.connect()
            assert time.monotonic() - started < 2 < state.CONNECT_TIMEOUT_S
    finally:
        state.close()


@pytest.mark.parametrize("kind", ["garbage", "folder"])
def test_a_state_file_that_is_not_a_database_is_named_not_a_traceback(tmp_path, kind):
    path = tmp_path / "predictions.db"
    path.mkdir() if kind == "folder" else path.write_text("garbage\n")
    with pytest.raises(UserError, match=f"{path}: cannot open the state database"):
        state.connect(path)


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("postgresql://admin:TopSecret@db:5432/x", "postgresql://admin:***@db:5432/x"),
        ("postgresql://u:p@ss@host/db", "postgresql://u:***@host/db"),
        ("postgresql://127.0.0.1:18719/db?password=s3cret", "postgresql://127.0.0.1:18719/db?password=***"),
        (
            "postgresql://u@h/db?sslmode=require&PASSWORD=s3cret&x=1",
            "postgresql://u@h/db?sslmode=require&PASSWORD=***&x=1",
        ),
        ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
    ],
)
def test_the_password_is_masked_in_every_form(uri, shown):
    assert state.Store("postgresql", uri=uri).describe() == shown


def test_an_unsupported_scheme_is_named_without_its_password(monkeypatch):
    monkeypatch.setenv(state.ENV, "postgres+psycopg://admin:TopSecret@db:5432/x")
    with pytest.raises(ConfigError, match=re.escape("'postgres+psycopg://admin:***@db:5432/x': unsupported")) as err:
        state.store()
    assert "TopSecret" not in str(err.value)


def test_a_libpq_key_value_string_is_refused_without_its_password(monkeypatch):
    monkeypatch.setenv(state.ENV, "host=127.0.0.1 port=5432 password=s3cretpw user=u")
    with pytest.raises(ConfigError, match=re.escape("password=*** user=u'")) as err:
        state.store()
    assert "s3cretpw" not in str(err.value)
    assert state.masked("host=h password='a b\\' c' dbname=x") == "host=h password=*** dbname=x"


def test_an_unencoded_at_in_the_user_info_is_refused_before_the_driver_reads_part_of_the_password_as_host(
    monkeypatch,
):
    monkeypatch.setenv(state.ENV, "postgresql://u:pa@ss@127.0.0.1:5432/db")
    with pytest.raises(ConfigError, match="not percent-encoded") as err:
        state.store()
    assert "pa@ss" not in str(err.value) and "ss@" not in str(err.value) and err.value.hint.endswith("%40")
    monkeypatch.setenv(state.ENV, "postgresql://u:pa%40ss@127.0.0.1:5432/db")
    assert state.store().dialect == "postgresql"


def test_the_serve_preflight_shows_the_driver_reason_at_once_without_the_password(monkeypatch):
    pytest.importorskip("psycopg")
    monkeypatch.setenv(state.ENV, "postgresql://u:s3cret@127.0.0.1:notaport/db")
    with pytest.raises(state.StateUnavailable, match='invalid integer value "notaport"') as err:
        state.check()
    assert "s3cret" not in str(err.value) and "u:***@" in str(err.value)
    monkeypatch.setenv(state.ENV, "postgresql://u@127.0.0.1:1/db?password=s3cret")  # nothing listens on port 1
    with pytest.raises(state.StateUnavailable, match=r"cannot connect to .*password=\*\*\*") as err:
        state.check()
    assert "s3cret" not in str(err.value)
    monkeypatch.setenv(state.ENV, "mysql://u@h/db")
    with pytest.raises(ConfigError, match="unsupported state store"):
        state.check()
