"""The audit trail of alias moves (who, when, why), kept as tags on the registered model itself.

Tags live in the same store as the aliases they describe: a team on a shared MLflow server shares one
trail, it shows in `mlflow ui`, and each entry is one database transaction (no second file to lose or to
drift from the registry, as a JSON-lines file under one user's MODELYARD_HOME would). Keys sort by time,
with a random suffix so two simultaneous writers never collide.
"""

from __future__ import annotations

import getpass
import json
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

PREFIX = "modelyard.audit."
MAX_REASON = 1000


@dataclass(frozen=True)
class AliasMove:
    alias: str
    action: Literal["promote", "rollback"]
    from_version: str | None
    to_version: str
    who: str
    when: str  # ISO 8601, UTC
    why: str

    def key(self) -> str:
        return f"{PREFIX}{time.time_ns():020d}.{uuid.uuid4().hex[:8]}"

    def value(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def new_move(
    alias: str,
    action: Literal["promote", "rollback"],
    from_version: str | None,
    to_version: str,
    why: str | None,
) -> AliasMove:
    return AliasMove(
        alias=alias,
        action=action,
        from_version=from_version,
        to_version=to_version,
        who=_user(),
        when=datetime.now(UTC).isoformat(timespec="seconds"),
        why=(why or "")[:MAX_REASON],
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return "unknown"


def read_trail(tags: dict[str, str], alias: str | None = None) -> list[AliasMove]:
    """Entries in the order they were written, optionally for one alias; unreadable tags are skipped."""
    moves = []
    for key in sorted(k for k in tags if k.startswith(PREFIX)):
        try:
            data: dict[str, Any] = json.loads(tags[key])
            move = AliasMove(**data)
        except (ValueError, TypeError):
            continue
        if alias is None or move.alias == alias:
            moves.append(move)
    return moves


def previous_holder(moves: list[AliasMove]) -> str | None:
    """The version to roll back to: promotions push the version they displaced, rollbacks pop it.

    So promote v1, v2, v3 then rollback, rollback walks back v3 -> v2 -> v1, rather than flip-flopping.
    Returns None when no earlier holder is recorded.
    """
    stack: list[str | None] = []
    for move in moves:
        if move.action == "promote":
            stack.append(move.from_version)
        elif stack:
            stack.pop()
    return stack[-1] if stack else None
