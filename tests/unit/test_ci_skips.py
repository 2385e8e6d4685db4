"""In CI a skip fails the run unless the test needs ../shared data; outside CI a skip stays a skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
SUITE = """
import pytest
from conftest import shared_dataset


def test_needs_a_browser():
    pytest.skip("needs Chromium at /nowhere/chromium")


def test_needs_shared_data():
    shared_dataset("no-such-dataset-anywhere")


@pytest.mark.xfail(reason="a known failure")
def test_known_failure():
    assert False
"""


def run_suite(folder: Path, ci: bool) -> str:
    """Run a three-test suite under the project's conftest in a fresh pytest process; its report."""
    shutil.copy(CONFTEST, folder / "conftest.py")
    (folder / "test_suite.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": "true"} if ci else {})
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(folder)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder, timeout=120).stdout


def test_in_ci_a_skip_for_a_missing_browser_fails_and_a_skip_for_shared_data_stays_a_skip(tmp_path):
    out = run_suite(tmp_path, ci=True)
    assert out.splitlines()[-1].startswith("1 failed, 1 skipped, 1 xfailed in")
    assert "skipped in CI" in out and "needs Chromium at /nowhere/chromium" in out


def test_outside_ci_every_skip_stays_a_skip(tmp_path):
    assert run_suite(tmp_path, ci=False).splitlines()[-1].startswith("2 skipped, 1 xfailed in")
