"""Text generation for every causal LM: sampling options, KV-cache decoding, request batching."""

from modelyard.generation.engine import Event, Request, stream_batch
from modelyard.generation.options import GenerationOptions

__all__ = ["Event", "GenerationOptions", "Request", "stream_batch"]
