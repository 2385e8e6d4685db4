"""Server settings: one pydantic-settings model read from MODELYARD_* variables, injectable in tests."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelyard.config import refuse_unknown_keys


class ServeSettings(BaseSettings):
    """Everything `modelyard serve` can be told; CLI options override the MODELYARD_* environment."""

    model_config = SettingsConfigDict(env_prefix="MODELYARD_", extra="ignore", protected_namespaces=())

    host: str = Field("127.0.0.1", description="bind address; loopback unless told otherwise")
    port: int = Field(8000, ge=0, le=65535)
    max_batch_size: int = Field(32, ge=1, description="inputs per forward pass; 1 turns batching off")
    max_wait_ms: float = Field(5.0, ge=0, description="how long a batch waits for more inputs once one arrived")
    max_queue: int = Field(1024, ge=1, description="inputs waiting beyond this answer 503 with Retry-After")
    max_inputs: int = Field(64, ge=1, description="inputs per request")
    max_text_chars: int = Field(10_000, ge=1, description="characters per text input")
    max_top_k: int = Field(100, ge=1)
    max_audio_seconds: float = Field(
        1800.0, gt=0, description="seconds of audio per request, all inputs together, counted from the file headers"
    )
    max_messages: int = Field(256, ge=1, description="messages per chat request")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1, description="request body limit (413 beyond)")
    timeout_s: float = Field(30.0, gt=0, description="a prediction waiting longer answers 504")
    api_key: str | None = Field(
        None, description="when set, every route but /healthz, /readyz, /, /docs and /openapi.json needs it"
    )
    cors_origins: list[str] = Field(default_factory=list, description="CORS stays off while empty")
    log_inputs: bool = Field(True, description="store inputs in the prediction log (else their sha256 only)")
    log_predictions: bool = Field(True, description="append every prediction to MODELYARD_HOME/predictions.db")
    workers: int = Field(1, ge=1, description="server processes (each loads its own copy of the model)")
    threads: int | None = Field(
        None, ge=1, description="torch threads per process; default: the available cores shared among workers"
    )
    rollout: Literal["off", "shadow", "canary", "bandit"] = Field(
        "off", description="challenger rollout: silent shadow, a canary share, or a Thompson-sampling bandit"
    )
    challenger: str | None = Field(
        None, description="the challenger (bundle or models:/ URI); default models:/NAME@challenger"
    )
    canary_percent: float = Field(10.0, ge=0, le=100, description="share of inputs the canary answers")
    alias_poll_s: float = Field(30.0, ge=0, description="seconds between registry alias checks; 0 = never")
    drift_interval_s: float = Field(300.0, ge=0, description="seconds between drift gauge updates; 0 = never")

    @model_validator(mode="before")
    @classmethod
    def _known_settings_only(cls, values: Any) -> Any:
        """A misspelt setting (`modelyard.serve(path, prot=...)`) is refused with the closest name, never ignored;
        the environment gives only MODELYARD_* variables that name a setting, so it never trips this."""
        return refuse_unknown_keys(values, set(cls.model_fields), "setting")

    @field_validator("api_key")
    @classmethod
    def _no_empty_key(cls, value: str | None) -> str | None:
        """An empty key would turn authentication off without a word: a typo in a deployment must not do that."""
        if value is not None and not value.strip():
            raise ValueError(
                "MODELYARD_API_KEY is set but empty: set it to a secret key, or unset it to serve without one"
            )
        return value

    @model_validator(mode="after")
    def _one_request_fits_the_queue(self) -> ServeSettings:
        """A request of `max_inputs` inputs must fit the queue: else it is refused as busy on an idle server, and
        a client that retries on 503 retries forever."""
        if self.max_queue < self.max_inputs:
            raise ValueError(
                f"max_queue ({self.max_queue}) is below max_inputs ({self.max_inputs}): a full request could never "
                "be queued; raise --max-queue (MODELYARD_MAX_QUEUE) or lower --max-inputs (MODELYARD_MAX_INPUTS)"
            )
        return self


# MODELYARD_* variables other parts of modelyard read (home.py, state.py, tracking, the server's worker processes)
READ_ELSEWHERE = {
    *("MODELYARD_HOME", "MODELYARD_CACHE", "MODELYARD_DEVICE", "MODELYARD_FEDERATION_TOKEN", "MODELYARD_RANK_ERRORS"),
    *("MODELYARD_TRACKING", "MODELYARD_TRACKING_URI", "MODELYARD_STATE_URI"),
    *("MODELYARD_SERVE_MODEL", "MODELYARD_SERVE_SETTINGS"),
}


def misnamed_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each MODELYARD_* variable that names no setting but nearly does (MODELYARD_TIMEOUT for
    MODELYARD_TIMEOUT_S): the environment is read by setting name, so such a variable is otherwise ignored."""
    environ = os.environ if environ is None else environ
    names = {f"MODELYARD_{field.upper()}" for field in ServeSettings.model_fields}
    said = []
    for variable in sorted(v for v in environ if v.startswith("MODELYARD_") and v not in names | READ_ELSEWHERE):
        close = difflib.get_close_matches(variable, names, n=1, cutoff=0.85)
        if close:
            said.append(f"{variable} is not a server setting and is ignored; did you mean {close[0]}?")
    return said
