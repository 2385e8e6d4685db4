"""Where runs and models are stored (embedded SQLite or a shared MLflow server) and how store failures read.

MLflow is imported here lazily and quietly: `import modelyard` never pays for it, users never see its log
lines, and no call ever reaches the network unless the user points the tracking URI at a server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.errors import UserError
from modelyard.home import home
from modelyard.state import masked, without_password

if TYPE_CHECKING:
    from mlflow import MlflowClient

LOCK_TIMEOUT_S = 60.0
SQLITE_TIMEOUT_S = 5.0
_QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # "View run ... at:" would land in `$(modelyard -q train)`
    "MLFLOW_PRINT_MODEL_URLS_ON_CREATION": "false",
}
CONNECT_TIMEOUT_S = 10  # one try at a database server; MLflow itself retries ten times over ~100 s
_held = threading.local()
_NOISY_LOGGERS = ("mlflow", "alembic", "sqlalchemy", "urllib3", "git", "databricks")


class TrackingStoreError(UserError):
    """The tracking store cannot be used: a corrupt or locked database, or a server that refuses."""


def tracking_uri() -> str:
    """MODELYARD_TRACKING_URI, else MLFLOW_TRACKING_URI, else embedded SQLite in MODELYARD_HOME."""
    for var in ("MODELYARD_TRACKING_URI", "MLFLOW_TRACKING_URI"):
        if value := os.environ.get(var, "").strip():
            return value
    return f"sqlite:///{home() / 'mlflow.db'}"


def tracking_wanted() -> bool:
    """`train` tracks unless MODELYARD_TRACKING is off (0/off/false/no): for quick trials and test suites."""
    return os.environ.get("MODELYARD_TRACKING", "on").strip().lower() not in {"0", "off", "false", "no"}


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, or None for any other store."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def is_file_store(uri: str) -> bool:
    """A `file:` URI or a plain folder: MLflow's file store, which it keeps in maintenance mode and refuses."""
    scheme, sep, _ = uri.partition("://")
    if uri.startswith("file:") or (sep and len(scheme) == 1):  # `C://...`: a Windows path
        return True
    return not sep and not uri.startswith("databricks")  # `databricks` alone names a Databricks workspace


def is_database(uri: str) -> bool:
    """A database server MLflow reaches through SQLAlchemy (postgresql://, mysql+pymysql://, mssql://)."""
    scheme = uri.partition("://")[0].split("+")[0]
    return scheme in ("postgresql", "postgres", "mysql", "mssql")


def artifact_root(uri: str) -> str | None:
    """Embedded stores keep artifacts beside the database; a server decides for itself (None)."""
    db = sqlite_path(uri)
    if db is None:
        return None
    if db == home() / "mlflow.db":
        return (home() / "mlartifacts").as_uri()
    return (db.parent / "mlartifacts").as_uri()


def mlflow() -> Any:
    """Import MLflow with telemetry, progress bars and chatter turned off."""
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    import mlflow as _mlflow

    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    return _mlflow


def _check_sqlite(path: Path) -> None:
    """Fail fast with a clear message on a corrupt or locked database (MLflow itself retries for minutes)."""
    if not path.exists():
        return
    with path.open("rb") as f:
        header = f.read(16)
    if header and header != b"SQLite format 3\x00":
        raise TrackingStoreError(
            f"the tracking database {path} is not an SQLite database (corrupt or overwritten)",
            f"move it aside (e.g. `mv {path} {path}.bad`) and a fresh store is created on the next run",
        )
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=SQLITE_TIMEOUT_S)
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError as err:
        raise _sqlite_error(path, err) from None


def _sqlite_error(path: Path, err: Exception) -> TrackingStoreError:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if "locked" in text or "busy" in text:
        return TrackingStoreError(
            f"the tracking database {path} is locked by another process ({text})",
            "wait for the other modelyard/mlflow process to finish, then try again",
        )
    return TrackingStoreError(
        f"the tracking database {path} cannot be read: {text}",
        f"move it aside (e.g. `mv {path} {path}.bad`) and a fresh store is created on the next run",
    )


