"""The federation as separate processes: a server (FastAPI + uvicorn) holding the global model and the rounds,
and sites that join it over HTTP, each training on rows that never leave its machine.

Protocol (JSON unless noted; every site polls, so no site needs an open port):
  GET  /v1/federation            task, rounds, local epochs, secure aggregation, DP (client-level, and the
                                 sites' train.privacy), parameter count and names' hash
  POST /v1/federation/join       {"site", "public_key"} -> {"client_id"}; refused once N sites have joined
  GET  /v1/federation/package    tar.gz: the global model's architecture and preprocessing (`sites.package`)
  GET  /v1/federation/status     phase (joining | training | finishing | done | failed), round, attempt, this
                                 round's local settings, the public keys of the other sites asked this attempt
  GET  /v1/federation/weights    float32 bytes: the global trainable parameters (SCAFFOLD: then the server's
                                 control variate c, same length, in the same response)
  POST /v1/federation/update     bytes: the site's message (float32, or uint64 when masked; SCAFFOLD: twice
                                 the length, the control variate's change after the weights'); a late or stale
                                 update is answered {"accepted": false, "reason"} and the site goes on
  POST /v1/federation/leave      {"client_id", "reason"}: a site whose local training failed drops out
A round closes when every asked site has reported or left, or `federated.round_timeout_s` after it opened;
`Federation.close` then averages who reported, or refuses the attempt and the round runs again.
Requests carry `Authorization: Bearer TOKEN` when the server was given a token. Plain HTTP: put TLS in front
(a reverse proxy) between machines; the masks hide updates from the server, not from the network.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response

from modelyard.config import Config
from modelyard.errors import UserError
from modelyard.federated import aggregate, sites
from modelyard.federated.local import LocalSettings
from modelyard.federated.rounds import Federation, Message, Settings, check_site, site_message

PREFIX = "/v1/federation"


def names_hash(names: list[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


class Coordinator:
    """The server's side of the protocol, one lock around the federation's state."""

    def __init__(self, federation: Federation, output: Path, token: str | None, on_round=None) -> None:
        self.federation, self.output, self.token, self.on_round = federation, output, token, on_round
        self.package = sites.package(federation.learner, federation.config)
        self.lock = threading.Lock()
        self.sites: dict[int, dict[str, Any]] = {}
        self.pending: dict[int, Message] = {}
        self.asked: set[int] = set()  # the sites this attempt waits for
        self.left: dict[int, str] = {}  # sites that dropped out for good, and why
        self.deadline = math.inf
        self.phase, self.error, self.told_done = "joining", "", set()
        self.model = None  # the loaded bundle, once written
        self.reporters: set[int] = set()  # the sites in the last aggregated round: the server waits to tell them

    def info(self) -> dict[str, Any]:
        f, s = self.federation, self.federation.settings
        return {
            "task": f.config.task,
            "clients": s.clients,
            "rounds": s.rounds,
            "local_epochs": s.local_epochs,
            "local_steps": f.config.federated.local_steps,
            "strategy": s.strategy,
            "secure_aggregation": s.secure_aggregation,
            "dp_clip": s.dp_clip,
            "dp_noise": s.dp_noise,
            "privacy": f.config.train.privacy.model_dump() if f.config.train.privacy else None,
            "batch_size": f.config.train.batch_size,
            "parameters": len(f.weights),
            "names_hash": names_hash(f.names),
        }

    def join(self, site: str, public_key: str | None) -> int:
        with self.lock:
            if self.phase != "joining":
                raise UserError(f"the federation already has its {len(self.sites)} sites")
            if self.federation.settings.secure_aggregation and not public_key:
                raise UserError("this federation uses secure aggregation: a site must send its public key")
            client_id = len(self.sites)
            name = site or f"site-{client_id}"
            if any(v["site"] == name for v in self.sites.values()):  # the history tells sites apart by name
                raise UserError(f"a site named {name!r} has already joined", "give each site its own --site name")
            self.sites[client_id] = {"site": name, "public_key": public_key}
            if len(self.sites) == self.federation.settings.clients:
                self.phase = "training"
                self._open()
            return client_id

    def _open(self) -> None:
        """Start an attempt at the current round: every site still in the federation, less those sitting it out."""
        self.pending = {}
        self.asked = {k for k, v in self.sites.items() if k not in self.left and self.federation.takes_part(v["site"])}
        self.deadline = time.monotonic() + self.federation.config.federated.round_timeout_s

    def status(self, client_id: int) -> dict[str, Any]:
        with self.lock:
            if client_id not in self.sites:
                raise UserError(f"unknown client id {client_id}: join first")
            f = self.federation
            out: dict[str, Any] = {"phase": self.phase, "round": f.round, "attempt": f.attempt, "error": self.error}
            if self.phase == "training":
                out["asked"] = client_id in self.asked
                out["local"] = asdict(f.local_settings(client_id))
                out["peers"] = {str(k): self.sites[k]["public_key"] for k in self.asked if k != client_id}
                out["submitted"] = client_id in self.pending
            if self.phase == "done":
                self.told_done.add(client_id)
                out["bundle"] = str(self.output)
                out["validation"] = self.federation.history[-1]["validation"] if self.federation.history else {}
            return out

    def weights(self) -> bytes:
        """The global weights, and under SCAFFOLD the server's control variate after them (one read, one round)."""
        with self.lock:
            f = self.federation
            parts = [f.weights] if f.control is None else [f.weights, f.control]
            return np.concatenate(parts).astype(np.float32).tobytes()

    def submit(
        self,
        client_id: int,
        round_: int,
        attempt: int,
        samples: int,
        loss: float,
        dtype: str,
        body: bytes,
        epsilon: float | None,
    ) -> dict[str, Any]:
        """Take one site's update; a late one (its round closed without it) is declined, not an error."""
        with self.lock:
            f = self.federation
            if client_id not in self.sites:
                raise UserError(f"unknown client id {client_id}: join first")
            # a refused attempt leaves the weights as they were, so without masks (which are per attempt) an
            # update trained for an earlier attempt at this round is as good as a new one
            same = attempt == f.attempt or not f.settings.secure_aggregation
            current = self.phase == "training" and round_ == f.round and same and client_id in self.asked
            if not current:
                why = f"round {round_ + 1} attempt {attempt + 1} is closed (the server is {self.phase}, round "
                return {"accepted": False, "reason": why + f"{f.round + 1} attempt {f.attempt + 1})"}
            if f.config.train.privacy is not None and epsilon is None:
                raise UserError(
                    "this federation trains with DP-SGD at every site (train.privacy); the update came without the "
                    "epsilon it spent",
                    "run the site with this modelyard version: it takes train.privacy from the server",
                )
            payload = np.frombuffer(body, dtype=np.uint64 if dtype == "uint64" else np.float32).copy()
            expected = len(f.weights) * (1 if f.control is None else 2)  # SCAFFOLD: weights' and c_i's change
            if len(payload) != expected:
                raise UserError(f"update has {len(payload)} values; this federation's updates have {expected}")
            site = self.sites[client_id]["site"]
            self.pending[client_id] = Message(site, samples, payload, loss, epsilon=epsilon)
            if self.asked <= set(self.pending) | set(self.left):
                self._close()
            return {"accepted": True}

    def leave(self, client_id: int, reason: str) -> None:
        """A site that cannot go on (its local training failed) leaves for good; the round does not wait for it."""
        with self.lock:
            if client_id not in self.sites:
                raise UserError(f"unknown client id {client_id}: join first")
            self.left[client_id] = f"left: {reason[:300]}"
            if self.phase == "training" and self.asked <= set(self.pending) | set(self.left):
                self._close()

    def tick(self) -> None:
        """Close the round when its time is up: the sites that have not reported count as dropped out."""
        with self.lock:
            if self.phase == "training" and time.monotonic() > self.deadline:
                self._close()

    def _close(self) -> None:
        """(Lock held.) Aggregate or refuse this attempt (`Federation.close`), then open the next one."""
        timeout = self.federation.config.federated.round_timeout_s
        missing = {
            self.sites[k]["site"]: self.left.get(k, f"no update within {timeout:g} s")
            for k in sorted(self.asked - set(self.pending))
        }
        messages = [self.pending[k] for k in sorted(self.pending)]
        try:
            entry = self.federation.close(messages, missing)
        except UserError as error:
            self.error, self.phase = str(error.message), "failed"
            return
        if entry is not None:
            self.reporters = set(self.pending)
            if self.on_round is not None:
                self.on_round(entry)
        if self.federation.done:
            self.phase = "finishing"
            threading.Thread(target=self._finish, daemon=True).start()
        else:
            self._open()

    def _finish(self) -> None:
        try:
            sites_ = [s["site"] for s in self.sites.values()]
            self.model = self.federation.finish(self.output, {"mode": "server", "sites": sites_})
            self.phase = "done"
        except Exception as error:  # reported to the sites and re-raised by `serve` after shutdown
            self.error, self.phase = str(getattr(error, "message", error)), "failed"


