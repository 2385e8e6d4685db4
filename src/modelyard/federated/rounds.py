"""The federation's rounds, shared by the simulation and the HTTP server: what each round asks of the sites,
how their messages become the next global model, the history, and the final bundle.

A site's message is `n_k * delta_k` (its sample count times its update, after optional clipping and noise),
masked when secure aggregation is on; the server only ever needs the sum of the messages and of the counts.
Under SCAFFOLD the message is `n_k * [delta_k, delta c_k]` (the weights' and the control variate's change, one
vector, masked together), so secure aggregation hides both.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from modelyard.config import Config, FederatedConfig
from modelyard.errors import ConfigError, UserError
from modelyard.federated import aggregate, sites
from modelyard.federated.local import LocalResult, LocalSettings, train_locally
from modelyard.protocols import Learner, PreparedData
from modelyard.tasks import get_task
from modelyard.training import privacy
from modelyard.training.callbacks import TrainerControl, TrainerState

MIN_LR_SHARE = 0.1  # the round learning rate decays (cosine) to this share of the first round's


@dataclass
class Settings:
    """How the federation trains; saved in the bundle's data report and metrics."""

    clients: int
    rounds: int | None = None  # None: the centralised budget (default_rounds)
    local_epochs: int = 1
    strategy: Literal["fedavg", "fedprox", "scaffold"] = "fedavg"
    mu: float = 0.1  # FedProx: the best mean validation ROC-AUC of 0.001-1 (benchmarks/federated_scaffold_result.json)
    secure_aggregation: bool = False
    dp_clip: float | None = None
    dp_noise: float | None = None  # noise multiplier: std = dp_noise * dp_clip
    dp_delta: float = 1e-5

    def check(self) -> None:
        if self.clients < 1:
            raise ConfigError("--clients must be at least 1")
        if (self.dp_clip is None) != (self.dp_noise is None):
            raise ConfigError("client DP needs both --dp-clip and --dp-noise", "e.g. --dp-clip 1.0 --dp-noise 1.0")
        if self.dp_clip is not None and not (self.dp_clip > 0 and self.dp_noise > 0):
            raise ConfigError(
                f"client DP needs --dp-clip and --dp-noise above 0 (got {self.dp_clip:g} and {self.dp_noise:g}): "
                "a zero clip sends no update, and without noise nothing is private",
                "e.g. --dp-clip 1.0 --dp-noise 1.0",
            )
        if self.secure_aggregation and self.clients < 2:
            raise ConfigError("secure aggregation needs at least 2 clients: one client's sum is its own update")


@dataclass
class Message:
    site: str
    samples: int
    payload: np.ndarray  # float32 n*delta, or uint64 masked fixed point under secure aggregation
    train_loss: float
    seconds: float = 0.0
    epsilon: float | None = None  # DP-SGD at the site: this round's spent epsilon
    control: np.ndarray | None = None  # SCAFFOLD: the site's new control variate, kept by the site, never sent


