"""Where serving state lives: the prediction log, feedback labels and shadow comparisons (bandit rewards are read
from the labels). `MODELYARD_STATE_URI` unset or `sqlite:///PATH`: one SQLite file (the embedded default,
`MODELYARD_HOME/predictions.db`); `postgresql://...`: one database that server replicas on several machines share,
so `monitor`, `feedback` and `retrain` see every replica's traffic (docs/replicas.md).

One small connection type with sqlite3's shape (`execute`, `executemany`, `with conn:` is a transaction) hides
the two drivers; callers write SQLite-flavoured SQL with `?` placeholders and `ddl` adapts table definitions.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from modelyard.errors import ConfigError, UserError
from modelyard.home import home

ENV = "MODELYARD_STATE_URI"
FILENAME = "predictions.db"
POOL_SIZE = 8  # connections per server process: the log writer, feedback requests, the bandit, drift gauges
CONNECT_TIMEOUT_S = 10
FAIL_FAST_S = 1.0  # the wait for a connection when the pool holds none alive: the store is down (or just starting)

Dialect = Literal["sqlite", "postgresql"]

_pools: dict[tuple[str, int], Any] = {}  # (uri, pid): a forked worker never reuses its parent's sockets
_schemas: set[tuple[str, str]] = set()  # (uri, table DDL) created by this process already
_lent: dict[tuple[str, int], int] = {}  # (uri, pid): connections handed out and not yet given back
_lock = threading.Lock()


@dataclass(frozen=True)
class Store:
    """A parsed state location: a SQLite file or a PostgreSQL URI."""

    dialect: Dialect
    path: Path | None = None
    uri: str = ""

    def describe(self) -> str:
        """For messages: the file, or the URI without its password."""
        return str(self.path) if self.path is not None else masked(self.uri)


class StateUnavailable(UserError):
    """The PostgreSQL state store cannot be reached: the CLI exits 1 with the message, a server answers 503."""


def masked(uri: str) -> str:
    """`uri` with its password as *** wherever it is: in the user info (whose password may hold an unencoded '@':
    the host follows the last '@') and in a `password=` query parameter."""
    scheme, sep, rest = uri.partition("://")
    if sep:
        authority, slash, tail = rest.partition("/")
        userinfo, at, host = authority.rpartition("@")
        if at and ":" in userinfo:
            authority = f"{userinfo.partition(':')[0]}:***@{host}"
        uri = f"{scheme}{sep}{authority}{slash}{tail}"
    uri = re.sub(r"([?&]password=)[^&#]*", r"\1***", uri, flags=re.IGNORECASE)
    # a libpq key=value string (host=... password=...), which is no URI but may well be given as one
    return re.sub(r"(^|\s)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1\2***", uri, flags=re.IGNORECASE)


def without_password(text: str, uri: str) -> str:
    """A driver's message with any password of `uri` in it (as written or decoded) replaced by ***."""
    userinfo, at, _ = uri.partition("://")[2].partition("/")[0].rpartition("@")
    found = [userinfo.partition(":")[2]] if at else []
    found += re.findall(r"[?&]password=([^&#]*)", uri, flags=re.IGNORECASE)
    for secret in sorted({*found, *map(unquote, found)} - {""}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def store(path: Path | None = None) -> Store:
    """An explicit SQLite file wins (tests, a server's own log); otherwise MODELYARD_STATE_URI, else the default."""
    if path is not None:
        return Store("sqlite", Path(path))
    uri = os.environ.get(ENV, "").strip()
    if not uri:
        return Store("sqlite", home() / FILENAME)
    if uri.startswith("sqlite:///"):
        return Store("sqlite", Path(uri.removeprefix("sqlite:///")).expanduser())
    if uri.startswith(("postgresql://", "postgres://")):
        if "@" in uri.partition("://")[2].partition("/")[0].rpartition("@")[0]:  # the driver would cut it elsewhere
            raise ConfigError(
                f"{ENV}={masked(uri)!r}: its user info holds an '@' that is not percent-encoded, so the driver "
                "would read part of the password as the host",
                "write each '@' in the user name or password as %40",
            )
        return Store("postgresql", uri=uri)
    raise ConfigError(
        f"{ENV}={masked(uri)!r}: unsupported state store",
        "use sqlite:///PATH (the default is MODELYARD_HOME/predictions.db) or postgresql://USER:PASSWORD@HOST/DB",
    )


def errors() -> tuple[type[Exception], ...]:
    """The exceptions a failed statement raises, whichever driver is in use."""
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


def ddl(sql: str, dialect: Dialect) -> str:
    """SQLite table definitions for PostgreSQL: REAL is single precision there, too coarse for unix seconds."""
    return sql if dialect == "sqlite" else re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)


