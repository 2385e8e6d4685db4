"""Logging a training run into MLflow and registering its bundle as a new model version.

Used twice: live by `TrackingCallback` while `train` runs, and afterwards by `modelyard models log BUNDLE`
(which replays the bundle's config and history), so both paths leave the same run and registry entries.
"""

from __future__ import annotations

import json
import math
import platform
import re
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from modelyard.bundle import identity
from modelyard.config import RedactionConfig
from modelyard.data.jsonl import json_lines
from modelyard.errors import BundleError
from modelyard.privacy import Redactor, redactor_for
from modelyard.privacy.redact import HIDDEN_SALT, hide_salt, is_env_salt
from modelyard.tracking import store
from modelyard.tracking.registry import refuse_to_register

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the modelyard package, shipped inside each pyfunc model

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

BATCH = 100  # MLflow accepts at most 100 params or tags per log_batch call
MAX_PARAM_CHARS = 6000
ENV_PACKAGES = ("modelyard", "torch", "transformers", "mlflow", "scikit-learn", "numpy", "pandas")
RUN_FILES = ("modelyard.json", "config.yaml", "metrics.json", "history.jsonl", "data_report.json")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"epochs": 3}} -> {"train.epochs": 3}; lists stay whole (as JSON)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def scalar_metrics(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """Finite numbers only, as `<prefix>_<name>`; nested tables (per_class) go to JSON artifacts instead."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        name = key.replace("@", "_at_")
        out[f"{prefix}_{name}" if prefix else name] = float(value)
    return out


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_PARAM_CHARS]


def experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment named after the config's `name`, created (artifacts beside the store) if new."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=store.artifact_root(uri))
    except Exception:
        exp = client.get_experiment_by_name(name)  # another process created it first
        if exp is None:
            raise
        return exp.experiment_id


def start_run(
    client: MlflowClient,
    uri: str,
    name: str,
    task: str,
    run_name: str | None = None,
    parent: str | None = None,
) -> str:
    """Create a run in the experiment `name` (nested under `parent` if given); returns the run id.

    Params are logged by `finish_run` from the bundle's config.yaml: only then is every default resolved, and
    MLflow refuses to change a param once logged.
    """
    tags = {"modelyard.task": task, **({"mlflow.parentRunId": parent} if parent else {})}
    with store.write_lock(uri):
        exp = experiment_id(client, name, uri)
        return client.create_run(exp, run_name=run_name, tags=tags).info.run_id


def log_params(client: MlflowClient, uri: str, run_id: str, config: dict[str, Any]) -> None:
    from mlflow.entities import Param

    flat = flatten(config)
    salt = flat.get("privacy.hash_salt")
    if salt is not None and not (isinstance(salt, str) and is_env_salt(salt)):  # a literal secret stays out
        flat["privacy.hash_salt"] = HIDDEN_SALT
    params = [Param(k, _param_text(v)) for k, v in flat.items()]
    with store.write_lock(uri):
        for i in range(0, len(params), BATCH):
            client.log_batch(run_id, params=params[i : i + BATCH], synchronous=True)


def log_metrics(client: MlflowClient, uri: str, run_id: str, metrics: dict[str, float], step: int) -> None:
    """One batch of scalar metrics at `step`, so `mlflow ui` draws curves."""
    from mlflow.entities import Metric

    if not metrics:
        return
    now = int(time.time() * 1000)
    batch = [Metric(k, v, now, int(step)) for k, v in metrics.items()]
    with store.write_lock(uri):
        for i in range(0, len(batch), 1000):
            client.log_batch(run_id, metrics=batch[i : i + 1000], synchronous=True)


def pyfunc_requirements() -> list[str]:
    """What a pyfunc model needs from PyPI: modelyard's own pinned dependencies, not modelyard itself. The name
    `modelyard` on PyPI belongs to an unrelated project, so the logged model carries modelyard's code instead
    (`code_paths`), and `mlflow models serve` with a fresh environment never installs a stranger's package."""
    required = metadata.requires("modelyard") or []
    return [r for r in required if not re.search(r"\bextra\s*==", r)]


def environment() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ENV_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def read_bundle(bundle: Path) -> dict[str, Any]:
    """The bundle's manifest (checksums verified), resolved config, metrics and history."""
    from modelyard.bundle import verify

    bundle = Path(bundle).expanduser().resolve()
    manifest = verify(bundle)
    try:
        config = yaml.safe_load((bundle / "config.yaml").read_text(encoding="utf-8"))
        metrics_path, history_path = bundle / "metrics.json", bundle / "history.jsonl"
        metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
        lines = json_lines(history_path.read_text(encoding="utf-8")) if history_path.is_file() else []
        history = [json.loads(line) for line in lines if line.strip()]
        report_path = bundle / "data_report.json"
        report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise BundleError(
            f"{bundle}: unreadable config.yaml, metrics.json, history.jsonl or data_report.json: {err}"
        ) from None
    if not isinstance(config, dict) or "name" not in config:
        raise BundleError(f"{bundle}: config.yaml has no `name`, so the run cannot be named")
    return {
        "path": bundle,
        "manifest": manifest,
        "config": config,
        "metrics": metrics,
        "history": history,
        "report": report,
    }


def history_metrics(entry: dict[str, Any]) -> dict[str, float]:
    """One history.jsonl line as flat metrics: top-level numbers plus `<split>_<metric>` from nested dicts."""
    flat = scalar_metrics({k: v for k, v in entry.items() if k not in ("step", "epoch")}, "")
    flat.update({"epoch": float(entry["epoch"])} if isinstance(entry.get("epoch"), (int, float)) else {})
    for key, value in entry.items():
        if isinstance(value, dict):
            flat.update(scalar_metrics(value, key))
    return flat


def finish_run(
    client: MlflowClient, uri: str, run_id: str, bundle: dict[str, Any], report: dict[str, Any] | None = None
) -> ModelVersion:
    """Log test metrics, data provenance, environment and the bundle; register it as a new model version."""
    from mlflow.entities import RunTag

    manifest, metrics, config = bundle["manifest"], bundle["metrics"], bundle["config"]
    name = config["name"]
    # before anything is logged: a name's versions share one task, or a server of that name is handed another's
    refuse_to_register(client, name, str(config.get("task")))
    test = scalar_metrics(metrics.get("test") or {}, "")
    main_metric = _main_metric(manifest, config, test)
    tags = {f"env.{k}": v for k, v in environment().items()}
    fingerprints = _fingerprints(manifest)
    for split, info in fingerprints.items():
        if isinstance(info, dict):
            tags.update({f"data.{split}.{k}": str(v) for k, v in info.items() if not isinstance(v, (dict, list))})
    tags.update({"modelyard.bundle_path": str(bundle["path"]), "modelyard.main_metric": main_metric or ""})
    report = report if report is not None else bundle.get("report", {})
    redactor = _tracking_redactor(config)
    if redactor is not None:  # data reports name values (rare categories, labels): personal data is replaced
        report = redactor.redact_value(report, numbers=False)
    with (
        tempfile.TemporaryDirectory(prefix="modelyard-run-") as tmp,
        tempfile.TemporaryDirectory(prefix="modelyard-logged-") as copies,
    ):
        logged = _bundle_for_mlflow(bundle["path"], Path(copies))
        if logged != bundle["path"]:  # the run's bundle/config.yaml too, in place of the bundle's own copy below
            Path(tmp, "bundle").mkdir()
            shutil.copy2(logged / "config.yaml", Path(tmp, "bundle", "config.yaml"))
        _write_json(Path(tmp, "data", "fingerprints.json"), fingerprints)
        _write_json(Path(tmp, "data", "report.json"), report)
        if redactor is not None and bundle.get("report"):  # logged in place of the bundle's own copy below
            _write_json(Path(tmp, "bundle", "data_report.json"), redactor.redact_value(bundle["report"], numbers=False))
        _write_json(Path(tmp, "environment.json"), environment())
        run_tags = [RunTag(k, str(v)[:5000]) for k, v in tags.items()]
        with store.write_lock(uri):
            federation = metrics.get("federation")  # `federate`: strategy, sites, alpha, mu, masks as params
            log_params(client, uri, run_id, {**config, "federation": federation} if federation else config)
            log_metrics(client, uri, run_id, scalar_metrics(metrics.get("test") or {}, "test"), _last_step(bundle))
            # privacy_epsilon, _delta, ...; a federated bundle written before `privacy` held them at the top level
            spent_at = metrics.get("privacy") or {k: metrics[k] for k in ("epsilon", "delta") if k in metrics}
            spent = scalar_metrics(spent_at, "privacy")
            if spent:
                log_metrics(client, uri, run_id, spent, _last_step(bundle))
            for i in range(0, len(run_tags), BATCH):
                client.log_batch(run_id, tags=run_tags[i : i + BATCH], synchronous=True)
            client.log_artifacts(run_id, tmp)
            for file in RUN_FILES:
                if (bundle["path"] / file).is_file() and not Path(tmp, "bundle", file).is_file():
                    client.log_artifact(run_id, str(bundle["path"] / file), artifact_path="bundle")
            version_tags = {
                "bundle_path": str(bundle["path"]),
                "bundle_id": identity(manifest),  # how `resolve_model_uri` tells this bundle from a later one there
                "task": str(config.get("task")),
            }
            version_tags.update({f"test.{k}": f"{v:.6g}" for k, v in test.items()})
            version_tags.update({k.replace("_", ".", 1): f"{v:.6g}" for k, v in spent.items() if k.count("_") == 1})
            if main_metric:
                version_tags["main_metric"] = main_metric
            with store.fluent(uri) as ml:  # the registry resolves `models:/<id>` through the global URI
                with ml.start_run(run_id=run_id):
                    info = ml.pyfunc.log_model(
                        name="model",
                        python_model=str(PACKAGE_DIR / "serving" / "mlflow_pyfunc.py"),
                        code_paths=[str(PACKAGE_DIR)],
                        artifacts={"bundle": str(logged)},
                        pip_requirements=pyfunc_requirements(),
                        metadata={"modelyard_task": str(config.get("task")), "modelyard_name": name},
                    )
                _ensure_registered_model(client, name)
                version = client.create_model_version(
                    name, source=info.model_uri, run_id=run_id, tags=version_tags, model_id=info.model_id
                )
    return version


def _bundle_for_mlflow(path: Path, copies: Path) -> Path:
    """The bundle as MLflow keeps it: the bundle itself, or, when its config.yaml holds a literal hash salt, a
    resealed copy under `copies` showing the salt as '<set>' (the secret stays on this machine; the bundle on
    disk is unchanged). A model loaded from that copy redacts with plain placeholders (privacy.redact)."""
    from modelyard.bundle import MANIFEST, seal

    text = (path / "config.yaml").read_text(encoding="utf-8")
    hidden = hide_salt(text)
    if hidden == text:
        return path
    copy = copies / path.name
    shutil.copytree(path, copy, symlinks=True)
    (copy / "config.yaml").write_text(hidden, encoding="utf-8")
    manifest = json.loads((copy / MANIFEST).read_text(encoding="utf-8"))
    seal(copy, {key: value for key, value in manifest.items() if key != "files"})
    return copy


def _tracking_redactor(config: dict[str, Any]) -> Redactor | None:
    """The bundle's `privacy` section (the defaults for bundles older than it) applied to what MLflow keeps."""
    section = config.get("privacy")
    return redactor_for(RedactionConfig.model_validate(section) if isinstance(section, dict) else None, "tracking")


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, description="Trained with modelyard; versions are its bundles.")
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _main_metric(manifest: dict[str, Any], config: dict[str, Any], test: dict[str, float]) -> str | None:
    name = manifest.get("main_metric")
    if not name:
        try:
            from modelyard.tasks import get_task

            name = get_task(str(config.get("task"))).main_metric
        except KeyError:
            name = None
    name = name.replace("@", "_at_") if name else None
    return name if name in test else next(iter(test), None)


