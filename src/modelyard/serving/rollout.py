"""Safe rollout: which model answers each input, and picking up registry alias moves without a restart.

Modes: `off` (the champion answers), `shadow` (the challenger also answers, silently, in its own thread; its
disagreements with the champion are logged), `canary` (a fixed share of inputs goes to the challenger) and
`bandit` (Thompson sampling: each input goes to the arm whose Beta(1 + right, 1 + wrong) draw from feedback
rewards is higher, so traffic shifts to the version that earns better feedback). The bandit's reward counts are
re-read from the prediction log as soon as /v1/feedback stores a label, and every REWARD_POLL_S for labels that
reach the log another way (other server processes, `modelyard feedback import`).

When the server runs `models:/NAME@ALIAS`, a watcher polls the alias every `alias_poll_s` seconds; a moved
alias is loaded and warmed up in the background, then swapped in with one assignment. Batches already running
finish on the model they started with, so no request is dropped.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from prometheus_client import Counter, Gauge

from modelyard import model_thread
from modelyard.errors import ConfigError, UserError
from modelyard.monitoring.prediction_log import PredictionRecord, answered_right, open_log, redacted_rows
from modelyard.monitoring.shadow import SHADOW_SCHEMA
from modelyard.privacy import Redactor, redactor_for
from modelyard.protocols import LogsOutputs

log = logging.getLogger(__name__)

Mode = Literal["off", "shadow", "canary", "bandit"]
SHADOW_QUEUE = 64  # shadow batches waiting beyond this are skipped: shadowing never falls behind without limit
REWARD_POLL_S = 30.0  # the bandit re-reads rewards this often even without local feedback


@dataclass(frozen=True)
class Arm:
    """One servable version."""

    model: Any
    version: str


class RolloutMetrics:
    """Rollout series, registered on the server's own Prometheus registry."""

    def __init__(self, registry: Any) -> None:
        self.routed = Counter(
            "modelyard_rollout_predictions", "inputs answered, by version", ["version"], registry=registry
        )
        self.shadow = Counter(
            "modelyard_shadow_comparisons",
            "champion vs silent challenger answers",
            ["agree"],
            registry=registry,
        )
        self.swaps = Counter(
            "modelyard_model_swaps", "alias moves picked up without a restart", ["role"], registry=registry
        )
        self.share = Gauge(
            "modelyard_bandit_expected_reward",
            "posterior mean of feedback reward",
            ["version"],
            registry=registry,
        )


def _label(answer: Any) -> Any:
    return answer.get("label") if isinstance(answer, dict) else answer


