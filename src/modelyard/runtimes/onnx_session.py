"""ONNX Runtime sessions tuned for the CPU they run on."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from modelyard.cores import usable_cores


def onnx_session(path: Path, threads: int | None = None) -> ort.InferenceSession:
    """All graph optimisations (attention, GELU, layer-norm fusions), a thread per core, sequential nodes."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
