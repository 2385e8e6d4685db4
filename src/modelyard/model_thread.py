"""The one thread that runs models in a server process: loading, warm-up, batches, explanations, drift checks.

PyTorch's CPU kernels run in OpenMP parallel regions (libgomp), and libgomp keeps a pool of worker threads for
each thread that opens a region. Once it manages more threads than there are CPUs, its workers stop spinning
between regions and sleep, so each of the hundreds of small regions in a forward pass pays a wake-up. Loading a
MiniLM bundle on one thread and predicting on another was enough for that: a batch of 32 texts took ~80 ms instead
of ~38 ms on two cores. Running every model call of the process on this single thread keeps one pool.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_thread_id: int | None = None


def _remember_thread() -> None:
    global _thread_id
    _thread_id = threading.get_ident()


# one worker thread, started by the first call (creating the executor starts none), never shut down early
_executor = ThreadPoolExecutor(1, thread_name_prefix="modelyard-model", initializer=_remember_thread)


async def run(fn: Callable[..., T], /, *args: Any) -> T:
    """Await `fn(*args)` on the model thread from the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_executor, functools.partial(fn, *args))


def call(fn: Callable[..., T], /, *args: Any) -> T:
    """`fn(*args)` on the model thread from any other thread (directly when already on it: no deadlock)."""
    if threading.get_ident() == _thread_id:
        return fn(*args)
    return _executor.submit(fn, *args).result()
