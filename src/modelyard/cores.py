"""How many cores this process may use, which is what its compute threads should be sized to."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores the scheduler lets this process run on (a container's or taskset's CPU set, not the host's
    count); where the platform has no affinity (macOS, Windows), every core."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