class Rollout:
    """Routes each input to the champion or the challenger; `predict` runs in the batcher's predict thread."""

    def __init__(
        self,
        name: str,
        champion: Arm,
        challenger: Arm | None,
        mode: Mode,
        canary_percent: float,
        metrics: RolloutMetrics,
        log_dir: Path | None = None,
        seed: int | None = None,
        redactors: tuple[Redactor | None, Redactor | None] = (None, None),
    ) -> None:
        self.name = name
        self.mode = mode
        self.canary_percent = canary_percent
        self.metrics = metrics
        self.log_dir = log_dir
        self.redactors = redactors  # (inputs, outputs): the shadow log hides what the prediction log hides
        self.rewards: dict[str, tuple[int, int]] = {}  # version -> (right, wrong) from feedback
        self._arms = (champion, challenger)  # replaced as one tuple: readers never see half a swap
        self._rng = np.random.default_rng(seed)
        self._shadow = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelyard-shadow")
        self._shadow_waiting = 0
        self._feedback = threading.Event()
        self._stopping = threading.Event()
        self._interval_s = REWARD_POLL_S
        self._learner = threading.Thread(target=self._learn, name="modelyard-bandit", daemon=True)

    @property
    def champion(self) -> Arm:
        return self._arms[0]

    @property
    def challenger(self) -> Arm | None:
        return self._arms[1]

    def swap(self, role: Literal["champion", "challenger"], arm: Arm) -> None:
        champion, challenger = self._arms
        self._arms = (arm, challenger) if role == "champion" else (champion, arm)
        self.metrics.swaps.labels(role).inc()

    def route(self, n: int, arms: tuple[Arm, Arm | None]) -> np.ndarray:
        """True where the input goes to the challenger."""
        champion, challenger = arms
        if challenger is None or self.mode in ("off", "shadow"):
            return np.zeros(n, dtype=bool)
        if self.mode == "canary":
            return self._rng.random(n) < self.canary_percent / 100
        (cr, cw), (hr, hw) = (
            self.rewards.get(challenger.version, (0, 0)),
            self.rewards.get(champion.version, (0, 0)),
        )
        return self._rng.beta(1 + cr, 1 + cw, n) > self._rng.beta(1 + hr, 1 + hw, n)

    def predict(self, inputs: list[Any], top_k: int) -> list[dict[str, Any]]:
        arms = self._arms
        to_challenger = self.route(len(inputs), arms)
        answers: list[Any] = [None] * len(inputs)
        for arm, chosen in ((arms[0], ~to_challenger), (arms[1], to_challenger)):
            index = np.flatnonzero(chosen)
            if arm is None or not len(index):
                continue
            for i, answer in zip(index, arm.model.predict([inputs[i] for i in index], top_k), strict=True):
                answers[i] = {**answer, "version": arm.version} if isinstance(answer, dict) else answer
            self.metrics.routed.labels(arm.version).inc(len(index))
        return answers

    def shadow(self, inputs: list[Any], answers: list[Any], records: list[PredictionRecord]) -> None:
        """Shadow mode, once a request is answered: queue the challenger's silent answers to `inputs`. `records`
        are the request's prediction-log records (the input as logged, and whether the client let it be stored)."""
        arms = self._arms
        if self.mode == "shadow" and arms[1] is not None and self._shadow_waiting < SHADOW_QUEUE:
            self._shadow_waiting += 1
            self._shadow.submit(self._compare, arms, list(inputs), answers, records)

    def _compare(
        self, arms: tuple[Arm, Arm | None], inputs: list[Any], answers: list[Any], records: list[PredictionRecord]
    ) -> None:
        """In the shadow thread: the challenger's silent answers, compared with the champion's and logged through
        the prediction log's own rows (redacted as it redacts; the input's hash only when it may be stored). The
        prediction itself waits its turn on the model thread: one shadow batch at most between champion batches."""
        champion, challenger = arms
        try:
            silent = model_thread.call(challenger.model.predict, inputs, 1)
            learner = getattr(challenger.model, "learner", None)
            logged = [learner.logged_output(q) for q in silent] if isinstance(learner, LogsOutputs) else silent
            quiet = [replace(r, output=q) for r, q in zip(records, logged, strict=True)]
            logged_rows = redacted_rows(records + quiet, False, *self.redactors)  # one detector pass
            now, rows = time.time(), []
            for said, answer, told, heard in zip(
                answers, silent, logged_rows[: len(records)], logged_rows[len(records) :], strict=True
            ):
                agree = _label(said) == _label(answer)
                self.metrics.shadow.labels(str(agree).lower()).inc()
                # from a prediction-log row (id, ts, model, version, input, input_sha256, output, latency_ms)
                digest, told_json, heard_json = told[5], told[6], heard[6]
                rows.append(
                    (now, self.name, champion.version, challenger.version, digest, told_json, heard_json, int(agree))
                )
            conn = open_log(self.log_dir)
            try:
                conn.ensure(SHADOW_SCHEMA)
                with conn:
                    conn.executemany("INSERT INTO shadow_predictions VALUES (?,?,?,?,?,?,?,?)", rows)
            finally:
                conn.close()
        except Exception:
            log.exception("shadow prediction failed")
        finally:
            self._shadow_waiting -= 1

    def refresh_rewards(self) -> None:
        """Right/wrong feedback counts per version of this model, from the prediction log."""
        conn = open_log(self.log_dir)
        try:
            rows = conn.execute(
                "SELECT version, output, label FROM predictions WHERE model = ? AND label IS NOT NULL",
                (self.name,),
            ).fetchall()
        finally:
            conn.close()
        rewards: dict[str, list[int]] = {}
        for version, output, label in rows:
            right = answered_right(json.loads(output), json.loads(label))
            if right is not None:  # feedback on an answer that is no label is neither a reward nor a loss
                rewards.setdefault(version, [0, 0])[0 if right else 1] += 1
        self.rewards = {v: (r, w) for v, (r, w) in rewards.items()}
        for version, (right, wrong) in self.rewards.items():
            self.metrics.share.labels(version).set((1 + right) / (2 + right + wrong))

    def start_learning(self, interval_s: float = REWARD_POLL_S) -> None:
        """Bandit mode: keep the reward counts current in a background thread, off the request path."""
        self._interval_s = interval_s
        self._learner.start()

    def feedback_arrived(self) -> None:
        """A label was just stored: the learning thread re-reads the rewards now instead of at its next poll."""
        self._feedback.set()

    def _learn(self) -> None:
        while not self._stopping.is_set():
            try:
                self.refresh_rewards()
            except Exception:  # the bandit routes on its last counts meanwhile
                log.exception("could not read the bandit's feedback rewards")
            self._feedback.wait(self._interval_s)
            self._feedback.clear()

    def stop(self) -> None:
        self._stopping.set()
        self._feedback.set()
        if self._learner.is_alive():
            self._learner.join(timeout=30)
        self._shadow.shutdown(wait=True)


