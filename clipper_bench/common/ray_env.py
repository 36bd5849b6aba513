"""Ray's environment for this project, set before anything imports ray."""

from __future__ import annotations

import os


def use_loopback_ray_env() -> None:
    """Call before anything imports ray (``find_spec("ray.serve")`` does): a local Ray then binds
    and connects on 127.0.0.1 only (Linux otherwise uses the host's interface address), writes no
    auth token under $HOME and sends no usage stats. Child processes inherit it."""
    for name, value in (("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"), ("RAY_AUTH_MODE", "disabled"),
                        ("RAY_USAGE_STATS_ENABLED", "0")):
        os.environ.setdefault(name, value)
