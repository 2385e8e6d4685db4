"""The command line behaves alike across commands: usage errors exit 2 naming the option, -q hides reports but
never warnings, and each failure is one message, not a traceback."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.errors import UserError

runner = CliRunner()


@pytest.mark.parametrize("url", ["localhost:18292", "ftp://localhost:18292", "http://localhost:99999", "http://"])
def test_federate_join_without_a_server_url_is_a_usage_error_naming_the_option(tmp_path, url):
    result = runner.invoke(app, ["federate", str(tmp_path / "absent.yaml"), "--join", url, "--site", "a"])
    assert result.exit_code == 2, result.output
    assert "--join" in result.output and "http(s)://HOST:PORT" in result.output


def test_a_federation_server_that_drops_the_connection_is_one_message_naming_it():
    from modelyard.federated import transport

    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    http = httpx.Client(base_url="http://fed.example:8765", transport=httpx.MockTransport(drop))
    with pytest.raises(UserError, match=r"federation server http://fed.example:8765.*RemoteProtocolError"):
        transport._call(http, "GET", transport.PREFIX)


def test_quiet_train_hides_the_report_but_still_warns_about_dropped_rows(banking_slice, tmp_path):
    import pandas as pd
    from conftest import write_config

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.csv").write_bytes((banking_slice / "train.csv").read_bytes())
    test = pd.read_csv(banking_slice / "test.csv")
    extra = pd.DataFrame({"text": ["where is my parcel", "send my parcel back"], "category": "parcel"})
    pd.concat([test, extra]).to_csv(folder / "test.csv", index=False)
    result = runner.invoke(app, ["-q", "train", str(write_config(folder, "tfidf-linear")), "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "2 rows dropped: labels not in train" in result.stderr
    assert "splits" not in result.stderr and "results" not in result.stderr  # the report and table stay hidden


@pytest.mark.parametrize("where", ["global", "after the command"])
def test_index_honours_either_quiet_but_never_hides_its_warning(tmp_path, monkeypatch, where):
    from modelyard.retrieval import index

    def build(docs, output, encoder, chunk_size, overlap, progress):
        progress("embedding", 1, 1)
        return index.UpdateReport(without_text=["scan.pdf"])

    monkeypatch.setattr(index, "build", build)
    quiet = ["-q", "index", str(tmp_path)] if where == "global" else ["index", str(tmp_path), "-q"]
    result = runner.invoke(app, [*quiet, "--output", str(tmp_path / "idx")])
    assert result.exit_code == 0, result.output
    assert "warning: scan.pdf has no text to index" in result.stderr
    assert "added" not in result.stderr  # the summary is hidden


def test_version_prints_the_package_version():
    import modelyard

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"modelyard {modelyard.__version__}"


@pytest.mark.parametrize(
    ("option", "said"),
    [(["--port", "99999"], "--port: must be at most 65535"), (["--timeout", "0"], "--timeout: must be above 0")],
)
def test_a_bad_serve_option_is_a_usage_error_naming_it(tmp_path, option, said):
    result = runner.invoke(app, ["serve", str(tmp_path), *option])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.stderr.split()) and "pydantic" not in result.stderr


def test_a_bad_serve_variable_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    import sys

    from modelyard import cli

    monkeypatch.setenv("MODELYARD_PORT", "99999")
    monkeypatch.setattr(sys, "argv", ["modelyard", "serve", str(tmp_path)])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 1
    assert capsys.readouterr().err.strip() == "error: MODELYARD_PORT: must be at most 65535"


def test_evaluate_accepts_json_which_it_always_prints(tfidf_bundle):
    import json

    result = runner.invoke(app, ["evaluate", str(tfidf_bundle), "--json"])
    assert result.exit_code == 0, result.output
    assert "macro_f1" in json.loads(result.stdout)


def test_monitor_without_traffic_prints_its_report_on_stdout_with_dashes_for_missing_values(tfidf_bundle):
    result = runner.invoke(app, ["monitor", str(tfidf_bundle)])
    assert result.exit_code == 0, result.output
    assert "window 0 (- .. -)" in result.stdout and "latency p50 -, p95 -" in result.stdout
    assert "None" not in result.stdout and not result.stderr


def test_models_show_and_list_print_json_and_unwrapped_paths_when_piped(tfidf_bundle, tmp_path):
    import json
    import shutil

    from modelyard.tracking.runs import log_bundle

    folder = tmp_path / "a-rather-long-folder-of-bundles-kept-for-audits" / "test-tfidf-linear-20261206-162916"
    shutil.copytree(tfidf_bundle, folder)
    log_bundle(folder)
    shown = runner.invoke(app, ["models", "show", "test-tfidf-linear"])
    assert shown.exit_code == 0, shown.output
    assert str(folder) in shown.stdout  # on one line, whole
    as_json = json.loads(runner.invoke(app, ["models", "show", "test-tfidf-linear", "--json"]).stdout)
    assert as_json["versions"][0]["bundle_path"] == str(folder)
    listed = json.loads(runner.invoke(app, ["models", "list", "--json"]).stdout)
    assert [m["name"] for m in listed] == ["test-tfidf-linear"] and listed[0]["versions"][0]["version"] == "1"


def test_predict_names_a_missing_input_file_as_the_option_without_a_config_hint(tfidf_bundle, tmp_path):
    result = runner.invoke(app, ["predict", str(tfidf_bundle), "--input", str(tmp_path / "missing.csv")])
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == f"--input {tmp_path / 'missing.csv'}: no such file or folder"
    assert result.exception.hint is None


def test_an_image_given_to_a_table_model_is_hinted_at_the_input_it_takes():
    from types import SimpleNamespace

    from modelyard.predict_io import usable_inputs
    from modelyard.tasks import get_task

    def model(task: str) -> SimpleNamespace:
        return SimpleNamespace(learner=object(), task=get_task(task), manifest={"task": task})

    assert usable_inputs(model("tabular_classification")) == "--input"
    assert usable_inputs(model("text_classification")) == "--text or --input"
    assert usable_inputs(model("multimodal_classification")) == "--input"  # an image and a text per row


@pytest.mark.parametrize("task", ["multimodal_classification", "object_detection"])
def test_text_given_to_a_model_that_reads_no_text_is_refused_naming_the_option(task):
    from types import SimpleNamespace

    from modelyard.predict_io import read_inputs
    from modelyard.tasks import get_task

    model = SimpleNamespace(name="m", learner=object(), task=get_task(task), manifest={"task": task})
    with pytest.raises(UserError, match=f"--text needs a text model; m is a {task} model"):
        read_inputs(model, ["hi"], None, print)


def test_an_onnx_export_refused_names_the_backbone_not_the_task(tfidf_bundle, tmp_path):
    result = runner.invoke(app, ["export", str(tfidf_bundle), "--format", "onnx", "-o", str(tmp_path / "x")])
    assert isinstance(result.exception, UserError)
    assert "tfidf-linear models have no ONNX export" in result.exception.hint
    assert "this kind of model" not in result.exception.hint


def test_models_show_given_a_uri_says_it_takes_a_name():
    result = runner.invoke(app, ["models", "show", "models:/banking-intents@champion"])
    assert isinstance(result.exception, UserError)
    assert "takes a registered model NAME" in str(result.exception) and "banking-intents" in result.exception.hint


def test_containerize_prints_the_build_command_quoted_on_one_line(tfidf_bundle, tmp_path, monkeypatch):
    import shlex

    from modelyard.export import container

    monkeypatch.setattr(container, "containerize", lambda *args: [])
    output = tmp_path / "数据 test" / "ctx"
    result = runner.invoke(app, ["containerize", str(tfidf_bundle), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert f"docker build -t IMAGE {shlex.quote(str(output))}" in result.stderr.splitlines()[0]


def test_models_log_of_a_bundle_already_registered_reports_its_version_and_registers_nothing(tfidf_bundle):
    from modelyard.tracking import registry

    first = runner.invoke(app, ["models", "log", str(tfidf_bundle)])
    again = runner.invoke(app, ["models", "log", str(tfidf_bundle)])
    assert first.exit_code == 0 and again.exit_code == 0, again.output
    assert "already registered: test-tfidf-linear version 1" in again.stdout
    assert [v.version for v in registry.describe("test-tfidf-linear").versions] == ["1"]
