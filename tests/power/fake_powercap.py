"""A fake powercap sysfs tree whose counters advance at set wattages, wrapping like RAPL's."""

from __future__ import annotations

import threading
import time
from pathlib import Path

DOMAINS = {
    # directory: (name, watts, max_energy_range_uj)
    "intel-rapl:0": ("package-0", 50.0, 262_143_328_850),
    "intel-rapl:0:0": ("core", 30.0, 262_143_328_850),
    "intel-rapl:0:1": ("dram", 5.0, 65_712_999_613),
    "intel-rapl:1": ("package-1", 40.0, 262_143_328_850),
    "intel-rapl:1:0": ("dram", 4.0, 65_712_999_613),
    "intel-rapl:2": ("psys", 120.0, 262_143_328_850),
}


class FakePowercap:
    """Writes energy_uj of every domain every ``tick_s`` from a thread: counter = start + watts x t."""

    def __init__(self, root: Path, domains: dict | None = None, start_uj: dict | None = None, tick_s: float = 0.01):
        self.root = Path(root)
        self.domains = dict(DOMAINS if domains is None else domains)
        self.start_uj = start_uj or {}
        self.tick_s = tick_s
        self._stop = threading.Event()
        self._t0 = time.time()
        for d, (name, _w, max_uj) in self.domains.items():
            path = self.root / d
            path.mkdir(parents=True, exist_ok=True)
            (path / "name").write_text(name + "\n")
            (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
        self._write()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _write(self) -> None:
        elapsed = time.time() - self._t0
        for d, (_name, watts, max_uj) in self.domains.items():
            value = int(self.start_uj.get(d, 0) + watts * elapsed * 1e6) % (max_uj + 1)
            tmp = self.root / d / "energy_uj.tmp"
            tmp.write_text(f"{value}\n")
            tmp.replace(self.root / d / "energy_uj")

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            self._write()

    def __enter__(self) -> FakePowercap:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
