"""Stopping abandoned work early. A thread cannot be killed, so the server marks a request abandoned (it timed
out) and the long loops doing its work (audio decoded block by block, a recording transcribed chunk by chunk) call
`check()` between steps, which raises `Cancelled` once nobody waits for the result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_local = threading.local()


class Cancelled(Exception):
    """The request this work was for has been abandoned; its result would be thrown away."""


@contextmanager
def watching(abandoned: Callable[[], bool]) -> Iterator[None]:
    """While inside, `check()` on this thread raises once `abandoned()` says true (called from this thread)."""
    previous = getattr(_local, "abandoned", None)
    _local.abandoned = abandoned
    try:
        yield
    finally:
        _local.abandoned = previous


def check() -> None:
    """Raise `Cancelled` when the work this thread does was abandoned; outside `watching`, never."""
    abandoned = getattr(_local, "abandoned", None)
    if abandoned is not None and abandoned():
        raise Cancelled("the request was abandoned")
