"""The registry on a real store with real bundles: versions, aliases, audit trail, models:/ URIs, pyfunc."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import EXAMPLES

from modelyard.errors import ModelNotFoundError, UserError
from modelyard.tracking import registry, runs, store
from modelyard.tracking.runs import log_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registered(tfidf_bundle, tmp_path_factory):
    """One store holding three versions of the TF-IDF bundle's model, shared by this module's tests."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELYARD_TRACKING_URI", uri)
        versions = [log_bundle(tfidf_bundle) for _ in range(3)]
        yield versions[0].name, [str(v.version) for v in versions], uri


@pytest.fixture(autouse=True)
def _same_store(registered, monkeypatch):
    monkeypatch.setenv("MODELYARD_TRACKING_URI", registered[2])


def test_each_logged_bundle_becomes_a_new_version_tagged_with_test_metrics_and_bundle_path(registered, tfidf_bundle):
    name, numbers, _ = registered
    info = registry.describe(name)
    assert numbers == ["1", "2", "3"]
    assert [v.version for v in info.versions] == ["3", "2", "1"]
    newest = info.versions[0]
    assert newest.main_metric == "macro_f1"
    bundle_test = json.loads((tfidf_bundle / "metrics.json").read_text())["test"]
    assert newest.metrics["macro_f1"] == pytest.approx(bundle_test["macro_f1"], rel=1e-5)  # tags keep 6 digits
    assert newest.bundle_path == str(tfidf_bundle)


def test_each_run_records_params_test_metrics_provenance_and_the_bundle(registered):
    name, _, uri = registered
    client = store.client(uri)
    run = client.get_run(registry.get_version(name, version="1").run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.backbone"] == "tfidf-linear"
    assert "test_macro_f1" in run.data.metrics
    assert run.data.tags["data.test.sha256"]
    assert run.data.tags["env.mlflow"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"bundle", "data", "environment.json"} <= artifacts


def test_promote_then_rollback_leaves_champion_where_it_was(registered):
    name, _, _ = registered
    registry.promote(name, "1", "champion", "first model")
    registry.promote(name, "3", "champion", "better on macro_f1")
    move = registry.rollback(name, "champion", "misroutes card questions")
    assert str(registry.get_version(name, alias="champion").version) == "1"
    assert (move.from_version, move.to_version, move.action) == ("3", "1", "rollback")
    trail = [(m.action, m.from_version, m.to_version, m.why) for m in registry.describe(name).trail]
    assert trail[-3:] == [
        ("promote", None, "1", "first model"),
        ("promote", "1", "3", "better on macro_f1"),
        ("rollback", "3", "1", "misroutes card questions"),
    ]


def test_rollback_with_no_earlier_holder_is_refused_and_changes_nothing(registered):
    name, _, _ = registered
    registry.promote(name, "2", "staging")
    with pytest.raises(UserError, match="no earlier version"):
        registry.rollback(name, "staging")
    assert str(registry.get_version(name, alias="staging").version) == "2"


def test_unknown_alias_names_the_aliases_that_exist(registered):
    name, _, _ = registered
    registry.promote(name, "2", "challenger")
    with pytest.raises(ModelNotFoundError, match=r"no alias 'prod'.*challenger -> v2"):
        registry.resolve_model_uri(f"models:/{name}@prod")


def test_unknown_version_and_unknown_model_name_what_exists(registered):
    name, _, _ = registered
    with pytest.raises(ModelNotFoundError, match="no version '9'; its versions: 1, 2, 3"):
        registry.promote(name, "9", "champion")
    with pytest.raises(ModelNotFoundError, match=f"no registered model 'nope'.*{name}"):
        registry.describe("nope")


def test_models_uri_loads_the_bundle_the_alias_points_at(registered, tfidf_bundle):
    import modelyard

    name, _, _ = registered
    registry.promote(name, "2", "canary")
    model = modelyard.load(f"models:/{name}@canary")
    assert (model.path, model.version) == (tfidf_bundle, "2")
    assert model.predict(["I lost my card"])[0]["label"] in model.labels


def test_latest_names_the_newest_version_as_in_mlflow(registered):
    name, versions, _ = registered
    assert registry.resolve_model_uri(f"models:/{name}/latest").version == versions[-1] == "3"
    with pytest.raises(ModelNotFoundError, match="no registered model 'nope'"):
        registry.resolve_model_uri("models:/nope/latest")


def test_a_bundle_missing_on_this_machine_is_fetched_from_the_store(registered):
    name, _, uri = registered
    store.client(uri).set_model_version_tag(name, "3", "bundle_path", "/elsewhere/not-here")
    path, version = registry.resolve_model_uri(f"models:/{name}/3")
    assert version == "3" and (path / "modelyard.json").is_file()
    assert registry.resolve_model_uri(f"models:/{name}/3").path == path  # cached, not downloaded again


def test_mlflow_pyfunc_loads_a_registered_version_and_predicts(registered, tfidf_bundle):
    import modelyard

    name, _, uri = registered
    with store.fluent(uri) as mlflow:
        pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/1")
        predicted = pyfunc.predict(["I lost my card", "how do I top up?"])
    expected = modelyard.load(tfidf_bundle).predict(["I lost my card", "how do I top up?"])
    assert predicted["label"].tolist() == [p["label"] for p in expected]


def test_cli_lists_models_and_exits_1_with_one_line_for_an_unknown_alias(registered, monkeypatch, capsys):
    from modelyard import cli

    name, _, _ = registered
    monkeypatch.setattr(sys, "argv", ["modelyard", "models", "list"])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code in (0, None)
    assert name in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["modelyard", "models", "rollback", name, "--alias", "gold"])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert "no earlier version" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def mixed_store(tfidf_bundle, tmp_path_factory):
    """A store where the text model's name holds v1 (text, champion) and v2, a credit table model trained under
    the same name by mistake."""
    import shutil

    import yaml

    import modelyard

    folder = tmp_path_factory.mktemp("credit-as-text")
    shutil.copy(EXAMPLES / "data" / "credit_default" / "credit_default_2000.csv", folder / "credit.csv")
    name = json.loads((tfidf_bundle / "modelyard.json").read_text())["name"]
    raw = yaml.safe_load((EXAMPLES / "credit_scoring.yaml").read_text())
    raw["data"]["train"], raw["model"]["backbone"], raw["name"] = "credit.csv", "lightgbm", name
    raw["train"]["time_limit_s"] = 5
    (folder / "credit.yaml").write_text(yaml.safe_dump(raw))
    table = modelyard.train(folder / "credit.yaml", output=folder / "b", quiet=True, track=False)
    uri = f"sqlite:///{tmp_path_factory.mktemp('mixed') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELYARD_TRACKING_URI", uri)
        text = log_bundle(tfidf_bundle)
        with pytest.MonkeyPatch.context() as older:  # as a modelyard that did not check this yet let it in
            older.setattr(runs, "refuse_to_register", lambda *_: None)
            tabular = log_bundle(table.path)
        registry.promote(name, text.version, "champion")
    return name, str(text.version), str(tabular.version), uri, table.path


