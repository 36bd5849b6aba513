"""``--engine local``'s own flags (our server as local processes). Declared as the core's settings are
(:func:`clipper_bench.common.options.setting`); the engine registry gathers them into the run's settings,
its command line, ``--help``, sweep files and the CLI reference. Imports nothing of the engine."""

from __future__ import annotations

from dataclasses import dataclass

from ...common.cli_types import Range, whole_number
from ...common.options import setting


@dataclass(frozen=True)
class LocalOptions:
    """``--engine local``'s own flags (our server as local processes)."""

    metrics_port: int = setting(1390, 'engine', '--metrics_port', type=whole_number, help="--engine local: serve Prometheus' /metrics (the frontend's histograms, meters and counters, and the running window's watts) on this port, as Clipper's exporter does (default 1390; when it is taken a free port is used and recorded; 0 turns it off)",
                        limits=Range(0, 65535, "", "a TCP port; 0 turns it off"))
