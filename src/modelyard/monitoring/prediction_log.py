"""The prediction log: every served prediction, appended off the request path, read by monitoring.

One table in the state store (modelyard.state): by default `MODELYARD_HOME/predictions.db` (SQLite, WAL mode, busy
timeout), so several server processes can append at once and `modelyard monitor` can read while they do; with
`MODELYARD_STATE_URI=postgresql://...` one database that every replica appends to. Feedback labels land in the
same row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from modelyard import state
from modelyard.errors import UserError
from modelyard.home import home

if TYPE_CHECKING:  # pandas takes a while to import; the server only writes the log
    import pandas as pd

    from modelyard.privacy import Redactor

log = logging.getLogger(__name__)

FILENAME = state.FILENAME
COLUMNS = (
    "prediction_id",
    "ts",
    "model",
    "version",
    "input",
    "input_sha256",
    "output",
    "latency_ms",
    "label",
    "feedback_ts",
)
GATHER_S = 0.05  # a busy server commits ~20 transactions a second instead of one per drained handful of rows
MAX_ROWS = 4096  # per transaction
PG_RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 4.0)  # then give up: a PostgreSQL restart or fail-over loses no rows
_INSERT = f"INSERT OR REPLACE INTO predictions ({', '.join(COLUMNS[:8])}) VALUES (?,?,?,?,?,?,?,?)"
_UPSERT = (  # PostgreSQL's spelling of the same replace (a retried batch writes its rows once)
    f"INSERT INTO predictions ({', '.join(COLUMNS[:8])}) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (prediction_id) "
    f"DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in COLUMNS[1:8])}"
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    prediction_id TEXT PRIMARY KEY,
    ts REAL NOT NULL,            -- unix seconds when the answer was sent
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    input TEXT,                  -- JSON of the input, PII redacted; NULL with --no-log-inputs or "store": false
    input_sha256 TEXT NOT NULL,  -- sha256 of the redacted JSON (drift, duplicates); '' for "store": false
    output TEXT NOT NULL,        -- JSON of the prediction
    latency_ms REAL NOT NULL,    -- of the whole request the prediction came in
    label TEXT,                  -- JSON of the feedback label, once known
    feedback_ts REAL
);
CREATE INDEX IF NOT EXISTS predictions_model_ts ON predictions (model, ts);
"""


def db_path(directory: Path | None = None) -> Path:
    return (directory or home()) / FILENAME


def connect(path: Path | None = None) -> state.StateConnection:
    """A connection to the log (a SQLite file when `path` is given, else the configured state store), creating
    the table on first use."""
    conn = state.connect(path)
    conn.ensure(_SCHEMA)
    return conn


def open_log(directory: Path | None = None) -> state.StateConnection:
    """The log in `directory` (a SQLite file), or in the configured state store when None."""
    return connect(db_path(directory) if directory is not None else None)


@dataclass
class PredictionRecord:
    prediction_id: str
    ts: float
    model: str
    version: str
    input: Any
    output: Any
    latency_ms: float
    store: bool = True  # False: the client asked that its input is never stored, not even as a hash

    def payload(self) -> Any:
        return self.input.model_dump(mode="json") if isinstance(self.input, BaseModel) else self.input

    def row(self, log_inputs: bool, payload: Any, output: Any) -> tuple[Any, ...]:
        """The table row, from the input and output as they may be stored (already redacted)."""
        encoded = json.dumps(payload, ensure_ascii=False, sort_keys=True)
        digest = hashlib.sha256(encoded.encode("utf-8")).hexdigest() if self.store else ""
        return (
            self.prediction_id,
            self.ts,
            self.model,
            self.version,
            encoded if log_inputs and self.store else None,
            digest,
            json.dumps(output, ensure_ascii=False, default=str),
            self.latency_ms,
        )


