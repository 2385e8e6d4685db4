"""The runtimes a saved learner can run on besides eager PyTorch (ONNX Runtime sessions, torch int8), and the
protocol saying what a learner offers for export. Learners load their exported forms through this package, so it sits
below them; `export/` (which writes those forms) sits above."""