@dataclass
class Federation:
    """The server's state: global model, weights, round and history."""

    config: Config
    data: PreparedData
    settings: Settings
    learner: Learner
    names: list[str]
    weights: np.ndarray
    base_lr: float
    history: list[dict[str, Any]] = field(default_factory=list)
    round: int = 0
    started: float = field(default_factory=time.perf_counter)
    samples_seen: int = 0
    best: tuple[float, int, np.ndarray] | None = None  # (signed main metric, round, weights): restored at the end
    attempt: int = 0  # this round's attempt: a round short of sites is run again (fresh masks)
    failed_attempts: list[dict[str, Any]] = field(default_factory=list)
    sitting_out: set[str] = field(default_factory=set)  # secure aggregation: sites left out of this round's retry
    tracker: Any = None  # tracking.callback.TrackingCallback, or None when tracking is off
    server: aggregate.ServerOptimizer | None = None  # FedAvg, FedAvgM or FedAdam: built by `start`
    sent: dict[str, list[float]] = field(default_factory=dict)  # per site: each update's DP-SGD epsilon (or 0)
    control: np.ndarray | None = None  # SCAFFOLD: the server's control variate c, flat like `weights`

    @classmethod
    def start(
        cls,
        config: Config,
        settings: Settings,
        data: PreparedData | None = None,
        track: bool = True,
        on_warning: Any = None,
    ) -> Federation:
        """Prepare the server's data (validation, test, and the rows that fix labels and preprocessing), build
        the global model from it and open the tracking run (as `train` does, unless MODELYARD_TRACKING is off)."""
        from accelerate.utils import set_seed

        settings.check()
        sites.check_task(config)
        options = config.federated or FederatedConfig()
        floor = 2 if settings.secure_aggregation else 1
        if options.min_sites is not None and not floor <= options.min_sites <= settings.clients:
            raise ConfigError(
                f"federated.min_sites {options.min_sites} must lie between {floor} and the {settings.clients} sites",
                "secure aggregation needs 2: one site's sum is its own update" if floor == 2 else None,
            )
        if options.local_loss == "balanced" and config.task != "tabular_classification":
            raise ConfigError(
                f"federated.local_loss balanced needs class logits of the tabular MLP; this config's task is "
                f"{config.task}",
                "use federated.local_loss: plain",
            )
        config = config.model_copy(update={"federated": options})  # the bundle's config.yaml records it
        if config.train.privacy is not None and (settings.strategy == "fedprox" or settings.dp_noise is not None):
            raise ConfigError(
                "train.privacy (DP-SGD at each site) cannot be combined with FedProx or --dp-noise",
                "use FedAvg with train.privacy, or --dp-clip/--dp-noise without it",
            )
        if settings.strategy == "scaffold" and (config.train.privacy is not None or settings.dp_noise is not None):
            raise ConfigError(
                "--strategy scaffold cannot be combined with train.privacy or --dp-clip/--dp-noise: a site's "
                "control-variate change is computed from its rows and is neither clipped nor noised, so the "
                "privacy accounting would not cover it",
                "use --strategy fedavg with train.privacy or --dp-clip/--dp-noise",
            )
        config, why = sites.resolve_backbone(config)
        privacy.check(config, get_task(config.task), 0)  # each site's rows are checked as it starts (check_site)
        data = data if data is not None else get_task(config.task).prepare(config)
        data.report["backbone_choice"] = [{"backbone": config.model.backbone, "reason": why}]
        set_seed(config.train.seed)
        learner = sites.build_global(config, data)
        local = sites.local_learner(learner)
        defaults = local.train_defaults()
        epochs = config.train.epochs or defaults.get("epochs", 3)
        train = config.train.model_copy(update={"batch_size": config.train.batch_size or defaults.get("batch_size")})
        if settings.rounds is None:
            rows = len(data.splits["train"])
            settings.rounds = default_rounds(epochs, settings, options.local_steps, train.batch_size, rows)
        config = config.model_copy(update={"train": train})
        if settings.dp_noise is not None and any(
            isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in local.module.modules()
        ):
            raise ConfigError(
                "client DP (--dp-noise) would add noise to batch norm's running statistics",
                "set model.norm: layer (tabular MLP)",
            )
        names = aggregate.trainable_names(local.module)
        lr = config.train.learning_rate or defaults.get("learning_rate", 1e-3)
        federation = cls(config, data, settings, learner, names, aggregate.flatten(local.module, names), lr)
        if settings.strategy == "scaffold":
            federation.control = np.zeros_like(federation.weights)
        kind = options.server_optimizer
        default_lr = {"sgd": 1.0, "momentum": 1 - options.server_momentum, "adam": 0.01}[kind]
        server_lr = options.server_lr or default_lr
        mask = aggregate.parameter_mask(local.module, names)
        federation.server = aggregate.ServerOptimizer(kind, server_lr, options.server_momentum, mask)
        federation.tracker = _tracker(track, on_warning)
        if federation.tracker is not None:
            federation.tracker.on_train_begin(TrainerState(), TrainerControl(), config)
        return federation

    @property
    def done(self) -> bool:
        return self.round >= self.settings.rounds

    @property
    def min_sites(self) -> int:
        """Updates a round needs: `federated.min_sites`, else half the sites (2 under secure aggregation)."""
        floor = 2 if self.settings.secure_aggregation else 1
        return self.config.federated.min_sites or max(floor, math.ceil(self.settings.clients / 2))

    def takes_part(self, site: str) -> bool:
        """Whether `site` is asked for this attempt (a secure-aggregation retry leaves out who went missing)."""
        return site not in self.sitting_out

    def close(self, messages: list[Message], missing: dict[str, str]) -> dict[str, Any] | None:
        """End this round's attempt. The sites that reported are averaged (weights renormalised over their
        samples) unless fewer than `min_sites` reported or, under secure aggregation, any site is missing: the
        pairwise masks it shared with the others then do not cancel, so the attempt is refused and None returned
        for the caller to run the round again (the missing sites sitting it out). Raises once the retries are
        spent. `missing` maps each site that did not report to why."""
        for m in messages:  # every update a site sent counts for its privacy budget, a refused attempt's too
            self.sent.setdefault(m.site, []).append(m.epsilon)
        reported = len(messages)
        reason = ""
        if reported < self.min_sites:
            reason = f"{reported} of {reported + len(missing)} sites reported, fewer than min_sites {self.min_sites}"
        elif missing and self.settings.secure_aggregation:
            reason = "secure aggregation: the masks the missing sites shared with the others cannot be removed"
        if not reason:
            return self.aggregate(messages, missing)
        self.failed_attempts.append(
            {"attempt": self.attempt + 1, "reported": [m.site for m in messages], "missing": missing, "reason": reason}
        )
        self.attempt += 1
        if self.attempt > self.config.federated.round_retries:
            who = ", ".join(f"{site} ({why})" for site, why in missing.items()) or "none"
            raise UserError(
                f"round {self.round + 1} failed {self.attempt} times; last: {reason}; missing sites: {who}",
                "bring the sites back, or lower federated.min_sites / raise federated.round_retries",
            )
        enough = reported >= self.min_sites
        self.sitting_out = self.sitting_out | set(missing) if self.settings.secure_aggregation and enough else set()
        return None

    def local_settings(self, site: int) -> LocalSettings:
        """This round's request: local epochs, a learning rate decayed over rounds (cosine), FedProx's mu,
        SCAFFOLD's correction and the local optimiser."""
        progress = self.round / max(1, self.settings.rounds - 1)
        factor = MIN_LR_SHARE + (1 - MIN_LR_SHARE) * 0.5 * (1 + math.cos(math.pi * progress))
        mu = self.settings.mu if self.settings.strategy == "fedprox" else 0.0
        seed = self.config.train.seed + 1000 * (self.round + 1) + site
        balanced = self.config.federated.local_loss == "balanced"
        return LocalSettings(
            self.settings.local_epochs,
            self.base_lr * factor,
            mu,
            seed,
            self.settings.rounds,
            balanced,
            scaffold=self.settings.strategy == "scaffold",
            optimizer=self.config.federated.local_optimizer,
            steps=self.config.federated.local_steps,
        )

    def aggregate(self, messages: list[Message], missing: dict[str, str] | None = None) -> dict[str, Any]:
        """The next global model from the reporting sites' messages, validated on the server's validation split."""
        samples = sum(m.samples for m in messages)
        if self.settings.secure_aggregation:
            total = aggregate.unmask_sum([m.payload for m in messages])
        else:
            total = np.sum([m.payload.astype(np.float64) for m in messages], axis=0)
        if self.control is not None:  # SCAFFOLD: c += |S|/N * (sample-weighted mean of the sites' delta c)
            size = len(self.weights)
            total, controls = total[:size], total[size:]
            share = len(messages) / self.settings.clients
            self.control = (self.control + share * controls / max(1, samples)).astype(np.float32)
        self.weights = self.server.step(self.weights, total, samples)
        local = sites.local_learner(self.learner)
        aggregate.assign(local.module, self.names, self.weights)
        validation = self.data.splits["validation"]
        metrics = self.learner.evaluate(validation) if len(validation) else {}
        self.round += 1
        self.samples_seen += samples * self.settings.local_epochs
        loss = sum(m.train_loss * m.samples for m in messages) / max(1, samples)
        entry = {
            "epoch": self.round,
            "step": self.round,
            "round": self.round,
            "train_loss": round(loss, 5),
            "learning_rate": self.local_settings(0).learning_rate if not self.done else None,
            "seconds": round(time.perf_counter() - self.started, 2),
            "validation": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
            "clients": [
                {"site": m.site, "samples": m.samples, "train_loss": round(m.train_loss, 5)}
                | ({"epsilon": m.epsilon} if m.epsilon is not None else {})
                for m in messages
            ],
            "sites_reported": len(messages),
            "attempts": self.attempt + 1,
        }
        reported = {m.site for m in messages}
        absent = {site: why for failed in self.failed_attempts for site, why in failed["missing"].items()}
        absent = {site: why for site, why in {**absent, **(missing or {})}.items() if site not in reported}
        entry["sites_dropped"] = len(absent)
        if absent:  # who this round's model lacks: missing now, or sitting out since a refused attempt
            entry["dropped"] = [{"site": site, "reason": why} for site, why in absent.items()]
        if self.failed_attempts:
            entry["failed_attempts"] = self.failed_attempts
        self.attempt, self.failed_attempts, self.sitting_out = 0, [], set()
        self.history.append(entry)
        if self.tracker is not None:
            self.tracker.log_entry(entry)
        task = get_task(self.config.task)
        if task.main_metric in metrics:  # keep the best round on validation, as the training loop keeps its epoch
            signed = metrics[task.main_metric] * (1 if task.greater_is_better else -1)
            if self.best is None or signed > self.best[0]:
                self.best = (signed, self.round, self.weights.copy())
        return entry

    def finish(self, output: str | Path, extra_report: dict[str, Any] | None = None):
        """Fit what centralised training fits on validation, score on test, write an ordinary bundle."""
        from modelyard import bundle
        from modelyard.loader import load
        from modelyard.pipeline import write_results
        from modelyard.training.loop import TrainResult, resolve_train_config

        output = Path(output).resolve()
        bundle.refuse_foreign_output(output)
        task = get_task(self.config.task)
        local = sites.local_learner(self.learner)
        if self.best is not None:
            aggregate.assign(local.module, self.names, self.best[2])
        sites.finish(self.learner, self.data.splits["validation"], self.config)
        local.module.eval()
        train = resolve_train_config(self.config.train, local.train_defaults())
        validation = (
            self.learner.evaluate(self.data.splits["validation"]) if len(self.data.splits["validation"]) else {}
        )
        seconds = time.perf_counter() - self.started
        result = TrainResult(train, self.history, validation, seconds, self.samples_seen, self.round, "fp32", 1)
        s = self.settings
        summary = {**asdict(s), "clients_samples": [c["samples"] for c in self.history[-1]["clients"]]}
        summary["best_round"] = self.best[1] if self.best is not None else self.round
        summary["min_sites"] = self.min_sites
        summary["dropouts"] = sum(e["sites_dropped"] for e in self.history)
        summary.update({k: v for k, v in (extra_report or {}).items() if k in ("mode", "partition", "alpha")})
        if s.strategy != "fedprox":
            summary.pop("mu")
        spent = spent_privacy(self.config, s, self.sent)
        if spent:
            summary["dp_accounting"] = spent["federated"]["accounting"]
        budget = {k: spent[k] for k in ("epsilon", "delta") if k in spent}  # the report's federation section
        self.data.report["federation"] = {**summary, **(extra_report or {}), **budget}
        resolved = self.config.model_copy(update={"train": train})
        write_results(
            output,
            task,
            self.data,
            [(resolved, self.learner, result)],
            0.0,
            self.started,
            False,
            extra={"federation": summary, **({"privacy": spent} if spent else {})},
        )
        model = load(output)
        if self.tracker is not None:
            version = self.tracker.finish(output, {**self.data.report, "warnings": self.data.warnings})
            if version is not None:
                model.version = str(version.version)
        return model

    def fail(self) -> None:
        """Mark the tracking run failed (the federation raised or its server stopped early); never raises."""
        if self.tracker is not None:
            self.tracker.fail()