class AliasWatcher:
    """Polls `models:/NAME@ALIAS` (and the challenger's alias) and swaps in whatever version they point at."""

    def __init__(
        self,
        rollout: Rollout,
        champion_alias: str,
        challenger_alias: str | None,
        interval_s: float,
        warm_up: Any = None,
        on_champion: Any = None,
    ) -> None:
        self.rollout = rollout
        self.aliases = {"champion": champion_alias, "challenger": challenger_alias}
        self.interval_s = interval_s
        self.warm_up = warm_up
        self.on_champion = on_champion
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelyard-alias-watch", daemon=True)
        self._last_problem: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
                self._last_problem = None
            except Exception as err:  # the server keeps answering with what it has
                if str(err) != self._last_problem:  # said once, not every poll, until something changes
                    log.warning("alias check failed (%s); still serving the current versions", err)
                self._last_problem = str(err)

    def check(self) -> None:
        """One poll: load and swap in any role whose alias moved."""
        from modelyard.loader import load
        from modelyard.tracking.registry import get_version, version_task

        served = getattr(self.rollout.champion.model, "manifest", {}).get("task")
        for role, alias in self.aliases.items():
            if alias is None:
                continue
            found = get_version(self.rollout.name, alias=alias)
            version, task = str(found.version), version_task(found)
            current = self.rollout.champion if role == "champion" else self.rollout.challenger
            if current is not None and current.version == version:
                continue
            if served and task and task != served:
                raise UserError(
                    f"alias {alias} of {self.rollout.name} moved to version {version}, a {task} model; "
                    f"this server serves {served}, so it keeps version {self.rollout.champion.version}",
                    f"move the alias back (`modelyard models rollback {self.rollout.name} --alias {alias}`)",
                )
            model = model_thread.call(load, f"models:/{self.rollout.name}/{version}")
            if self.warm_up is not None:
                model_thread.call(self.warm_up, model)
            log.info("alias %s of %s moved to version %s; swapping it in", alias, self.rollout.name, version)
            self.rollout.swap(role, Arm(model, version))  # type: ignore[arg-type]
            if role == "champion" and self.on_champion is not None:
                self.on_champion(model, version)


def start(service: Any, model_ref: str, settings: Any, warm_up: Any = None) -> tuple[Rollout, AliasWatcher | None]:
    """Put a Rollout in front of the service's batcher; watch the registry aliases when serving `models:/`."""
    from modelyard.loader import load
    from modelyard.tracking.registry import is_model_uri, parse_model_uri

    name, alias = service.name, None
    if is_model_uri(model_ref):
        name, alias, _ = parse_model_uri(model_ref)
    challenger_ref = settings.challenger or (f"models:/{name}@challenger" if alias else None)
    challenger = None
    if settings.rollout != "off":
        if challenger_ref is None:
            raise ConfigError(
                f"--rollout {settings.rollout} needs a challenger",
                "pass --challenger BUNDLE_OR_URI, or serve models:/NAME@ALIAS so models:/NAME@challenger is used",
            )
        model = load(challenger_ref)
        challenger = Arm(model, getattr(model, "version", None) or challenger_ref)
    metrics = RolloutMetrics(service.metrics.registry)
    log_dir = service.log.directory if service.log is not None else None
    privacy = getattr(getattr(service.model, "config", None), "privacy", None)
    rollout = Rollout(
        name,
        Arm(service.model, service.version),
        challenger,
        settings.rollout,
        settings.canary_percent,
        metrics,
        log_dir,
        redactors=(redactor_for(privacy, "log"), redactor_for(privacy, "monitoring")),
    )
    service.batcher.predict = rollout.predict
    if settings.rollout == "shadow":
        service.on_answered = rollout.shadow
    if settings.rollout == "bandit":
        rollout.start_learning()
        service.on_feedback = rollout.feedback_arrived
    watcher = None
    if alias and settings.alias_poll_s > 0:

        def on_champion(model: Any, version: str) -> None:
            service.model, service.version = model, version

        watched = parse_model_uri(challenger_ref)[1] if challenger and is_model_uri(challenger_ref) else None
        watcher = AliasWatcher(rollout, alias, watched, settings.alias_poll_s, warm_up, on_champion)
        watcher.start()
    return rollout, watcher


def attach(service: Any, model_ref: str, settings: Any, example: Any = None) -> list[Any]:
    """Start what must run beside the batcher before the first request: the rollout and the alias watcher;
    returns the handles `detach` stops. A plain bundle with rollout off keeps the batcher calling the model."""
    from modelyard.tracking.registry import is_model_uri

    handles: list[Any] = []
    if settings.rollout != "off" or (is_model_uri(model_ref) and settings.alias_poll_s > 0):

        def warm_up(model: Any) -> None:
            if example is not None:
                model.predict([example], 1)

        rollout, watcher = start(service, model_ref, settings, warm_up)
        handles += [h for h in (watcher, rollout) if h is not None]
    return handles


def watch_drift(service: Any, settings: Any) -> list[Any]:
    """Start the drift gauges' background thread (handles for `detach`); its first check, `drift_interval_s`
    after the server is ready, imports the statistics libraries."""
    if settings.drift_interval_s <= 0 or service.log is None:
        return []
    from modelyard.monitoring.watch import DriftWatch

    drift = DriftWatch(service, settings.drift_interval_s)
    drift.start()
    return [drift]


def detach(handles: list[Any]) -> None:
    for handle in handles:
        handle.stop()