def test_a_version_of_another_task_cannot_take_an_alias_of_this_name(mixed_store, monkeypatch):
    name, text, tabular, uri, _ = mixed_store
    monkeypatch.setenv("MODELYARD_TRACKING_URI", uri)
    said = rf"version {tabular} of model '{name}' is a tabular_classification model, but alias 'champion' points at"
    with pytest.raises(UserError, match=said + rf" version {text}, a text_classification model") as err:
        registry.promote(name, tabular, "champion")
    assert "another `name:`" in err.value.hint
    with pytest.raises(UserError, match=said):
        registry.promote(name, tabular, "challenger")  # a server of this name would load it as its challenger
    assert registry.describe(name).aliases == {"champion": text}


def test_a_bundle_of_another_task_is_not_registered_under_a_name_whose_alias_holds_this_task(mixed_store, monkeypatch):
    name, text, _, uri, table = mixed_store
    monkeypatch.setenv("MODELYARD_TRACKING_URI", uri)
    before = len(store.client().search_model_versions(f"name='{name}'"))
    said = rf"this bundle of model '{name}' is a tabular_classification model, but alias 'champion' points at"
    with pytest.raises(UserError, match=said + rf" version {text}, a text_classification model; it was not registered"):
        log_bundle(table)
    assert len(store.client().search_model_versions(f"name='{name}'")) == before


def test_a_bundle_of_another_task_is_not_registered_under_a_name_holding_versions_but_no_alias(
    mixed_store, tfidf_bundle, tmp_path, monkeypatch
):
    name, _, _, _, table = mixed_store
    monkeypatch.setenv("MODELYARD_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    text = log_bundle(tfidf_bundle)
    said = rf"this bundle of model '{name}' is a tabular_classification model, but version {text.version} of that "
    with pytest.raises(UserError, match=said + "name is a text_classification model; it was not registered") as err:
        log_bundle(table)
    assert "another `name:`" in err.value.hint
    assert [v.version for v in registry.describe(name).versions] == [str(text.version)]


def test_a_server_whose_alias_was_moved_to_another_task_says_so_and_keeps_serving(mixed_store, monkeypatch):
    from prometheus_client import CollectorRegistry

    import modelyard
    from modelyard.serving.rollout import AliasWatcher, Arm, Rollout, RolloutMetrics

    name, text, tabular, uri, _ = mixed_store
    monkeypatch.setenv("MODELYARD_TRACKING_URI", uri)
    served = modelyard.load(f"models:/{name}/{text}")
    rollout = Rollout(name, Arm(served, text), None, "off", 0.0, RolloutMetrics(CollectorRegistry()))
    store.client().set_registered_model_alias(name, "champion", tabular)  # moved behind modelyard's back (MLflow)
    try:
        with pytest.raises(UserError, match=f"version {tabular}, a tabular_classification model; this server serves"):
            AliasWatcher(rollout, "champion", None, 1.0).check()
    finally:
        store.client().set_registered_model_alias(name, "champion", text)
    assert rollout.champion.version == text
