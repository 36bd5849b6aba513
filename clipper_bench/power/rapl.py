"""CPU package and DRAM energy from Linux powercap (Intel RAPL and AMD's equivalent).

Domains nest: ``intel-rapl:0`` is package 0, ``intel-rapl:0:0`` its core, ``intel-rapl:0:1`` its
uncore or DRAM, and a ``psys`` domain (where present) contains the packages. Only top-level package
domains and DRAM subdomains are read, so no energy is counted twice. Counters wrap at
``max_energy_range_uj``; the sampler reads them every interval (far more often than the shortest
wrap, minutes at hundreds of watts) and unwraps each step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .source import PowerSource, Reading, SourceUnavailable

DEFAULT_ROOT = Path("/sys/class/powercap")


@dataclass
class _Domain:
    channel: str
    energy_file: Path
    max_range_uj: int
    last_uj: int | None = None
    total_uj: int = 0


def unwrap_delta(previous_uj: int, current_uj: int, max_range_uj: int) -> int:
    """Energy between two counter readings, allowing for one wrap at ``max_range_uj``."""
    if current_uj >= previous_uj:
        return current_uj - previous_uj
    return max_range_uj - previous_uj + current_uj + 1


class RaplSource(PowerSource):
    """Package and DRAM energy per socket from a powercap tree."""

    name = "rapl"

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = Path(root)
        self.domains: list[_Domain] = []

    def open(self) -> None:
        """Find the package and DRAM domains and read their counters once; SourceUnavailable when
        there are none or they cannot be read."""
        if not self.root.is_dir():
            raise SourceUnavailable(f"no powercap at {self.root} (common in VMs and containers)")
        tops = sorted(p for p in self.root.glob("intel-rapl:*") if p.name.count(":") == 1)
        if not tops:
            raise SourceUnavailable(f"no RAPL domains under {self.root}")
        for top in tops:
            name = _read_text(top / "name")
            if name == "psys":
                continue  # contains the packages: reading both would count them twice
            socket = top.name.split(":")[1]
            self._add(f"package-{socket}", top)
            # subdomains are listed beside the packages in /sys/class/powercap (and nested
            # inside them under /sys/devices); take each once
            subs = {p.name: p for p in [*top.glob(f"{top.name}:*"), *self.root.glob(f"{top.name}:*")]}
            for sub in (subs[k] for k in sorted(subs)):
                if _read_text(sub / "name") == "dram":
                    self._add(f"dram-{socket}", sub)
        if not self.domains:
            raise SourceUnavailable(f"no package or DRAM domains under {self.root}")
        for d in self.domains:
            d.last_uj = self._read_counter(d)

    def _add(self, channel: str, path: Path) -> None:
        try:
            max_range = int(_read_text(path / "max_energy_range_uj"))
        except (OSError, ValueError) as exc:
            raise SourceUnavailable(f"cannot read {path / 'max_energy_range_uj'}: {exc}") from exc
        self.domains.append(_Domain(channel, path / "energy_uj", max_range))

    def _read_counter(self, d: _Domain) -> int:
        try:
            return int(d.energy_file.read_text())
        except PermissionError as exc:
            raise SourceUnavailable(
                f"permission denied reading {d.energy_file} (root-only since Linux 5.10): run as root or "
                f"`sudo chmod a+r {self.root}/intel-rapl:*/energy_uj {self.root}/intel-rapl:*/*/energy_uj`"
            ) from exc
        except (OSError, ValueError) as exc:
            raise SourceUnavailable(f"cannot read {d.energy_file}: {exc}") from exc

    def read(self) -> list[Reading]:
        """Each domain's energy since :meth:`open` in joules, counter wraps undone."""
        out = []
        for d in self.domains:
            now = self._read_counter(d)
            assert d.last_uj is not None
            d.total_uj += unwrap_delta(d.last_uj, now, d.max_range_uj)
            d.last_uj = now
            out.append(Reading(d.channel, energy_j=d.total_uj / 1e6))
        return out


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