def redacted_rows(
    records: list[PredictionRecord], log_inputs: bool, inputs: Redactor | None, outputs: Redactor | None
) -> list[tuple[Any, ...]]:
    """Rows for a batch of records, personal data replaced in one detector pass per column (on the writer
    thread, off the request path; the shadow log's rows too). An input that is not stored is not scanned either."""
    raw = [r.payload() if r.store else None for r in records]
    payloads = raw if inputs is None else inputs.redact_values(raw)
    answers = [r.output for r in records]
    if inputs is not None:
        answers = [_entity_texts_redacted(a, r, p, inputs) for a, r, p in zip(answers, raw, payloads, strict=True)]
    if outputs is not None:
        answers = outputs.redact_values(answers)
    return [r.row(log_inputs, p, o) for r, p, o in zip(records, payloads, answers, strict=True)]


def _entity_texts_redacted(answer: Any, raw: Any, logged: Any, redactor: Redactor) -> Any:
    """An entity extractor's answer with each span's `text` redacted as the input was: a name replaced in the
    logged text is replaced in the logged spans too (alone, "Justin" is no longer recognisable as a name)."""
    spans = answer.get("entities") if isinstance(answer, dict) else None
    if not isinstance(raw, str) or raw == logged or not isinstance(spans, list):
        return answer
    found = redactor.find(raw)

    def hidden(span: Any) -> Any:
        if not isinstance(span, dict) or not {"start", "end", "text"} <= set(span):
            return span
        start, end, parts = span["start"], span["end"], []
        for pii in (p for p in found if p.start < end and p.end > start):
            parts += [raw[start : pii.start] if pii.start > start else "", redactor.placeholder(pii)]
            start = max(start, pii.end)
        return {**span, "text": "".join(parts) + raw[start:end]} if parts else span

    return {**answer, "entities": [hidden(s) for s in spans]}


class PredictionLogWriter:
    """A background thread draining a queue into the log, many rows per transaction (rows are committed within
    about GATHER_S of their request; `flush` waits for the ones appended before it, never for later traffic).
    `redact_inputs` / `redact_outputs` replace personal data before anything reaches the file (privacy.redact)."""

    def __init__(
        self,
        path: Path | None = None,
        log_inputs: bool = True,
        redact_inputs: Redactor | None = None,
        redact_outputs: Redactor | None = None,
    ) -> None:
        self.where = state.store(path)
        self.path = self.where.path  # None when the log lives in PostgreSQL
        self.directory = path.parent if path is not None else None  # for readers: None = the configured store
        self._file = path
        self.log_inputs = log_inputs
        self.redact_inputs = redact_inputs
        self.redact_outputs = redact_outputs
        self._queue: queue.Queue[PredictionRecord | None] = queue.Queue()
        self._appended = 0  # records put on the queue so far
        self._written = 0  # records the writer has taken off it and committed (or logged as failed)
        self._progress = threading.Condition()
        self._stopped = False
        connect(path).close()  # fail at startup, not on the first request, when the folder is unwritable
        self._thread = threading.Thread(target=self._run, name="modelyard-prediction-log", daemon=True)
        self._thread.start()

    def append(self, records: list[PredictionRecord]) -> None:
        with self._progress:  # the count and the queue agree for `flush`
            for record in records:
                self._queue.put(record)
            self._appended += len(records)

    def flush(self) -> None:
        """Block until every record appended before this call is committed; rows appended meanwhile (steady
        traffic) do not extend the wait, so it is bounded by the backlog at the time of the call."""
        with self._progress:
            target = self._appended
            self._progress.wait_for(lambda: self._written >= target or self._stopped)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _commit(self, conn: state.StateConnection | None, rows: list[tuple[Any, ...]]) -> None:
        """One transaction. PostgreSQL: a pooled connection per batch (checked before use, so one the database
        dropped is replaced), and a failed batch is retried with backoff before its rows are given up."""
        if conn is not None:
            with conn:
                conn.executemany(_INSERT, rows)
            return
        for wait in (*PG_RETRY_BACKOFF_S, None):
            try:
                pooled = connect(self._file)
                try:
                    with pooled:
                        pooled.executemany(_UPSERT, rows)
                    return
                finally:
                    pooled.close()
            except (*state.errors(), UserError) as err:
                if wait is None:
                    raise
                log.warning("writing %d predictions failed (%s); retrying in %g s", len(rows), err, wait)
                time.sleep(wait)

    def _run(self) -> None:
        conn = connect(self._file) if self.where.dialect == "sqlite" else None
        try:
            while True:
                first = self._queue.get()
                if first is not None:
                    time.sleep(GATHER_S)  # let records gather: one transaction of many rows costs less CPU
                batch = [first]
                while not self._queue.empty() and len(batch) < MAX_ROWS:
                    batch.append(self._queue.get_nowait())
                records = [r for r in batch if r is not None]
                try:
                    rows = redacted_rows(records, self.log_inputs, self.redact_inputs, self.redact_outputs)
                    self._commit(conn, rows)
                except Exception:  # never let one bad batch stop the writer (a row that cannot be redacted is dropped)
                    log.exception("could not write %d predictions to %s", len(records), self.where.describe())
                finally:
                    with self._progress:
                        self._written += len(records)
                        self._progress.notify_all()
                if len(records) < len(batch):
                    return
        finally:
            if conn is not None:
                conn.close()
            with self._progress:  # a flush waiting on a writer that stopped returns
                self._stopped = True
                self._progress.notify_all()


