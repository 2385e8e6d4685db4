"""Metrics, baselines, the HTML report and explanations."""
