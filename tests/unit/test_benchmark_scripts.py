"""Every script in benchmarks/ imports against the package as it is now (a renamed helper broke one unnoticed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
OWN_VENV = {"tabular_autogluon.py"}  # runs in AutoGluon's own environment (its usage line says so)


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name not in OWN_VENV))
def test_a_benchmark_script_imports(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # scripts import their neighbours (serve_bench, ...)
    name = f"benchmark_{Path(script).stem}"
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    assert module.__doc__, f"{script} says nowhere what it measures"


def test_serving_percentiles_are_nearest_rank(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from serve_bench import percentile

    latencies = [float(i) for i in range(1, 101)]  # 1 .. 100 ms
    assert percentile(latencies, 0.99) == 99.0 and percentile(latencies, 0.5) == 50.0
    assert percentile([7.0], 0.99) == 7.0