def _fingerprints(manifest: dict[str, Any]) -> dict[str, Any]:
    for key in ("data", "fingerprints", "data_fingerprints"):
        if isinstance(manifest.get(key), dict):
            return manifest[key]
    return {}


def _last_step(bundle: dict[str, Any]) -> int:
    steps = [int(e["step"]) for e in bundle["history"] if isinstance(e.get("step"), (int, float))]
    return max(steps, default=len(bundle["history"]))


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n", encoding="utf-8")


def log_bundle(bundle_path: str | Path) -> ModelVersion:
    """`modelyard models log BUNDLE`: record a finished bundle as a run (config, history) and register it."""
    bundle = read_bundle(Path(bundle_path))
    uri = store.tracking_uri()
    with store.store_errors(uri):
        client = store.client(uri)
        config = bundle["config"]
        refuse_to_register(client, config["name"], str(config.get("task")))
        run_id = start_run(client, uri, config["name"], str(config.get("task")), run_name=bundle["path"].name)
        for index, entry in enumerate(bundle["history"]):
            log_metrics(client, uri, run_id, history_metrics(entry), int(entry.get("step", index + 1)))
        version = finish_run(client, uri, run_id, bundle)
        with store.write_lock(uri):
            client.set_terminated(run_id, "FINISHED")
    return version
