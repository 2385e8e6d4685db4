"""Errors users see: each says what went wrong, where, and what to do. The CLI prints them without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (config, data, model path): exit code 1, one clear message."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(UserError):
    """The config file or a --set override is invalid."""


class DataError(UserError):
    """A data file is missing, unreadable, or does not have what the task needs."""


class BundleError(UserError):
    """A path is not a valid bundle: missing files, checksum mismatch, or a path leaving the bundle."""


class ModelNotFoundError(UserError):
    """A bundled pretrained model is not installed, or a registry name/version/alias does not exist."""
