"""What a learner offers to be exported: its graph for ONNX and the examples the parity check compares.

Learners opt in by duck typing (detected with hasattr), as for the trainer's optional capabilities:
- `onnx_graph() -> OnnxGraph`: the torch module to trace, example inputs, names and dynamic axes.
- `export_examples(split) -> (inputs, targets)`: raw inputs as `export_outputs` takes them, and their targets.
- `export_outputs(inputs) -> np.ndarray`: what the parity check compares; `export_kind` says what that is:
  "probabilities" (the default; (N, K) class probabilities, targets class indices), "forecasts" ((N, horizon)
  values in the data's units, targets the observed values) or "next_token" ((N, T, vocab) next-token
  probabilities of token windows, targets the next tokens). `export.parity` defines agreement for each.
- `calibration_feeds(split, n) -> list[dict[str, np.ndarray]]`: ONNX inputs to calibrate static int8 (CNNs).
The exported bundle keeps every file but `model.safetensors`, adds `model.onnx`, and says `runtime: onnxruntime`;
the task's `load` then returns a learner that runs `export.runtime.onnx_session` (OnnxTextClassifierLearner,
OnnxImageClassifierLearner, OnnxForecastLearner, OnnxGPTLearner). An int8 PyTorch bundle needs only that the
learner loads its weights with `export.torch_int8.load_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

ONNX_FILE = "model.onnx"


@dataclass
class OnnxGraph:
    """A module ready for `torch.onnx.export`; `quantization` says which int8 scheme suits it."""

    module: torch.nn.Module
    args: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    quantization: Literal["dynamic", "static"] = "dynamic"  # dynamic: Transformers, LSTMs; static: CNNs
    # ONNX node-name prefixes (torch module paths, e.g. "/heatmap/") that static int8 leaves in fp32
    fp32_nodes: tuple[str, ...] = ()
