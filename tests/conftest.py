"""Shared fixtures: the real datasets beside the checkout (skipped cleanly when absent) and small real bundles."""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MODELYARD_SHARED", ROOT.parent / "shared")) / "datasets"
EXAMPLES = ROOT / "examples"
SHARED_SKIP = "needs ../shared/datasets/"  # a skip CI allows: licences keep that data out of the repository
NO_CONTAINER_SKIP = "needs a container runtime: "  # the other: no daemon and no base-image registry on this machine


def shared_dataset(name: str) -> Path:
    """A folder of ../shared/datasets, or a clean skip when this checkout has none beside it."""
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{SHARED_SKIP}{name}")
    return path


_FAILED = pytest.StashKey[bool]()  # set on a test whose setup, call or teardown failed: its home is kept


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI a skip for anything but ../shared data or a container runtime (a missing browser, bundled model or
    required dependency) fails: a broken install must not pass as a green run with fewer tests."""
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    if _in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if SHARED_SKIP not in reason and NO_CONTAINER_SKIP not in reason:
            report.outcome = "failed"
            item.stash[_FAILED] = True
            report.longrepr = f"skipped in CI, where only ../shared data or a container runtime may lack: {reason}"
    return report


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test` runs a worker per core) the workers share the cores' threads: each worker
    with a thread per core would oversubscribe them. Set before torch is imported; subprocesses inherit it."""
    from modelyard.cores import usable_cores  # imports nothing heavy: torch is not loaded yet

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // workers))


@pytest.fixture(scope="session", autouse=True)
def _shared_model_cache(tmp_path_factory) -> None:
    """One cache of converted bundled models for the run (SmolLM2's GGUF takes ~20 s to dequantise, Gemma's about a
    minute): the product's own MODELYARD_CACHE, set before any module-scoped fixture loads a model, so each
    conversion runs once rather than once per test home. xdist workers share it (their temp roots are siblings);
    the product's conversion lock makes a second worker wait for the first."""
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "model-cache"
    cache.mkdir(exist_ok=True)
    os.environ["MODELYARD_CACHE"] = str(cache)


@pytest.fixture(scope="session", autouse=True)
def _session_home(tmp_path_factory) -> Generator[None, None, None]:
    """Module- and session-scoped fixtures run before any test's own home is set: they too write to a temporary
    home with tracking off (those that need tracking switch it on), never to ./.modelyard of the working folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELYARD_HOME", str(tmp_path_factory.mktemp("session-home")))
        patch.setenv("MODELYARD_TRACKING", "off")
        yield


@pytest.fixture(autouse=True)
def _isolated_home(request, tmp_path_factory, monkeypatch) -> Generator[None, None, None]:
    """Every test writes its local state (tracking, logs) to a fresh MODELYARD_HOME; model caches are shared. A
    passing test's home is removed afterwards, as its tmp_path is (pyproject's tmp_path_retention_policy)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MODELYARD_HOME", str(home))
    monkeypatch.setenv("MODELYARD_TRACKING", "off")  # tests that check tracking switch it on themselves
    yield
    if not request.node.stash.get(_FAILED, False):
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def banking_slice(tmp_path_factory) -> Path:
    """A small real slice of BANKING77 (CC BY 4.0, in examples/data): 8 intents, 40 rows each, plus a test file."""
    import pandas as pd

    src = EXAMPLES / "data" / "banking77"
    train = pd.read_csv(src / "train.csv")
    test = pd.read_csv(src / "test.csv")
    intents = sorted(train["category"].unique())[:8]
    out = tmp_path_factory.mktemp("banking")
    train[train["category"].isin(intents)].groupby("category").head(40).to_csv(out / "train.csv", index=False)
    test[test["category"].isin(intents)].groupby("category").head(10).to_csv(out / "test.csv", index=False)
    return out


def write_config(folder: Path, backbone: str, **train) -> Path:
    import yaml

    config = {
        "name": f"test-{backbone}",
        "task": "text_classification",
        "data": {"train": "train.csv", "test": "test.csv", "text_column": "text", "label_column": "category"},
        "model": {"backbone": backbone},
        "train": {"epochs": 1, **train},
    }
    path = folder / f"{backbone}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def tfidf_bundle(banking_slice, tmp_path_factory) -> Path:
    """A real, quickly trained text-classifier bundle (TF-IDF + logistic regression on the BANKING77 slice)."""
    import modelyard

    home = tmp_path_factory.mktemp("home-session")
    os.environ["MODELYARD_HOME"] = str(home)
    model = modelyard.train(
        write_config(banking_slice, "tfidf-linear"), output=tmp_path_factory.mktemp("b") / "tfidf", quiet=True
    )
    return model.path


@pytest.fixture(scope="session")
def minilm_bundle(banking_slice, tmp_path_factory) -> Path:
    """A real fine-tuned MiniLM bundle (one short epoch on the BANKING77 slice)."""
    import modelyard

    model = modelyard.train(
        write_config(banking_slice, "minilm-l6", batch_size=32),
        output=tmp_path_factory.mktemp("b") / "minilm",
        quiet=True,
    )
    return model.path


@pytest.fixture(scope="session")
def entity_bundle(tmp_path_factory):
    """A real MiniLM entity extractor (PER, LOC) trained for 6 short epochs on 48 template sentences; shared by
    the token classification tests and the playground's browser test (tests/entity_helpers.py)."""
    from entity_helpers import english_rows, tiny_config

    import modelyard

    folder = tmp_path_factory.mktemp("entities-en")
    return modelyard.train(tiny_config(folder, english_rows, "auto"), output=folder / "b", quiet=True, track=False)


@pytest.fixture(scope="session")
def tiny_gpt_bundle(tmp_path_factory) -> Path:
    """A real character-level GPT bundle: 2 layers, 24 steps on 6,000 characters of Tiny Shakespeare (the run
    crosses an epoch boundary, so a checkpoint of tied weights is written too)."""
    import yaml

    import modelyard

    folder = tmp_path_factory.mktemp("gpt")
    text = (EXAMPLES / "data" / "tiny_shakespeare" / "input.txt").read_text(encoding="utf-8")[:6_000]
    (folder / "corpus.txt").write_text(text, encoding="utf-8")
    config = {
        "name": "tiny-gpt",
        "task": "text_generation",
        "data": {"train": "corpus.txt", "split": {"validation": 0.1, "test": 0.1}},
        "model": {
            "backbone": "gpt-scratch",
            "layers": 2,
            "heads": 2,
            "hidden_size": 32,
            "context": 32,
            "generation": {"max_new_tokens": 12, "temperature": 0.8, "top_k": 10},
        },
        "train": {"max_steps": 24, "batch_size": 8, "learning_rate": 3e-3, "early_stopping": None},
    }
    (folder / "gpt.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    model = modelyard.train(folder / "gpt.yaml", output=tmp_path_factory.mktemp("b") / "gpt", quiet=True)
    return model.path
