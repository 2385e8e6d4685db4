"""Drift and live accuracy as Prometheus gauges, recomputed in a background thread, off the request path.

The statistics stack (pandas, scipy) is imported by the first check, `interval_s` after the server is ready:
importing it holds the GIL for about a CPU-second, which would stall the server's first seconds of traffic.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from prometheus_client import Gauge

from modelyard.monitoring import DEFAULT_WINDOW

log = logging.getLogger(__name__)
LOOKBACK_S = 7 * 86400  # traffic older than a week does not count towards the gauges


class DriftGauges:
    """The `modelyard_drift_*`, `modelyard_feedback_*` and `modelyard_live_accuracy` series."""

    def __init__(self, registry: Any) -> None:
        self.detected = Gauge(
            "modelyard_drift_detected",
            "1 when any drift test fires on the recent window, 0 when none does, NaN when none could run",
            registry=registry,
        )
        self.statistic = Gauge(
            "modelyard_drift_statistic",
            "drift statistic per test (PSI, or MMD^2)",
            ["test"],
            registry=registry,
        )
        self.threshold = Gauge(
            "modelyard_drift_threshold",
            "threshold per test (for MMD: on the p-value)",
            ["test"],
            registry=registry,
        )
        self.p_value = Gauge(
            "modelyard_drift_p_value",
            "permutation p-value (kernel two-sample test)",
            ["test"],
            registry=registry,
        )
        self.window = Gauge("modelyard_drift_window", "predictions in the window judged", registry=registry)
        self.feedback = Gauge("modelyard_feedback_count", "predictions with a feedback label", registry=registry)
        self.accuracy = Gauge("modelyard_live_accuracy", "accuracy on feedback-labelled predictions", registry=registry)
        self.updated = Gauge(
            "modelyard_drift_updated_timestamp_seconds",
            "when the gauges were last computed",
            registry=registry,
        )

    def set(self, report: dict[str, Any]) -> None:
        drift = report["drift"]
        verdict = drift.get("detected")
        self.detected.set(float("nan") if verdict is None else float(verdict))  # not judged is not "no drift"
        for name, test in drift.items():
            if isinstance(test, dict) and "statistic" in test:
                self.statistic.labels(name).set(test["statistic"])
                self.threshold.labels(name).set(test["threshold"])
                if "p_value" in test:
                    self.p_value.labels(name).set(test["p_value"])
        self.window.set(report["window"]["predictions"])
        self.feedback.set(report["feedback"]["count"])
        if report["feedback"]["accuracy"] is not None:
            self.accuracy.set(report["feedback"]["accuracy"])
        self.updated.set(time.time())


class DriftWatch:
    """Every `interval_s`: read the served model's recent log and update the gauges."""

    def __init__(self, service: Any, interval_s: float, window: int = DEFAULT_WINDOW) -> None:
        self.service = service
        self.interval_s = interval_s
        self.window = window
        self.gauges = DriftGauges(service.metrics.registry)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelyard-drift-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:
                log.exception("drift check failed; the gauges keep their last values")

    def check(self) -> dict[str, Any]:
        from modelyard import model_thread
        from modelyard.drift import reference as reference_profile
        from modelyard.monitoring.monitor import summarize
        from modelyard.monitoring.prediction_log import read_predictions

        model = self.service.model
        directory = self.service.log.directory if self.service.log is not None else None
        rows = read_predictions(since=time.time() - LOOKBACK_S, model=self.service.name, directory=directory)
        reference = reference_profile.read(model.path)
        report = model_thread.call(summarize, rows, reference, model.learner, self.window, self.service.version)
        self.gauges.set(report)
        return report
