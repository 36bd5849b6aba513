"""CPU utilisation of given cores (each replica's, the frontend's) from psutil."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import psutil

from .source import PowerSource, Reading


class CpuSource(PowerSource):
    """Busy share (0-100%) of each named group of cores between consecutive reads."""

    name = "cpu"
    measures_energy = False  # CPU time per core group, not watts

    def __init__(self, groups: Mapping[str, Sequence[int]]) -> None:
        self.groups = {k: list(v) for k, v in groups.items() if v}
        self._last = None

    def open(self) -> None:
        """Take the per-core CPU times that the first :meth:`read` counts from."""
        self._last = psutil.cpu_times(percpu=True)

    def read(self) -> list[Reading]:
        """Each group's busy share (``util_pct``) of its cores since the previous read."""
        now = psutil.cpu_times(percpu=True)
        out = []
        for name, cores in self.groups.items():
            busy = total = 0.0
            for c in cores:
                if c >= len(now):
                    continue
                a, b = self._last[c], now[c]
                t = sum(b) - sum(a)
                idle = (b.idle + getattr(b, "iowait", 0.0)) - (a.idle + getattr(a, "iowait", 0.0))
                busy += t - idle
                total += t
            out.append(Reading(f"cpu:{name}", extra={"util_pct": 100.0 * busy / total if total > 0 else 0.0}))
        self._last = now
        return out
