"""``--power_meter SOURCE``: the whole-machine power sources, by the form that names them.

A form is ``KIND`` or ``KIND:TARGET``; each kind is a source class of its own (one module each) with
the interface every source has, registered here once: the settings check a value against this
registry, and the sampler builds its sources from it. Several may be given; two of one kind are
named ``meter``, ``meter2``, ... Whole-machine sources are ``SCOPE_NODE``: their energy contains
the GPUs' and the CPUs', so it is reported beside theirs and never added to it.

A separate package adds a kind through an entry point in the ``clipper_bench.power_sources`` group
whose name is the kind and whose value is a :class:`MeterKind` or a ``PowerSource`` subclass (taking
``(target, name=, credentials_file=, poll_s=)``, its target optional): ``--power_meter NAME[:TARGET]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..common.plugins import POWER_SOURCES_GROUP, plugins
from .ipmi import IpmiSource
from .redfish_bmc import RedfishSource, check_url
from .source import PowerSource
from .wall_meter import MeterSource


@dataclass(frozen=True)
class MeterKind:
    """One form of ``--power_meter``: its source class, whether it takes (or needs) a target, the
    target's own check, and how it is written in messages."""

    cls: type[PowerSource]
    target: str  # "required", "optional"
    form: str
    check: Callable[[str], str | None] | None = None


KINDS: dict[str, MeterKind] = {
    "redfish": MeterKind(RedfishSource, "required", "redfish:URL (a BMC's Redfish service)", check_url),
    "ipmi": MeterKind(IpmiSource, "optional", "ipmi or ipmi:HOST (the BMC's DCMI power reading, through ipmitool)"),
    "meter": MeterKind(MeterSource, "required", "meter:COMMAND (a command printing timestamp,watts[,channel] lines)"),
}
FORMS = "; ".join(k.form for k in KINDS.values())


def all_kinds() -> dict[str, MeterKind]:
    """The built-in kinds, then the installed plug-ins' (entry points; a built-in keeps its name)."""
    out = dict(KINDS)
    for name, ep in plugins(POWER_SOURCES_GROUP, KINDS).items():
        loaded = ep.load()
        out[name] = loaded if isinstance(loaded, MeterKind) else MeterKind(
            loaded, "optional", f"{name} or {name}:TARGET (a plug-in)")
    return out


def parse_meter(text: str) -> tuple[str, str]:
    """``(kind, target)`` of one ``--power_meter`` value; ValueError naming the forms when it is none."""
    kind, _, target = text.partition(":")
    kind = kind.strip().lower()
    kinds = all_kinds()
    entry = kinds.get(kind)
    if entry is None:
        raise ValueError(f"{text!r} is not a power meter: pass one of {'; '.join(k.form for k in kinds.values())}")
    if entry.target == "required" and not target.strip():
        raise ValueError(f"{text!r} needs its target: {entry.form}")
    if entry.check and target.strip():
        problem = entry.check(target.strip())
        if problem:
            raise ValueError(problem)
    return kind, target.strip()


def source_names(values: Sequence[str]) -> list[str]:
    """The source name of each value: its kind, numbered from the second of one kind (``meter2``)."""
    seen: dict[str, int] = {}
    names = []
    for value in values:
        kind, _ = parse_meter(value)
        seen[kind] = seen.get(kind, 0) + 1
        names.append(kind if seen[kind] == 1 else f"{kind}{seen[kind]}")
    return names


def node_sources(values: Sequence[str], credentials_file: str | None, poll_s: float) -> list[PowerSource]:
    """The sources ``--power_meter`` names, in order, not opened yet."""
    out = []
    for value, name in zip(values, source_names(values), strict=True):
        kind, target = parse_meter(value)
        out.append(all_kinds()[kind].cls(target, name=name, credentials_file=credentials_file, poll_s=poll_s))
    return out


def node_source_classes() -> tuple[type[PowerSource], ...]:
    """Every whole-machine source class, the plug-ins' included."""
    return tuple(k.cls for k in all_kinds().values())
