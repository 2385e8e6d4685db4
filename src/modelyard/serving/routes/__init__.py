"""Thin HTTP routes: each parses a request, calls the ModelService, and shapes the answer."""
