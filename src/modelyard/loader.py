"""Loading a bundle into a `Model`: checksums verified, the task's learner rebuilt from the bundle's files.

This sits below serving, monitoring, export and the report, which all load bundles; `modelyard.api` re-exports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelyard import bundle
from modelyard.config import Config
from modelyard.errors import BundleError
from modelyard.home import offline
from modelyard.protocols import Learner
from modelyard.tasks import config_from_dict, get_task

offline()


@dataclass
class Model:
    """A loaded bundle: predict with it, evaluate it, serve it."""

    path: Path
    manifest: dict[str, Any]
    config: Config
    learner: Learner
    version: str | None = None  # the registry version, when loaded through models:/NAME@ALIAS

    @property
    def task(self):
        return get_task(self.config.task)

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def labels(self) -> list[str] | None:
        return self.manifest.get("labels")

    def predict(self, inputs: Sequence[Any], top_k: int = 1) -> list[dict[str, Any]]:
        return self.learner.predict(list(inputs), top_k=top_k)

    def evaluate(self, data: str | Path | None = None) -> dict[str, Any]:
        """Metrics on a labelled file, or by default on the bundle's own test split (re-read, fingerprint-checked)."""
        if data is None:
            prepared = self.task.prepare(self.config)
            expected = self.manifest.get("data", {}).get("test", {}).get("sha256")
            actual = prepared.fingerprints.get("test", {}).get("sha256")
            result = self.learner.evaluate(prepared.splits["test"])
            if expected and actual != expected:
                result["warning"] = "the test split differs from the one the bundle was evaluated on at train time"
            return result
        raw = self.config.model_dump(mode="json")
        raw["data"].update(train=str(Path(data).resolve()), validation=None, test=None, max_rows=None)
        raw["data"]["split"].update(validation=0.0, test=0.0)
        prepared = self.task.prepare(config_from_dict(raw, str(data)))
        return self.learner.evaluate(prepared.splits["train"])


def load(ref: str | Path) -> Model:
    """Load a bundle folder (checksums verified) or a registry URI `models:/NAME@ALIAS` / `models:/NAME/VERSION`."""
    version = None
    if str(ref).startswith("models:/"):
        from modelyard.tracking.registry import resolve_model_uri

        path, version = resolve_model_uri(str(ref))
    else:
        path = Path(ref)
    manifest = bundle.verify(path)
    try:
        raw = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise BundleError(f"{path}: config.yaml is unreadable ({err})") from None
    config = config_from_dict(raw, str(path / "config.yaml"))
    learner = get_task(config.task).load(path, manifest, config)
    return Model(path.resolve(), manifest, config, learner, version)
