"""modelyard: from raw data to a trained, evaluated, compressed, served and monitored model, offline, on a CPU."""

from modelyard.api import Model, load, train, validate
from modelyard.errors import UserError

__version__ = "0.1.0"
__all__ = ["Model", "UserError", "__version__", "load", "train", "validate"]
