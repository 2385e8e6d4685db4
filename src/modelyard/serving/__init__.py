"""The REST server: `create_app(model_ref, settings)` and the settings it takes."""

from modelyard.serving.app import create_app
from modelyard.serving.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
