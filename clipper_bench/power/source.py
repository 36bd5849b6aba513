"""The interface every power source implements, and what it reports.

A source is probed once; it is either usable or ``unavailable: <reason>``, and the reason (with the
fix, where there is one) goes into the results. Unknown is never reported as zero.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


class SourceUnavailable(Exception):
    """The source cannot be read here; the message says why and, where possible, how to fix it."""


@dataclass
class Reading:
    """One sample of one channel (a GPU, a RAPL domain, a set of cores).

    ``energy_j`` is a cumulative counter (already unwrapped) when the hardware has one; ``power_w``
    an instantaneous power; ``extra`` anything else worth a time series (utilisation, clocks...).
    ``t`` is when the reading was taken, on this host's clock (seconds since the epoch), for a source
    that reads on its own schedule (a BMC polled in a thread, a meter's own timestamps); None: when
    :meth:`PowerSource.read` returned it. ``stamp`` is the device's own mark of a reading (a BMC's
    timestamp, a meter's clock), where it has one: readings with one stamp are one reading.
    """

    channel: str
    energy_j: float | None = None
    power_w: float | None = None
    extra: dict[str, float] = field(default_factory=dict)
    t: float | None = None
    stamp: float | None = None


#: what a source's channels cover: parts of the machine (GPUs, CPU packages, DRAM), which never
#: overlap and are summed into a record's ``joules``; or the whole machine (a BMC, a wall meter),
#: which contains the parts and is reported on its own, never added to them
SCOPE_COMPONENT = "component"
SCOPE_NODE = "node"


class PowerSource(ABC):
    """A family of channels read together (all GPUs of a run, all RAPL domains, some cores)."""

    name: str
    #: whether its channels measure energy or power (GPUs, RAPL) rather than only use (CPU time):
    #: the idle measurement, the per-query energy and the report read this, not a list of names
    measures_energy: bool = True
    #: SCOPE_COMPONENT or SCOPE_NODE: carried with the samples, so the summary needs no channel names
    scope: str = SCOPE_COMPONENT

    @abstractmethod
    def open(self) -> None:
        """Prepare to read; raise SourceUnavailable with the reason when the source cannot be read."""

    @abstractmethod
    def read(self) -> list[Reading]:
        """One reading per channel, now."""

    def close(self) -> None:  # noqa: B027 - optional hook, most sources hold nothing
        """Release what open() took."""

    def info(self) -> dict[str, object]:
        """What the record should say about how this source read (no secrets): called after the window."""
        return {}
