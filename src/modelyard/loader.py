"""Loading a bundle into a `Model`: checksums verified, the task's learner rebuilt from the bundle's files.

This sits below serving, monitoring, export and the report, which all load bundles; `modelyard.api` re-exports it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from modelyard import bundle
from modelyard.config import Config
from modelyard.data.categories import as_known_labels
from modelyard.errors import BundleError, DataError, UserError
from modelyard.home import offline
from modelyard.protocols import Learner, check_top_k, reads_text
from modelyard.tasks import config_from_dict, get_task

if TYPE_CHECKING:  # pandas is imported only where a table is read: a text server starts without it
    import pandas as pd

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

    def predict(self, inputs: Sequence[Any] | pd.DataFrame, top_k: int = 1) -> list[dict[str, Any]]:
        """One answer per input, best `top_k` first. Inputs are checked as the server checks a request's: a list
        of the task's inputs (a DataFrame is read as `predict --input FILE` reads a table), each of its type."""
        check_top_k(self, _checked_top_k(top_k), "top_k")  # a model with no classes would ignore it
        return self.learner.predict(self._checked_inputs(inputs), top_k=top_k)

    def _checked_inputs(self, inputs: Any) -> list[Any]:
        """`inputs` as a list of the task's inputs; a lone input (a str, a dict) or an item of the wrong type is a
        DataError naming it (`inputs.0`), never predicted character by character or as its keys."""
        pandas = sys.modules.get("pandas")  # not imported yet: the inputs cannot be a DataFrame
        if pandas is not None and isinstance(inputs, pandas.DataFrame):
            from modelyard.predict_io import frame_inputs

            items = frame_inputs(self, inputs, Path("the DataFrame"))
            if hasattr(self.task, "inputs_from_frame"):
                return items  # the task's own reading of its columns
        elif isinstance(inputs, str | bytes | bytearray | Mapping | BaseModel) or not isinstance(inputs, Iterable):
            example = "[text]" if reads_text(self.task.Input) else "[item]"
            raise DataError(
                f"inputs: expected a list of inputs, got one {type(inputs).__name__}", f"pass {example} to predict one"
            )
        else:
            items = list(inputs)
        if hasattr(self.learner, "parse_input"):
            return items  # a learner that parses its inputs (rows, images, audio) checks them as it reads them
        if getattr(self.task, "generates_text", False):
            return _texts_or_chats(items)
        try:  # the server's request model checks each item against the task's Input type the same way
            return TypeAdapter(list[self.task.Input]).validate_python(items, strict=True)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in ("inputs", *first["loc"]))
            got = f", got {type(first['input']).__name__}" if first["type"].endswith("_type") else ""
            raise DataError(f"{where}: {first['msg']}{got}") from None

    def evaluate(
        self, data: str | Path | None = None, encoding: str = "utf-8", sep: str | None = None
    ) -> dict[str, Any]:
        """Metrics on a labelled file, or by default on the bundle's own test split (re-read, fingerprint-checked).
        The file is read as `predict --input` reads one: in `encoding` (UTF-8 by default), separated by `sep` or by
        its extension, never by the training file's encoding and separator: those named another file."""
        if data is None:
            return self._evaluate_test_split()
        from modelyard.data.readers import PREDICT, hints

        config = self._config_for_file(encoding, sep)
        with hints(PREDICT):  # a file it cannot read names evaluate's --encoding/--sep, not the bundle's config
            return self._evaluate_file(config, data)

    def _evaluate_test_split(self) -> dict[str, Any]:
        """Metrics on the test split the bundle's config holds back, read as training read it."""
        prepared = self.task.prepare(self.config)
        if not len(prepared.splits["test"]):  # metrics of nothing would print as {} and look like success
            raise UserError(
                f"{self.path}: this model has no test split to score (its config holds none back)",
                "score a labelled file: modelyard evaluate BUNDLE --data FILE",
            )
        expected = self.manifest.get("data", {}).get("test", {}).get("sha256")
        actual = prepared.fingerprints.get("test", {}).get("sha256")
        result = self._with_answer_quality(self.learner.evaluate(prepared.splits["test"]), prepared.splits["test"])
        if expected and actual != expected:
            result["warning"] = "the test split differs from the one the bundle was evaluated on at train time"
        return result

    def _config_for_file(self, encoding: str, sep: str | None) -> Config:
        """The bundle's config with a scored file's encoding and separator in its `data.format`; its header, names
        and quoting stay the bundle's, as they say which columns the config's column keys name."""
        from modelyard.predict_io import input_format

        fmt = input_format(encoding, sep)
        raw = self.config.model_dump(mode="json")
        raw["data"]["format"].update(encoding=fmt.encoding, sep=fmt.sep)
        return config_from_dict(raw, str(self.path / "config.yaml"))

    def _evaluate_file(self, config: Config, data: str | Path) -> dict[str, Any]:
        """Metrics on every row of a labelled file, read by `config` (the bundle's, with the file's format)."""
        read_file = getattr(self.task, "evaluation_file", None)  # a task whose train data is not what it scores
        if read_file is not None:
            return self.learner.evaluate(read_file(config, str(Path(data).resolve())))
        read_rows = getattr(self.task, "evaluation_rows", None)  # a task whose training checks do not apply here
        if read_rows is not None:
            rows, notes = read_rows(config, str(Path(data).resolve()), self.labels or [])
            rows, unseen = self._known_labels_only(rows, str(data))
            notes += unseen
            notes += [f"{data}: {note}" for note in getattr(self.learner, "input_notes", lambda _: [])(rows)]
            return self._with_answer_quality(self.learner.evaluate(rows), rows) | ({"notes": notes} if notes else {})
        raw = config.model_dump(mode="json")
        raw["data"].update(train=str(Path(data).resolve()), validation=None, test=None, max_rows=None)
        raw["data"]["split"].update(validation=0.0, test=0.0)
        if "test_speakers" in raw["data"]:  # held-out voices of the training data; here every row is scored
            raw["data"]["test_speakers"] = None
        prepared = self.task.prepare(config_from_dict(raw, str(data)))
        rows, given = _every_split(prepared.splits, str(data))
        rows, notes = self._known_labels_only(rows, str(data))
        notes = given + notes
        result = self._with_answer_quality(self.learner.evaluate(rows), rows)
        notes += [w for w in prepared.warnings if "skipped" in w]  # unreadable files and malformed rows, named
        return result | ({"notes": notes} if notes else {})

    def _known_labels_only(self, rows: Any, source: str) -> tuple[Any, list[str]]:
        """A single-label file's rows whose label the model knows; the others, which it can never predict and
        metrics cannot score, dropped and named (as `train` does for its test split)."""
        column = "label" if "label" in getattr(rows, "columns", ()) else getattr(self.config.data, "target_column", "")
        if not self.labels or column not in getattr(rows, "columns", ()) or "labels" in rows.columns:
            return rows, []
        rows = rows.assign(**{column: as_known_labels(rows[column], self.labels)})
        unseen = ~rows[column].astype(str).str.strip().isin(self.labels)
        if not unseen.any():
            return rows, []
        if unseen.all():
            found = ", ".join(sorted(rows[column].astype(str).unique())[:5])
            raise DataError(
                f"{source}: no row has a label the model knows; the file's labels: {found}; "
                f"the model's labels: {', '.join(map(str, self.labels[:10]))}"
            )
        names = ", ".join(sorted(rows[column][unseen].astype(str).unique())[:5])
        return rows[~unseen], [f"{source}: {int(unseen.sum())} rows dropped: labels the model never saw ({names})"]

    def _with_answer_quality(self, result: dict[str, Any], items: Any) -> dict[str, Any]:
        """`result` plus the `evaluation.metrics` of a generator's answers to `items`, when the config asks."""
        generator = getattr(self.learner, "generator", None)
        if not self.config.evaluation.metrics or generator is None or not len(items):
            return result
        from modelyard.generation.quality import score_generations

        return {**result, "generation": score_generations(generator, items, self.config.evaluation.metrics)}


