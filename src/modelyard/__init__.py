"""modelyard: from raw data to a trained, evaluated, compressed, served and monitored model, offline, on a CPU.

The public API is `train`, `load`, `validate`, `serve`, `Model` and `UserError`; they are imported on first use so that
`modelyard --help` and light commands start quickly.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["Model", "UserError", "__version__", "load", "serve", "train", "validate"]

if TYPE_CHECKING:
    from modelyard.api import Model, load, serve, train, validate
    from modelyard.errors import UserError


def __getattr__(name: str):
    if name == "UserError":
        from modelyard.errors import UserError

        return UserError
    if name in ("Model", "load", "serve", "train", "validate"):
        from modelyard import api

        return getattr(api, name)
    raise AttributeError(f"module 'modelyard' has no attribute {name!r}")
