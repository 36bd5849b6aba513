"""Whole-machine power from any command that prints ``timestamp,watts[,channel]`` lines: a wall
meter's reader (Omegawatt's ``wattmeter-read``), a PTDaemon client, a script.

``--power_meter 'meter:COMMAND'`` runs COMMAND with ``/bin/sh -c`` in a session of its own for as
long as the source is open, and reads its stdout in a thread. Each line is one reading:
``timestamp`` in seconds on the meter's own clock (any origin: seconds since the epoch or since the
meter started; ISO 8601 is accepted too), ``watts``, and an optional ``channel`` (one per cable of a
machine with several power supplies: the channels of one meter are added). Blank lines, ``#``
comments and a header line are skipped; other lines that do not parse are counted.

The meter's clock is not this host's: the offset is estimated as the smallest ``arrival - timestamp``
over the lines read (the least delayed line bounds it best; a pipe adds microseconds, a meter's
buffering more), applied to every reading, and recorded with its spread. The command's process
group is ended on every way out of the source (:meth:`MeterSource.close`, called by the sampler in
a ``finally``); a meter killed with the sampler gets SIGPIPE at its next line.
"""

from __future__ import annotations

import collections
import math
import os
import signal
import subprocess
import threading
import time
from datetime import datetime

from .source import SCOPE_NODE, PowerSource, Reading, SourceUnavailable

FIRST_LINE_TIMEOUT_S = 10.0  # a wall meter prints about once a second; PTDaemon clients take a few
BUFFER_LINES = 100_000


def parse_line(line: str) -> tuple[float, float, str] | None:
    """``(timestamp_s, watts, channel)`` of one meter line, or None when it is not one."""
    fields = [f.strip() for f in line.split(",")]
    if len(fields) not in (2, 3):
        return None
    try:
        watts = float(fields[1])
    except ValueError:
        return None
    try:
        stamp = float(fields[0])
    except ValueError:
        try:
            stamp = datetime.fromisoformat(fields[0]).timestamp()
        except ValueError:
            return None
    if not (math.isfinite(stamp) and math.isfinite(watts)):
        return None
    return stamp, watts, fields[2] if len(fields) == 3 and fields[2] else ""


class MeterSource(PowerSource):
    """The lines of a meter command, as readings on this host's clock."""

    kind = "meter"
    name = "meter"  # the first of its kind; the next are "meter2", ...
    scope = SCOPE_NODE

    def __init__(self, command: str, name: str = "meter", credentials_file: str | None = None,
                 poll_s: float = 1.0) -> None:
        self.command = command
        self.name = name
        self.process: subprocess.Popen | None = None
        self._lines: collections.deque[tuple[float, float, str, float]] = collections.deque(maxlen=BUFFER_LINES)
        self._stderr: collections.deque[str] = collections.deque(maxlen=5)
        self._lock = threading.Lock()
        self._got_line = threading.Event()
        self._threads: list[threading.Thread] = []
        self.offset_s: float | None = None  # host time = meter time + offset
        self.max_lag_s = 0.0  # the largest arrival - timestamp: offset_s plus the worst delay seen
        self.lines = 0
        self.bad_lines = 0
        self.first_bad: str | None = None
        self._header_seen = False

    def open(self) -> None:
        """Start the command and wait for its first reading; SourceUnavailable (with its exit status
        and last error line) when it exits first, or prints no reading within FIRST_LINE_TIMEOUT_S."""
        if not self.command.strip():
            raise SourceUnavailable("meter: has no command: pass e.g. --power_meter 'meter:wattmeter-read --csv'")
        try:
            self.process = subprocess.Popen(["/bin/sh", "-c", self.command], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                            bufsize=1, start_new_session=True)
        except OSError as exc:
            raise SourceUnavailable(f"cannot start the meter command: {exc.strerror or exc}") from None
        for target, stream in ((self._read_stdout, self.process.stdout), (self._read_stderr, self.process.stderr)):
            thread = threading.Thread(target=target, args=(stream,), name=f"{self.name}-reader", daemon=True)
            thread.start()
            self._threads.append(thread)
        if not self._got_line.wait(FIRST_LINE_TIMEOUT_S) or self.offset_s is None:
            problem = self._no_reading_problem()
            self.close()
            raise SourceUnavailable(problem)

    def _no_reading_problem(self) -> str:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:  # its last words are on their way through the stderr thread
            for thread in self._threads:
                thread.join(timeout=1)
        err = f" ({self._stderr[-1]})" if self._stderr else ""
        if self.bad_lines and not self.lines:
            return (f"the meter command printed {self.bad_lines} line(s) that are not timestamp,watts[,channel], "
                    f"the first: {self.first_bad!r}")
        if code is not None:
            return f"the meter command exited with status {code} before printing a reading{err}"
        return f"the meter command printed no timestamp,watts line within {FIRST_LINE_TIMEOUT_S:g} s{err}"

    def _read_stdout(self, stream) -> None:
        for raw in stream:
            arrived = time.time()
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parsed = parse_line(line)
            if parsed is None:
                if self.lines or self.bad_lines or self._header_seen:
                    self.bad_lines += 1
                    self.first_bad = self.first_bad or line[:80]
                self._header_seen = True  # a first line that does not parse is a header
                continue
            stamp, watts, channel = parsed
            with self._lock:
                lag = arrived - stamp
                self.offset_s = lag if self.offset_s is None else min(self.offset_s, lag)
                self.max_lag_s = lag if self.lines == 0 else max(self.max_lag_s, lag)
                self.lines += 1
                self._lines.append((stamp, watts, channel, arrived))
            self._got_line.set()
        self._got_line.set()  # the command ended: open() stops waiting

    def _read_stderr(self, stream) -> None:
        for raw in stream:
            if raw.strip():
                self._stderr.append(raw.strip()[:200])

    def read(self) -> list[Reading]:
        """The readings printed since the last call, their timestamps moved onto this host's clock;
        SourceUnavailable once the command has exited."""
        with self._lock:
            lines = list(self._lines)
            self._lines.clear()
            offset = self.offset_s or 0.0
        if not lines and self.process is not None and self.process.poll() is not None:
            err = f": {self._stderr[-1]}" if self._stderr else ""
            raise SourceUnavailable(f"the meter command exited with status {self.process.returncode}{err}")
        return [Reading(f"node:{self.name}:{channel}" if channel else f"node:{self.name}", power_w=watts,
                        t=stamp + offset, stamp=stamp) for stamp, watts, channel, _ in lines]

    def close(self) -> None:
        """End the command's process group (SIGTERM, then SIGKILL after 2 s) and reap it."""
        process, self.process = self.process, None
        if process is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                process.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        for thread in self._threads:
            thread.join(timeout=2)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    def info(self) -> dict[str, object]:
        """The command, the clock offset applied and how far lines lagged beyond it, the line counts."""
        return {"command": self.command, "clock_offset_s": self.offset_s,
                "lag_spread_s": None if self.offset_s is None else self.max_lag_s - self.offset_s,
                "lines": self.lines, "bad_lines": self.bad_lines}
