"""Monitoring after launch: the reference profile stored at train time, drift of live traffic against it,
feedback from production, and the gate that promotes a retrained challenger only when it is proven better.

See docs/monitoring.md for the statistics and their thresholds.
"""

DEFAULT_WINDOW = 1000  # the most recent predictions a drift check judges
