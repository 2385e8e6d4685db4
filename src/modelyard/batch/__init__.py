"""Batch scoring of files of any size: one process, resumable (`stream`), or on a Ray cluster (`ray_engine`,
which imports Ray only when called)."""

from modelyard.batch.ray_engine import score_dataset, score_file_ray
from modelyard.batch.stream import score_file

__all__ = ["score_dataset", "score_file", "score_file_ray"]
