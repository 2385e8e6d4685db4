"""Metric functions (DESIGN.md names), pure and light: used by learners, tasks, the report and monitoring."""
