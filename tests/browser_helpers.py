"""Where the browser tests find Chromium: one place, read by the tests and by the Makefile's `browser` target
(`python tests/browser_helpers.py` prints the path), so `make test` installs exactly the browser the tests drive."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("CHROMIUM") or "/usr/bin/chromium")  # Debian's package; CHROMIUM=... overrides
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
]


def chromium() -> Path:
    """The browser's path, or a skip naming what is missing (tests/conftest.py turns it into a failure in CI)."""
    import pytest

    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"needs Chromium at {CHROMIUM} (`make browser` installs it; CHROMIUM=PATH points elsewhere)")
    return CHROMIUM


if __name__ == "__main__":
    print(CHROMIUM)
