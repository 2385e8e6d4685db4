"""Compression and export: ONNX, int8 quantization and distillation, each checked against the original.

Import the submodules directly (`modelyard.export.exporter`, `modelyard.export.distill`); this package imports
nothing so that learners can use its small protocol and runtime modules without pulling in the API.
"""