def spent_privacy(config: Config, s: Settings, sent: dict[str, list[float]]) -> dict[str, Any]:
    """metrics.json's `privacy` for a federation: the keys a private `train` run writes, plus `federated`, which
    says whose guarantee it is (each site's records under DP-SGD, each site's whole data under client DP)."""
    releases = max((len(v) for v in sent.values()), default=0)  # retried rounds release updates twice
    if s.dp_noise is not None:
        accounting = "client-level Gaussian mechanism, RDP over updates sent, no subsampling (local DP)"
        return {
            "epsilon": round(aggregate.dp_epsilon(s.dp_noise, releases, s.dp_delta), 4),
            "delta": s.dp_delta,
            "noise_multiplier": s.dp_noise,
            "accountant": privacy.ACCOUNTANT,
            "federated": {
                "mechanism": "client_dp",
                "max_update_norm": s.dp_clip,
                "updates": releases,
                "accounting": accounting,
            },
        }
    private = config.train.privacy
    if private is None or not sent:
        return {}
    accounting = "DP-SGD at each site (train.privacy), budget split over rounds, summed"
    return {
        "epsilon": round(max(sum(v) for v in sent.values()), 4),  # the site that spent most
        "delta": private.delta * releases / s.rounds,  # each update spent delta / rounds
        "target_epsilon": private.epsilon,
        "max_grad_norm": private.max_grad_norm,
        "sampling": "poisson",
        "accountant": privacy.ACCOUNTANT,
        "federated": {
            "mechanism": "dp_sgd_at_sites",
            "rounds": s.rounds,
            "updates": releases,
            "accounting": accounting,
        },
    }


