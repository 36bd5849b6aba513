"""What the planner can minimise (kept apart so that building the command line imports nothing heavy:
the model images run the CLI without pandas)."""

OBJECTIVES = ("gpus", "cores", "replicas", "energy")
