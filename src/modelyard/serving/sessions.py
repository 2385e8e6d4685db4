"""Conversation memory for the assistant: the last messages of each session, kept in the server's memory.

Bounded three ways: messages per session, sessions per server (least recently used dropped first) and idle time.
A session's update (the user's message and the answer) is stored in one step under a lock, so two requests of one
session never interleave half-turns. Memory is per server process and lost on restart; clients that need more
send the whole conversation in `messages`, as with OpenAI.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class SessionStore:
    def __init__(
        self, turns: int, sessions: int, idle_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.turns, self.sessions, self.idle_seconds, self.clock = turns, sessions, idle_seconds, clock
        self._data: OrderedDict[str, tuple[float, list[dict[str, str]]]] = OrderedDict()
        self._lock = threading.Lock()

    def history(self, session: str) -> list[dict[str, str]]:
        """The session's remembered messages, oldest first ([] for a new or forgotten session)."""
        with self._lock:
            self._expire()
            found = self._data.get(session)
            return list(found[1]) if found else []

    def remember(self, session: str, messages: list[dict[str, str]]) -> None:
        """Append `messages` (a user turn and its answer) and keep the last `turns` of them."""
        with self._lock:
            old = self._data.pop(session, (0.0, []))[1]
            kept = (old + messages)[-self.turns :] if self.turns else []
            self._data[session] = (self.clock(), kept)
            while len(self._data) > self.sessions:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def _expire(self) -> None:
        limit = self.clock() - self.idle_seconds
        while self._data and next(iter(self._data.values()))[0] < limit:
            self._data.popitem(last=False)