def check_site(
    config: Config, work: tuple[int, int | None, int], rows: int, site: str, defaults: dict[str, Any]
) -> None:
    """Refuse, before any round, a site whose DP-SGD (train.privacy) could not be accounted for, as `train` would:
    delta not below 1 / its rows, or its share of the budget (epsilon and delta / rounds) out of reach over one
    round's local steps. `work` is the server's (local epochs, local steps, rounds); `defaults` are the local
    model's train defaults (batch size)."""
    private = config.train.privacy
    if private is None:
        return
    local_epochs, local_steps, rounds = work
    try:
        if private.delta >= 1 / max(1, rows):
            raise ConfigError(f"train.privacy.delta {private.delta:g} is not below 1 / {rows} rows")
        batch_size = config.train.batch_size or defaults["batch_size"]
        steps = local_steps or local_epochs * math.ceil(rows / batch_size)
        share = private.model_copy(update={"epsilon": private.epsilon / rounds, "delta": private.delta / rounds})
        privacy.PrivateTraining.plan(share, rows, batch_size, steps, 1)
    except ConfigError as error:
        raise ConfigError(
            f"{site}: {error.message} (each round spends 1/{rounds} of train.privacy)",
            "fewer --rounds or --clients, a smaller train.batch_size, or a larger train.privacy.epsilon",
        ) from None


