"""The command line's sub-commands beyond the core verbs in `cli.py`; like `cli.py`, they sit on top of every layer."""
