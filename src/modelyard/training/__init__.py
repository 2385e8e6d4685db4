"""The shared training loop and its callbacks, checkpoints and samplers."""
