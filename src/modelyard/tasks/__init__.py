"""Task registry. Every module in this package registers itself with `@register_task`; nothing else names tasks.

The config schema (`modelyard.config`) sits below this registry and never imports it: `load_config` and
`config_from_dict` here pass the registry to the schema as the resolver of each task's `data` and `model` sections.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import pkgutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from modelyard import config as schema
from modelyard.errors import ConfigError

if TYPE_CHECKING:
    from modelyard.protocols import Task

_REGISTRY: dict[str, Task] = {}
_SKIP = {"base", "common"}
T = TypeVar("T")


def register_task(name: str):
    """Class decorator: instantiate the task once and file it under `name`."""

    def wrap(cls: type[T]) -> type[T]:
        cls.name = name
        _REGISTRY[name] = cls()
        return cls

    return wrap


_DISCOVERED: list[bool] = []


def _discover() -> None:
    """Import every task module once (a module imported directly before registers only itself)."""
    if _DISCOVERED:
        return
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _SKIP and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    _DISCOVERED.append(True)


def task_names() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get_task(name: str) -> Task:
    """The task registered as `name`; its own module is tried first, so loading one bundle does not import the
    libraries of every other task (timm, pandas...)."""
    if name not in _REGISTRY and name.isidentifier() and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        importlib.import_module(f"{__name__}.{name}")
    if name not in _REGISTRY:
        _discover()
    return _REGISTRY[name]


def check_evaluation(task: Task, config: schema.Config) -> None:
    """An `evaluation` key the task never reads (its `evaluation_keys`) is refused, not silently ignored: costs,
    target_recall and groups shape table classifiers, metrics scores generated answers."""
    read = getattr(task, "evaluation_keys", frozenset())
    for key in sorted(config.evaluation.model_fields_set - read):
        if getattr(config.evaluation, key) not in (None, [], {}):
            readers = [n for n in task_names() if key in getattr(get_task(n), "evaluation_keys", ())]
            raise ConfigError(
                f"evaluation.{key}: a {config.task} model does not use it (only {', '.join(readers)} models do)",
                f"remove evaluation.{key} from the config",
            )


def sections(name: str) -> tuple[type[schema.DataConfig], type[schema.ModelConfig]]:
    """The `data` and `model` section classes of a task (the config schema's resolver)."""
    try:
        task = get_task(name)
    except KeyError:
        raise schema.unknown_task(name, task_names()) from None
    return task.DataConfig, task.ModelConfig


def load_config(path: str | Path, overrides: list[str] | None = None) -> schema.Config:
    """Read a YAML config, apply `--set` overrides, resolve paths, validate (with the task's own sections)."""
    return schema.read_config(path, overrides, sections)


def config_from_dict(raw: dict[str, Any], source: str = "config") -> schema.Config:
    """Validate a config mapping (with the task's own sections); errors name `source` and the key."""
    return schema.parse_config(raw, source, sections)


def as_config(config: schema.Config | dict[str, Any] | str | Path, overrides: Sequence[str] = ()) -> schema.Config:
    """What the API's verbs take as a config (a Config, a mapping, a YAML path), with `--set` style overrides
    applied to each alike: the one way a caller's config becomes the run's."""
    if isinstance(config, schema.Config):
        if not overrides:
            return config
        return config_from_dict(schema.apply_overrides(config.model_dump(mode="json"), list(overrides)))
    if isinstance(config, dict):
        return config_from_dict(schema.apply_overrides(copy.deepcopy(config), list(overrides)))
    if not isinstance(config, str | Path):
        raise ConfigError(f"config: expected a Config, a mapping or a YAML file path, got {type(config).__name__}")
    return load_config(config, list(overrides))