def default_rounds(epochs: int, settings: Settings, local_steps: int | None, batch_size: int, rows: int) -> int:
    """The centralised budget: epochs / local_epochs rounds, or with federated.local_steps, as many local steps
    per site as `epochs` passes over the server's training rows (in a simulation, every site's) take in `train`
    (one SGD step per site per round is then one step of the global model per centralised step)."""
    if local_steps is None:
        return max(1, math.ceil(epochs / settings.local_epochs))
    return max(1, math.ceil(epochs * math.ceil(rows / batch_size) / local_steps))


def _tracker(track: bool, on_warning: Any):
    """The MLflow run `train` would log, unless MODELYARD_TRACKING is off; store problems only warn."""
    from modelyard.tracking.callback import TrackingCallback
    from modelyard.tracking.store import tracking_wanted

    return TrackingCallback(warn=on_warning) if track and tracking_wanted() else None


def site_message(
    learner: Learner,
    names: list[str],
    weights: np.ndarray,
    data: Any,
    config: Config,
    request: LocalSettings,
    settings: Settings,
    site: str,
    masks: tuple[int, dict[int, int]] | None = None,
    control: tuple[np.ndarray, np.ndarray] | None = None,
) -> Message:
    """What one site sends: train locally, clip and noise the update (client DP), weight it by the sample count,
    mask it (secure aggregation: `masks` is this site's id and the seeds it shares with each other site).
    `control` is SCAFFOLD's (server c, this site's c_i); the message then carries the change of c_i after the
    weights' change, and the site's new c_i in `Message.control` (for the site to keep)."""
    local = sites.local_learner(learner)
    result: LocalResult = train_locally(local, names, weights, data, sites.empty(data), config, request, control)
    delta = result.delta
    if settings.dp_noise is not None:
        rng = np.random.default_rng()  # OS entropy: the server knows the round's seed and must not know the noise
        delta = aggregate.clip_and_noise(delta, settings.dp_clip, settings.dp_noise, rng)
    new_control = None
    if result.control_delta is not None:
        own = control[1] if control is not None else np.zeros_like(weights)
        new_control = (own + result.control_delta).astype(np.float32)
        delta = np.concatenate([delta, result.control_delta])
    weighted = delta.astype(np.float64) * result.samples
    payload = aggregate.mask(weighted, *masks) if masks is not None else weighted.astype(np.float32)
    return Message(site, result.samples, payload, result.train_loss, result.seconds, result.epsilon, new_control)
