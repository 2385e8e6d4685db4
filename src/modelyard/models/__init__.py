"""Architectures we own, and the catalog of bundled pretrained models."""
