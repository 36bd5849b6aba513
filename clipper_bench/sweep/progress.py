"""What a user watching a sweep sees: configuration k of N, time used and left, and live numbers.

On a terminal a rich live panel redraws in place; when output goes to a file or pipe, the same facts
come as plain lines (one when a configuration starts and ends, one every ``PLAIN_EVERY_S`` while it
measures), so logs of long unattended sweeps stay readable. Live numbers come from the frontend's
``/metrics`` (answers, errors, latency since the configuration began: warm-up included) and the power
sampler's latest reading; the recorded numbers come from the clients' raw data afterwards. Both use
the same definitions: throughput counts successful answers only (SLO defaults and errors are shown
apart), and the frontend's metrics are cleared when the measurement window begins, so warm-up
never enters the live p99; during warm-up the panel says so.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import requests

PLAIN_EVERY_S = 10.0
POLL_EVERY_S = 1.0


@dataclass
class LiveStats:
    """Numbers of the configuration being measured, as of the last poll."""

    phase: str = "starting"
    throughput_qps: float | None = None  # successful answers per second since the previous poll
    p99_ms: float | None = None
    errors: int = 0
    watts: float | None = None
    defaults: int = 0


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


def describe_live(live: LiveStats) -> str:
    """``1234 q/s ok, p99 5.1 ms, 0 SLO defaults, 0 errors, 231 W`` with dashes for what is not known
    yet; during warm-up, ``warming up`` and the answers so far."""
    thr = "- q/s" if live.throughput_qps is None else f"{live.throughput_qps:,.0f} q/s ok"
    p99 = "p99 -" if live.p99_ms is None else f"p99 {live.p99_ms:.1f} ms"
    watts = "- W" if live.watts is None else f"{live.watts:.0f} W"
    text = f"{thr}, {p99}, {live.defaults} SLO defaults, {live.errors} errors, {watts}"
    return f"warming up (not measured): {text}" if live.phase == "warming up" else text


class Progress:
    """Where the sweep is. ``message`` prints a line; the rest feed the display."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.total = 0
        self.index = 0
        self.config_id = ""
        self.started = time.monotonic()
        self.config_began = self.started
        self.expected_s: list[float] = []
        self.overheads: list[float] = []
        self.live = LiveStats()

    def message(self, text: str) -> None:
        """Print a line."""
        print(text, file=self.stream, flush=True)

    def begin(self, expected_s: list[float]) -> None:
        """The sweep starts: ``expected_s`` is each configuration's warm-up plus duration."""
        self.total = len(expected_s)
        self.expected_s = expected_s
        self.started = time.monotonic()

    def config_started(self, index: int, config_id: str) -> None:
        """Configuration ``index`` (from 1), ``config_id``, starts: reset its clock and live numbers."""
        self.index, self.config_id = index, config_id
        self.config_began = time.monotonic()
        self.live = LiveStats()

    def update(self, live: LiveStats) -> None:
        """Take the latest live numbers."""
        self.live = live

    def config_ended(self, measured: bool) -> None:
        """A configuration finished; if it ran its course, learn its overhead beyond warm-up plus duration."""
        if measured:
            spent = time.monotonic() - self.config_began
            self.overheads.append(max(0.0, spent - self.expected_s[self.index - 1]))

    def remaining_s(self) -> float:
        """Estimated seconds left: the rest of this configuration and all later ones, plus overheads."""
        if not self.total:
            return 0.0
        overhead = sum(self.overheads) / len(self.overheads) if self.overheads else 3.0
        current = max(0.0, self.expected_s[self.index - 1] + overhead - (time.monotonic() - self.config_began))
        later = sum(self.expected_s[self.index:]) + overhead * (self.total - self.index)
        return current + later

    def status_line(self) -> str:
        """One line: configuration k of N, its phase and live numbers, time elapsed and left."""
        return (f"[{self.index}/{self.total}] {self.config_id} {self.live.phase}: {describe_live(self.live)}; "
                f"elapsed {_fmt_duration(time.monotonic() - self.started)}, "
                f"about {_fmt_duration(self.remaining_s())} left")

    def close(self) -> None:
        """Stop the display (plain lines have nothing to stop)."""
        pass


