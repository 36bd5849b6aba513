"""Results: the on-disk layout of an experiment and the host facts recorded with it."""
