"""Experiment tracking and the model registry on MLflow (embedded SQLite, or a shared server).

Importing this package does not import MLflow; that happens on first use.
"""

from modelyard.tracking.registry import is_model_uri, resolve_model_uri

__all__ = ["is_model_uri", "resolve_model_uri"]
