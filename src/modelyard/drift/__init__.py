"""The reference profile a bundle stores at train time and the statistics that compare live traffic with it.

Written by training (below `monitoring/`), read by `monitor`, the server's drift watch and `retrain`.
"""
