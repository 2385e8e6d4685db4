"""Reading, cleaning, validating, splitting and fingerprinting data."""