class PlainProgress(Progress):
    """Lines only: a status line every ``PLAIN_EVERY_S`` while measuring."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream)
        self._last_line = 0.0

    def config_started(self, index: int, config_id: str) -> None:
        """Start configuration ``index``; the next status line is due ``PLAIN_EVERY_S`` from now."""
        super().config_started(index, config_id)
        self._last_line = time.monotonic()

    def update(self, live: LiveStats) -> None:
        """Take the latest live numbers; while measuring, print a status line every ``PLAIN_EVERY_S``."""
        super().update(live)
        now = time.monotonic()
        if live.phase == "measuring" and now - self._last_line >= PLAIN_EVERY_S:
            self._last_line = now
            self.message(self.status_line())


class RichProgress(Progress):
    """A live panel redrawn in place under the scrolling messages."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream)
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=self.stream)
        self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True,
                          get_renderable=self._render)
        self._live.start()

    def _render(self) -> Any:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        if not self.total:
            table.add_row("clipper-bench", "preparing ...")
            return table
        done = self.index - 1
        bar_width = 30
        filled = int(bar_width * done / self.total)
        table.add_row("configuration", f"{self.index} of {self.total}  [green]{'█' * filled}[/]"
                                       f"[dim]{'░' * (bar_width - filled)}[/]  {self.config_id}")
        table.add_row("phase", self.live.phase)
        table.add_row("time", f"elapsed {_fmt_duration(time.monotonic() - self.started)}, "
                              f"about {_fmt_duration(self.remaining_s())} left")
        table.add_row("live", describe_live(self.live))
        return table

    def message(self, text: str) -> None:
        """Print a line above the live panel, as it is (no markup or highlighting)."""
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def close(self) -> None:
        """Stop the live panel, which then disappears."""
        self._live.stop()


def make_progress(stream: IO[str] | None = None) -> Progress:
    """A rich live display on a terminal, plain lines otherwise."""
    stream = stream or sys.stdout
    isatty = getattr(stream, "isatty", lambda: False)()
    return RichProgress(stream) if isatty else PlainProgress(stream)


class LivePoller:
    """Polls the frontend's metrics and the sampler's latest watts in a thread while clients run."""

    def __init__(self, metrics_url: str, app: str, watts: Callable[[], float | None],
                 phase: Callable[[], str], on_update: Callable[[LiveStats], None],
                 on_measuring: Callable[[], None] | None = None) -> None:
        self.metrics_url, self.app = metrics_url, app
        self.watts, self.phase, self.on_update = watts, phase, on_update
        self.on_measuring = on_measuring  # clears the frontend's metrics when the window begins
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-poller", daemon=True)
        self._last: tuple[float, int] | None = None

    def start(self) -> LivePoller:
        """Start polling in a daemon thread; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling; wait up to 5 s for the thread to end."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(POLL_EVERY_S):
            try:
                self.on_update(self.poll())
            except Exception:  # noqa: BLE001 - a display must never break a measurement
                continue

    def poll(self) -> LiveStats:
        """One reading: successful answers per second since the previous poll; p99, SLO defaults and
        errors since the window began (during warm-up: since the configuration began)."""
        live = LiveStats(phase=self.phase(), watts=self.watts())
        if live.phase == "measuring" and self.on_measuring is not None:
            reset, self.on_measuring = self.on_measuring, None
            reset()
            self._last = (time.monotonic(), 0)  # the first reading after this one gives a rate
        try:
            metrics = requests.get(self.metrics_url, timeout=1).json()
        except (requests.RequestException, ValueError):
            return live
        prefix = f"app:{self.app}:"
        counters = {k: int(v["count"]) for c in metrics.get("counters", []) for k, v in c.items()}
        live.errors = counters.get(prefix + "num_errors", 0)
        live.defaults = counters.get(prefix + "num_defaults", 0)
        succeeded = counters.get(prefix + "num_predictions", 0) - live.errors - live.defaults
        now = time.monotonic()
        if self._last is not None and now > self._last[0]:
            live.throughput_qps = max(0, succeeded - self._last[1]) / (now - self._last[0])
        self._last = (now, succeeded)
        for h in metrics.get("histograms", []):
            lat = h.get(prefix + "prediction_latency")
            if lat and int(lat["size"]) > 0:
                live.p99_ms = float(lat["p99"]) / 1000
        return live