def _every_split(splits: dict[str, Any], source: str) -> tuple[Any, list[str]]:
    """The rows `evaluate --data` scores: with no shares carved off, the data's train split; a folder of split
    subfolders (train/ beside val/ or test/, read as given splits) is scored whole, never its train/ alone."""
    given = {name: rows for name, rows in splits.items() if len(rows)}
    if len(given) < 2 or not all(hasattr(rows, "columns") for rows in given.values()):  # tables of rows only
        return splits["train"], []
    import pandas as pd

    read = ", ".join(f"{name} ({len(rows)})" for name, rows in given.items())
    note = f"{source}: a folder of splits; scored every one: {read}"
    return pd.concat(list(given.values()), ignore_index=True), [note]


def _texts_or_chats(items: list[Any]) -> list[Any]:
    """A generation model's inputs: each a prompt (str) or a conversation (its messages checked), as its learner
    answers both; anything else is a DataError naming it (`inputs.0`)."""
    from modelyard.data.text_corpus import chat_messages

    for i, item in enumerate(items):
        if isinstance(item, list):
            chat_messages(f"inputs.{i}", item)
        elif not isinstance(item, str):
            raise DataError(f"inputs.{i}: expected a text or a list of chat messages, got {type(item).__name__}")
    return items


def _checked_top_k(top_k: Any) -> int:
    """`top_k` as the server's request model takes it: a whole number, at least 1."""
    if isinstance(top_k, bool) or not isinstance(top_k, Integral) or top_k < 1:
        raise UserError(f"top_k: expected a whole number >= 1, got {top_k!r}")
    return int(top_k)