def client(uri: str | None = None) -> MlflowClient:
    """An MlflowClient for the tracking and registry store, checked before MLflow touches it."""
    uri = uri or tracking_uri()
    db = sqlite_path(uri)
    if db is not None:
        _check_sqlite(db)
    ml = mlflow()
    with store_errors(uri), write_lock(uri):
        if is_database(uri):
            _probe_database(uri)
        c = ml.MlflowClient(tracking_uri=uri, registry_uri=uri)
        c.search_experiments(max_results=1)  # creates the tables of a new store, under the lock
    return c


def _probe_database(uri: str) -> None:
    """Connect once with a timeout, so a database that is down, refuses the login or lacks its driver fails in
    seconds instead of stalling through MLflow's retries."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    backend = sqlalchemy.engine.make_url(uri).get_backend_name()
    timeout = {"connect_timeout": CONNECT_TIMEOUT_S} if backend in ("postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(uri, poolclass=NullPool, connect_args=timeout)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


@contextlib.contextmanager
def write_lock(uri: str | None = None) -> Iterator[None]:
    """Serialise writers of one SQLite store across processes; servers serialise for themselves."""
    db = sqlite_path(uri or tracking_uri())
    if db is None:
        yield
        return
    from filelock import FileLock, Timeout

    held = _held.__dict__.setdefault("paths", set())
    if db in held:  # re-entered by the same thread: it already holds the lock
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(db) + ".lock", timeout=LOCK_TIMEOUT_S):
            held.add(db)
            try:
                yield
            finally:
                held.discard(db)
    except Timeout:
        raise TrackingStoreError(
            f"the tracking database {db} stayed locked for {LOCK_TIMEOUT_S:.0f} s",
            "another modelyard process is writing to it; try again when it has finished",
        ) from None


@contextlib.contextmanager
def store_errors(uri: str | None = None) -> Iterator[None]:
    """Turn MLflow, SQLAlchemy and HTTP failures into one TrackingStoreError naming the store."""
    uri = uri or tracking_uri()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.showwarning = _drop  # MLflow re-enables some warnings inside; they still go nowhere
        try:
            yield
        except UserError:
            raise
        except Exception as err:
            raise describe_failure(uri, err) from None


def _drop(*args: Any, **kwargs: Any) -> None:
    return None


def describe_failure(uri: str, err: Exception) -> TrackingStoreError:
    """One line a user can act on, whatever layer failed."""
    db = sqlite_path(uri)
    if db is not None and _is_database_error(err):
        return _sqlite_error(db, getattr(err, "orig", None) or err)
    text = str(getattr(err, "message", None) or err).strip().splitlines()
    first = without_password(text[0][:300] if text else type(err).__name__, uri)
    if is_file_store(uri):
        return TrackingStoreError(
            f"the tracking store {masked(uri)} is a folder: MLflow's file store is in maintenance mode and modelyard "
            "does not support it",
            "use an SQLite file, e.g. MODELYARD_TRACKING_URI=sqlite:///path/to/mlflow.db, or unset "
            "MODELYARD_TRACKING_URI / MLFLOW_TRACKING_URI to use the embedded store",
        )
    if db is None:
        what = "database" if is_database(uri) else "server"
        return TrackingStoreError(
            f"the tracking {what} {masked(uri)} refused or failed: {first}",
            f"check that the {what} is running and reachable, or unset MODELYARD_TRACKING_URI / "
            "MLFLOW_TRACKING_URI to use the embedded store",
        )
    return TrackingStoreError(f"the tracking store {masked(uri)} failed: {first}")


def _is_database_error(err: Exception) -> bool:
    if isinstance(err, sqlite3.DatabaseError):
        return True
    module = type(err).__module__
    return module.startswith("sqlalchemy") or isinstance(getattr(err, "orig", None), sqlite3.DatabaseError)


@contextlib.contextmanager
def fluent(uri: str) -> Iterator[Any]:
    """MLflow's fluent API (needed by `pyfunc.log_model`) pointed at `uri`, restoring global state afterwards.

    `mlflow.set_tracking_uri` also writes MLFLOW_TRACKING_URI into the environment; leaving it there would
    make a later MODELYARD_HOME change in the same process silently write to the old store.
    """
    ml = mlflow()
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    ml.set_tracking_uri(uri)
    ml.set_registry_uri(uri)
    try:
        yield ml
    finally:
        ml.set_tracking_uri(None)
        ml.set_registry_uri(None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