class StateConnection:
    """One connection with sqlite3's interface on either driver; `with conn:` commits or rolls back, `close`
    returns a PostgreSQL connection to the process's pool."""

    def __init__(self, raw: Any, where: Store, release: Any = None) -> None:
        self.raw = raw
        self.dialect: Dialect = where.dialect
        self.where = where
        self._release = release
        self._transactions: list[Any] = []

    def _sql(self, sql: str) -> str:
        return sql if self.dialect == "sqlite" else sql.replace("?", "%s")

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.raw.execute(self._sql(sql), params)

    def executemany(self, sql: str, rows: Any) -> None:
        if self.dialect == "sqlite":
            self.raw.executemany(sql, rows)
        else:
            with self.raw.cursor() as cursor:
                cursor.executemany(self._sql(sql), rows)

    def ensure(self, schema: str) -> None:
        """Create tables and indexes (SQLite DDL) if missing; PostgreSQL serialises this across replicas."""
        if self.dialect == "sqlite":
            self.raw.executescript(schema)
            return
        key = (self.where.uri, schema)
        if key in _schemas:
            return
        with self.raw.transaction():
            self.raw.execute("SELECT pg_advisory_xact_lock(727327)")  # two replicas starting at once
            self.raw.execute(ddl(schema, "postgresql"))
        _schemas.add(key)

    def __enter__(self) -> StateConnection:
        if self.dialect == "sqlite":
            self.raw.__enter__()
        else:
            transaction = self.raw.transaction()
            transaction.__enter__()
            self._transactions.append(transaction)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.dialect == "sqlite":
            self.raw.__exit__(*exc)
        else:
            self._transactions.pop().__exit__(*exc)

    def close(self) -> None:
        if self._release is not None:
            self._release(self.raw)
        else:
            self.raw.close()


def connect(path: Path | None = None) -> StateConnection:
    """A connection to the state store (see `store`); SQLite in WAL mode so readers and writers overlap."""
    where = store(path)
    if where.dialect == "sqlite":
        assert where.path is not None
        where.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            raw = sqlite3.connect(where.path, timeout=30, check_same_thread=False)
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as err:  # not a database (a stray file, a folder), or unreadable
            raise UserError(
                f"{where.path}: cannot open the state database ({err})",
                "move the file aside (a new one is created), or point MODELYARD_HOME elsewhere",
            ) from None
        return StateConnection(raw, where)
    pool, key = _pool(where), (where.uri, os.getpid())
    try:
        raw = pool.getconn(timeout=_wait_s(pool, key))
    except Exception as err:
        raise unavailable(where, err) from None
    with _lock:
        _lent[key] = _lent.get(key, 0) + 1

    def release(raw: Any) -> None:
        with _lock:
            _lent[key] -= 1
        pool.putconn(raw)

    return StateConnection(raw, where, release)


def _wait_s(pool: Any, key: tuple[str, int]) -> float:
    """How long a caller waits for a pooled connection: CONNECT_TIMEOUT_S while live ones are only busy, but
    FAIL_FAST_S when the pool holds none (the store is unreachable): a feedback request then answers 503 at once
    instead of after the pool's reconnection attempts."""
    with _lock:
        live = pool.get_stats()["pool_available"] + _lent.get(key, 0)
    return CONNECT_TIMEOUT_S if live else FAIL_FAST_S


def unavailable(where: Store, err: Exception) -> StateUnavailable:
    return StateUnavailable(
        f"{ENV}: cannot connect to {where.describe()} ({without_password(str(err), where.uri)})",
        "check that PostgreSQL is running and the URI's host, port, user, password and database",
    )


def check(timeout_s: float = 3) -> None:
    """Before a server loads its model: the state URI names a supported store and, for PostgreSQL, one connection
    within `timeout_s` succeeds; the driver's reason (a bad port, a refused connection) is in the error."""
    where = store()
    if where.dialect == "sqlite":
        return
    try:
        import psycopg
    except ImportError:
        raise ConfigError(f"{ENV} names PostgreSQL but psycopg is not installed", "pip install modelyard") from None
    try:
        psycopg.connect(where.uri, connect_timeout=max(1, round(timeout_s))).close()
    except Exception as err:  # psycopg.Error for a refused or bad connection, ValueError/ProgrammingError for a bad URI
        raise unavailable(where, err) from None


def _pool(where: Store) -> Any:
    try:
        from psycopg_pool import ConnectionPool
    except ImportError:
        raise ConfigError(f"{ENV} names PostgreSQL but psycopg is not installed", "pip install modelyard") from None
    key = (where.uri, os.getpid())
    with _lock:
        if key not in _pools:
            _pools[key] = ConnectionPool(
                where.uri,
                min_size=1,
                max_size=POOL_SIZE,
                kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
                check=ConnectionPool.check_connection,  # a replica survives a database restart
                open=True,
                name="modelyard-state",
            )
        return _pools[key]


def close() -> None:
    """Close this process's PostgreSQL pools (their threads would otherwise retry a database that went away)."""
    with _lock:
        for key in [k for k in _pools if k[1] == os.getpid()]:
            _pools.pop(key).close()
            _lent.pop(key, None)