def make_app(coordinator: Coordinator):
    app = FastAPI(title="modelyard federation", docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if coordinator.token and request.headers.get("authorization") != f"Bearer {coordinator.token}":
            return JSONResponse({"error": {"type": "unauthorized", "message": "bad or missing token"}}, 401)
        return await call_next(request)

    @app.exception_handler(UserError)
    async def refused(request: Request, error: UserError) -> JSONResponse:
        return JSONResponse({"error": {"type": "federation", "message": error.message}}, 409)

    @app.get(PREFIX)
    def info() -> dict[str, Any]:
        return coordinator.info()

    @app.post(f"{PREFIX}/join")
    def join(body: dict[str, Any]) -> dict[str, Any]:
        return {"client_id": coordinator.join(str(body.get("site", "")), body.get("public_key"))}

    @app.get(f"{PREFIX}/package")
    def package() -> Response:
        return Response(coordinator.package, media_type="application/gzip")

    @app.get(f"{PREFIX}/status")
    def status(client_id: int) -> dict[str, Any]:
        return coordinator.status(client_id)

    @app.get(f"{PREFIX}/weights")
    def weights() -> Response:
        return Response(coordinator.weights(), media_type="application/octet-stream")

    @app.post(f"{PREFIX}/update")
    async def update(
        request: Request,
        client_id: int,
        round: int,
        samples: int,
        loss: float,
        attempt: int = 0,
        epsilon: float | None = None,
        dtype: str = Header("float32"),
    ) -> dict[str, Any]:
        body = await request.body()
        args = (client_id, round, attempt, samples, loss, dtype, body, epsilon)
        return await anyio.to_thread.run_sync(coordinator.submit, *args)

    @app.post(f"{PREFIX}/leave")
    def leave(body: dict[str, Any]) -> dict[str, Any]:
        coordinator.leave(int(body.get("client_id", -1)), str(body.get("reason", "no reason given")))
        return {"left": True}

    return app


def serve(
    config: Config,
    settings: Settings,
    output: str | Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    on_ready: Callable[[Federation], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
):
    """Run the server until every round is aggregated and the bundle written; returns the loaded bundle."""
    import uvicorn

    federation = Federation.start(config, settings, on_warning=on_warning)
    output = Path(output).resolve()
    coordinator = Coordinator(federation, output, token, on_round)
    server = uvicorn.Server(uvicorn.Config(make_app(coordinator), host=host, port=port, log_level="warning"))

    def stop_when_told() -> None:
        ended = None
        while not server.should_exit:
            time.sleep(0.2)
            coordinator.tick()
            if coordinator.phase in ("done", "failed"):
                ended = ended or time.monotonic()
                told = coordinator.reporters <= coordinator.told_done or coordinator.phase == "failed"
                if (told and time.monotonic() - ended > 1) or time.monotonic() - ended > 30:
                    server.should_exit = True

    threading.Thread(target=stop_when_told, daemon=True).start()
    if on_ready is not None:
        on_ready(federation)
    server.run()
    if coordinator.phase != "done":
        federation.fail()
        raise UserError(f"the federation did not finish: {coordinator.error or coordinator.phase}")
    return coordinator.model


def join(
    config: Config,
    url: str,
    site: str = "",
    token: str | None = None,
    poll_s: float = 0.5,
    wait_s: float = 3600.0,
    on_round: Callable[[int, Message], None] | None = None,
) -> dict[str, Any]:
    """Take part as one site: this machine's rows (every split of its config's data) train the server's model.
    Under SCAFFOLD the site's control variate c_i lives here from round to round; a new c_i is kept once the
    server has closed the round it was sent in (a refused attempt's is dropped, the retry starts from the old).
    Returns the server's final status (bundle path on the server, last validation metrics)."""
    import httpx
    import pandas as pd

    from modelyard.tasks import get_task

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = get_task(config.task).prepare(config)
    frame = pd.concat([data.splits[s] for s in ("train", "validation", "test") if s in data.splits])
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=600) as http:
        info = _call(http, "GET", PREFIX).json()
        # every check before joining: a site refused after /join would hold a place the federation then waits for
        with tempfile.TemporaryDirectory() as tmp:
            learner = sites.unpackage(_call(http, "GET", f"{PREFIX}/package").content, Path(tmp), config)
        names = aggregate.trainable_names(sites.local_learner(learner).module)
        if names_hash(names) != info["names_hash"]:
            raise UserError(
                "this site's copy of the model does not match the server's parameters",
                "run the same modelyard version on the server and every site",
            )
        config = _server_training(config, info)
        rows = sites.local_data(learner, frame)
        defaults = sites.local_learner(learner).train_defaults()
        work = (info["local_epochs"], info["local_steps"], info["rounds"])
        check_site(config, work, len(rows), site or "this site", defaults)
        private, public = aggregate.key_pair() if info["secure_aggregation"] else (None, None)
        client_id = _call(http, "POST", f"{PREFIX}/join", json={"site": site, "public_key": public and public.hex()})
        client_id = client_id.json()["client_id"]
        settings = Settings(
            info["clients"],
            secure_aggregation=info["secure_aggregation"],
            dp_clip=info["dp_clip"],
            dp_noise=info["dp_noise"],
            strategy=info["strategy"],
        )
        size = info["parameters"]
        control = np.zeros(size, dtype=np.float32) if settings.strategy == "scaffold" else None
        sent_control: tuple[int, np.ndarray] | None = None  # SCAFFOLD: (round, new c_i) of an accepted update
        done, deadline = (-1, -1), time.monotonic() + wait_s
        while time.monotonic() < deadline:
            status = _call(http, "GET", f"{PREFIX}/status", params={"client_id": client_id}).json()
            if sent_control is not None and (status["phase"] != "training" or status["round"] > sent_control[0]):
                control, sent_control = sent_control[1], None  # the round that counted it has closed
            if status["phase"] == "done":
                return status
            if status["phase"] == "failed":
                raise UserError(f"the federation server failed: {status['error']}")
            current = (status["round"], status.get("attempt", 0))
            if status["phase"] != "training" or not status["asked"] or current <= done or status["submitted"]:
                time.sleep(poll_s)
                continue
            round_, attempt = current
            weights = np.frombuffer(_call(http, "GET", f"{PREFIX}/weights").content, dtype=np.float32).copy()
            weights, server_control = weights[:size], weights[size:]
            masks = None
            if private is not None:
                peers = {int(k): bytes.fromhex(v) for k, v in status["peers"].items()}
                masks = (client_id, {k: aggregate.shared_seed(private, v, *current) for k, v in peers.items()})
            request = LocalSettings(**status["local"])
            try:
                pair = (server_control, control) if control is not None else None
                message = site_message(learner, names, weights, rows, config, request, settings, site, masks, pair)
            except Exception as error:  # tell the server, so the round goes on without this site at once
                reason = f"{type(error).__name__}: {getattr(error, 'message', error)}"
                _call(http, "POST", f"{PREFIX}/leave", json={"client_id": client_id, "reason": reason})
                raise
            params = {"client_id": client_id, "round": round_, "attempt": attempt}
            params |= {"samples": message.samples, "loss": message.train_loss}
            if message.epsilon is not None:
                params["epsilon"] = message.epsilon
            dtype = str(message.payload.dtype)
            reply = _call(
                http,
                "POST",
                f"{PREFIX}/update",
                params=params,
                content=message.payload.tobytes(),
                headers={**headers, "dtype": dtype},
            ).json()
            if reply.get("accepted") and message.control is not None:
                sent_control = (round_, message.control)
            done = current
            if on_round is not None:
                on_round(round_, message, reply)
    raise UserError(f"the federation at {url} did not finish within {wait_s:.0f} s")


def _server_training(config: Config, info: dict[str, Any]) -> Config:
    """The site's config with the federation's train.privacy (the server reports the budget, so it decides):
    taken when the site's config has none, refused when it names another; and the server's batch size where the
    site's config leaves it empty."""
    from modelyard.config import PrivacyConfig

    server = info.get("privacy")
    wanted = PrivacyConfig(**server) if server else None
    own = config.train.privacy
    if own is not None and own != wanted:
        raise UserError(
            f"this site's train.privacy ({own.model_dump()}) differs from the federation's ({server}): the server "
            "reports the sites' DP-SGD budget",
            "remove train.privacy from the site's config: it takes the server's",
        )
    batch_size = config.train.batch_size or info.get("batch_size")
    return config.model_copy(
        update={"train": config.train.model_copy(update={"privacy": wanted, "batch_size": batch_size})}
    )


def _call(http, method: str, path: str, **kwargs):
    """One request; connection problems and refusals become messages naming the server."""
    import httpx

    for attempt in range(60):  # the server may still be starting (a site is often launched first)
        try:
            response = http.request(method, path, **kwargs)
            break
        except httpx.ConnectError:
            if attempt == 59:
                raise UserError(f"cannot reach the federation server at {http.base_url}") from None
            time.sleep(1.0)
        except httpx.HTTPError as error:  # a timeout, a dropped connection, a URL httpx cannot use
            raise UserError(f"federation server {http.base_url}: {type(error).__name__}: {error}") from None
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise UserError(f"federation server {http.base_url}: {message}")
    return response
