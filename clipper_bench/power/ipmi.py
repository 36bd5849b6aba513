"""Whole-machine power from a BMC's DCMI power reading, through ``ipmitool`` (Debian's package).

``--power_meter ipmi`` asks this machine's own BMC (``ipmitool dcmi power reading``, in band through
``/dev/ipmi0``: root or the ipmi group, no password); ``ipmi:HOST`` asks a BMC over the network
(``ipmitool -I lanplus -H HOST -U USER -E dcmi power reading``). The password reaches ipmitool only
through its environment (``-E`` reads ``IPMI_PASSWORD``), never its command line, where ``ps`` would
show it. The reading's own timestamp (``IPMI timestamp``) tells one BMC reading from the next, and
its ``Sampling period`` is recorded: it is the BMC's own update interval.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime

from .credentials import load_credentials
from .polled import PolledSource
from .source import Reading, SourceUnavailable

TIMEOUT_S = 10
IPMITOOL_ENV = "CLIPPER_BENCH_IPMITOOL"  # another ipmitool binary (a path), where PATH's is not the one
_FIELDS = {
    "instantaneous power reading": "power_w",
    "minimum during sampling period": "period_min_w",
    "maximum during sampling period": "period_max_w",
    "average power reading over sample period": "period_avg_w",
}
_TIME_FORMATS = ("%a %b %d %H:%M:%S %Y", "%m/%d/%Y %H:%M:%S", "%m/%d/%y %H:%M:%S", "%Y-%m-%d %H:%M:%S")


def _stamp(text: str) -> float | None:
    """An ``IPMI timestamp`` value as seconds (the BMC's clock, whatever its zone), or None."""
    text = " ".join(text.split())
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).timestamp()
        except ValueError:
            continue
    return None


def parse_power_reading(text: str) -> dict[str, object]:
    """The fields of ``ipmitool dcmi power reading``'s output: watts, the sampling period's minimum,
    maximum and average, the timestamp and period, and whether readings are activated."""
    out: dict[str, object] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key in _FIELDS:
            match = re.match(r"(-?\d+(?:\.\d+)?)\s*watts", value, re.I)
            if match:
                out[_FIELDS[key]] = float(match.group(1))
        elif key == "ipmi timestamp":
            out["stamp"] = _stamp(value)
        elif key == "sampling period":
            match = re.match(r"(\d+)\s*(milli)?seconds", value, re.I)
            if match:
                out["sampling_period_s"] = int(match.group(1)) / (1000 if match.group(2) else 1)
        elif key == "power reading state is":
            out["state"] = value.lower().rstrip(".")
    return out


class IpmiSource(PolledSource):
    """DCMI power reading of this machine's BMC (``host`` empty) or of the BMC at ``host``."""

    kind = "ipmi"
    name = "ipmi"  # the first of its kind; the next are "ipmi2", ...

    def __init__(self, host: str = "", name: str = "ipmi", credentials_file: str | None = None,
                 poll_s: float = 1.0) -> None:
        super().__init__(name, poll_s)
        self.host = host
        self.credentials_file = credentials_file
        self.argv: list[str] = []
        self.env: dict[str, str] = {}
        self.sampling_period_s: float | None = None

    def connect(self) -> None:
        """Find ipmitool and, for a remote BMC, the credentials."""
        tool = os.environ.get(IPMITOOL_ENV) or shutil.which("ipmitool")
        if not tool:
            raise SourceUnavailable("ipmitool is not installed: apt-get install ipmitool (or pass --power_meter redfish:URL)")
        self.argv = [tool]
        self.env = dict(os.environ)
        if self.host:
            creds = load_credentials("ipmi", self.credentials_file)
            self.argv += ["-I", "lanplus", "-H", self.host, "-U", creds.user, "-E"]
            self.env["IPMI_PASSWORD"] = creds.password  # -E: only ipmitool's environment holds it
        self.argv += ["dcmi", "power", "reading"]

    def poll_once(self) -> list[Reading]:
        """Run ipmitool once and parse its answer."""
        try:
            done = subprocess.run(self.argv, capture_output=True, text=True, timeout=TIMEOUT_S, env=self.env,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:  # run() has killed and reaped it
            raise SourceUnavailable(f"ipmitool did not answer within {TIMEOUT_S} s") from None
        except OSError as exc:
            raise SourceUnavailable(f"cannot run {self.argv[0]}: {exc.strerror or exc}") from None
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise SourceUnavailable(f"ipmitool dcmi power reading failed (exit {done.returncode}): {tail}")
        fields = parse_power_reading(done.stdout)
        if "power_w" not in fields:
            raise SourceUnavailable("ipmitool dcmi power reading printed no 'Instantaneous power reading' "
                                    "(the BMC may not support DCMI power readings)")
        if fields.get("state") not in (None, "activated"):
            raise SourceUnavailable(f"the BMC's power reading state is {fields['state']!r}: its readings are not valid")
        self.sampling_period_s = fields.get("sampling_period_s", self.sampling_period_s)  # type: ignore[assignment]
        extra = {k: float(v) for k, v in fields.items() if k.startswith("period_") and isinstance(v, float)}
        stamp = fields.get("stamp")
        return [Reading(f"node:{self.name}", power_w=float(fields["power_w"]), extra=extra,  # type: ignore[arg-type]
                        stamp=stamp if isinstance(stamp, float) else None)]

    def info(self) -> dict[str, object]:
        """The BMC asked and the sampling period it reported; never the password."""
        out = {**super().info(), "host": self.host or "this machine (in band)",
               "bmc_sampling_period_s": self.sampling_period_s}
        if self.host:
            out["credentials_from"] = self.credentials_file or "environment"
        return out
