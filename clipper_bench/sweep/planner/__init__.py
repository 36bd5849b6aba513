"""The planner: the cheapest configuration under a latency SLO, predicted from measured profiles, then validated."""
