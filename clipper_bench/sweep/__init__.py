"""Sweeps: settings, the plan of configurations and cores, and the experiment runner."""