def _resolve(ref: str | Path) -> tuple[Path, str | None]:
    """(bundle folder, registry version): a folder as it is, a registry URI resolved (fetched if need be)."""
    if str(ref).startswith("models:/"):
        from modelyard.tracking.registry import resolve_model_uri

        return resolve_model_uri(str(ref))
    return Path(ref), None


def bundle_path(ref: str | Path) -> Path:
    """The bundle folder a reference names."""
    return _resolve(ref)[0]


def check(ref: str | Path) -> None:
    """What `load` refuses before any weights are read, refused now: a registry URI that does not resolve, a
    folder that is not a bundle, a file changed since training, a manifest and config naming different tasks
    (`serve` checks before it starts listening)."""
    path = bundle_path(ref)
    bundle_config(path, bundle.verify(path))


def load(ref: str | Path) -> Model:
    """Load a bundle folder (checksums verified) or a registry URI `models:/NAME@ALIAS` / `models:/NAME/VERSION`."""
    if not isinstance(ref, str | Path):
        raise UserError(f"load: expected a bundle folder or models:/NAME@ALIAS, got {type(ref).__name__}")
    path, version = _resolve(ref)
    manifest = bundle.verify(path)
    config = bundle_config(path, manifest)
    learner = get_task(config.task).load(path, manifest, config)
    _place(learner)
    return Model(path.resolve(), manifest, config, learner, version)


def bundle_config(path: Path, manifest: dict[str, Any]) -> Config:
    """The bundle's config, once its task is the manifest's: `serve` takes the task (routes, input schema) from the
    manifest before loading, `load` from the config, so a bundle where they differ is refused, naming both."""
    task = manifest.get("task")
    if not isinstance(task, str):
        raise BundleError(f"{path / bundle.MANIFEST}: field 'task' must be a task name (a string), not {task!r}")
    config = read_config(path)
    if task != config.task:
        raise BundleError(
            f"{path}: the manifest's task {task!r} ({bundle.MANIFEST}) differs from config.yaml's task {config.task!r}",
            "the bundle was changed after training: retrain or re-export it",
        )
    return config


def read_config(path: Path) -> Config:
    """The resolved config a bundle was trained with (its config.yaml), without loading the weights."""
    try:
        raw = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise BundleError(f"{path}: config.yaml is unreadable ({err})") from None
    return config_from_dict(raw, str(path / "config.yaml"))


def _place(learner: Learner) -> None:
    """Predict on CUDA when present (`precision.device()`, the choice training makes too): a torch learner's module,
    and those of its members one level down (the tabular MLP inside a blend), move there once, at load; predict
    moves inputs to the module's device. int8 kernels stay on the CPU."""
    torch = sys.modules.get("torch")
    if torch is None:
        return  # nothing torch-based was loaded
    from modelyard.precision import device
    from modelyard.runtimes.torch_int8 import has_int8_layers

    target = device()
    if target.type == "cpu":
        return
    members = [m for m in getattr(learner, "__dict__", {}).values() if "module" in getattr(m, "__dict__", {})]
    for owner in (learner, *members):
        module = getattr(owner, "module", None)
        if isinstance(module, torch.nn.Module) and not has_int8_layers(module):
            owner.module = module.to(target)