def read_predictions(
    since: float | None = None, model: str | None = None, directory: Path | None = None
) -> pd.DataFrame:
    """Logged predictions, oldest first; `since` is unix seconds. JSON columns stay strings."""
    import pandas as pd

    where = state.store(db_path(directory) if directory is not None else None)
    if where.path is not None and not where.path.exists():
        return pd.DataFrame(columns=list(COLUMNS))
    clauses, params = [], []
    if since is not None:
        clauses.append("ts >= ?")
        params.append(since)
    if model is not None:
        clauses.append("model = ?")
        params.append(model)
    where_sql = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    conn = open_log(directory)
    try:
        rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM predictions{where_sql} ORDER BY ts", params).fetchall()
    finally:
        conn.close()
    return pd.DataFrame.from_records(rows, columns=list(COLUMNS))


def has_prediction(prediction_id: str, directory: Path | None = None) -> bool:
    conn = open_log(directory)
    try:
        found = conn.execute("SELECT 1 FROM predictions WHERE prediction_id = ?", (prediction_id,)).fetchone()
        return found is not None
    finally:
        conn.close()


def read_input(prediction_id: str, directory: Path | None = None) -> Any:
    """The logged input of one prediction (decoded JSON), or None when it was not logged."""
    conn = open_log(directory)
    try:
        found = conn.execute("SELECT input FROM predictions WHERE prediction_id = ?", (prediction_id,)).fetchone()
    finally:
        conn.close()
    return json.loads(found[0]) if found is not None and isinstance(found[0], str) else None


def record_feedback(prediction_id: str, label: Any, directory: Path | None = None) -> bool:
    """Attach the true label to a logged prediction; False when no prediction has that id."""
    conn = open_log(directory)
    try:
        with conn:
            return store_label(conn, prediction_id, label)
    finally:
        conn.close()


def store_label(conn: state.StateConnection, prediction_id: str, label: Any) -> bool:
    """The feedback update inside the caller's transaction (a file import stores all its rows or none)."""
    cursor = conn.execute(
        "UPDATE predictions SET label = ?, feedback_ts = ? WHERE prediction_id = ?",
        (json.dumps(label, ensure_ascii=False), time.time(), prediction_id),
    )
    return cursor.rowcount > 0


def answered_right(output: Any, label: Any) -> bool | None:
    """Whether a logged answer (decoded JSON) matches its feedback label, compared as text, so a class `1` sent as
    a JSON number counts the same as "1" from a file; None where the answer is no label (a forecast, a ranking)."""
    if not isinstance(output, dict) or "label" not in output:
        return None
    return str(output["label"]) == str(label)


def model_version(model: Any) -> str:
    """The version a log row names for `model`: its registry version when it came from one, else a short content
    hash of its manifest."""
    version = getattr(model, "version", None) or model.manifest.get("version")
    if version:
        return str(version)
    files = model.manifest.get("files") or model.manifest
    digest = hashlib.sha256(json.dumps(files, sort_keys=True, default=str).encode()).hexdigest()
    return f"sha256:{digest[:12]}"
