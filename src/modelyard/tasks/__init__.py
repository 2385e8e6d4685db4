"""Task registry. Every module in this package registers itself with `@register_task`; nothing else names tasks."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from modelyard.tasks.base import Task

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
