"""`PredictionLogWriter.flush` waits for the rows appended before it, not for a queue that steady traffic refills."""

from __future__ import annotations

import threading
import time

from modelyard.monitoring.prediction_log import PredictionLogWriter, PredictionRecord, has_prediction


def record(pid: str) -> PredictionRecord:
    return PredictionRecord(pid, time.time(), "demo", "1", "some text", {"label": "a"}, 1.0)


def test_flush_returns_under_steady_traffic_with_the_earlier_rows_committed(tmp_path):
    writer = PredictionLogWriter(tmp_path / "predictions.db")
    stop = threading.Event()

    def traffic() -> None:
        i = 0
        while not stop.is_set():  # a busy server: a backlog of rows that never runs dry
            if writer._queue.qsize() < 10_000:  # more than one transaction takes
                writer.append([record(f"busy{i}-{j}") for j in range(10)])
                i += 1
            else:
                time.sleep(0.001)

    producer = threading.Thread(target=traffic, daemon=True)
    producer.start()
    time.sleep(0.1)
    writer.append([record("mine")])
    flusher = threading.Thread(target=writer.flush, daemon=True)
    flusher.start()
    flusher.join(timeout=10)
    flushed = not flusher.is_alive()
    stop.set()
    producer.join()
    writer.close()
    assert flushed, "flush() still waiting after 10 s of steady traffic"
    assert has_prediction("mine", tmp_path)


def test_flush_after_close_returns_at_once(tmp_path):
    writer = PredictionLogWriter(tmp_path / "predictions.db")
    writer.append([record("last")])
    writer.close()
    writer.flush()
    assert has_prediction("last", tmp_path)
