"""A whole-machine source read in a thread of its own, on its own schedule (a BMC over the network).

A BMC takes tens of milliseconds to seconds to answer and refreshes its reading every 1-10 s, so
it cannot be read in the sampler's loop beside the GPUs (one slow answer would stretch every
interval). A polled source asks its device every ``poll_s`` in a thread, stamps each answer with
the middle of its request on this host's clock (``Reading.t``), and :meth:`read` hands over what
arrived since the last call. An answer that fails is counted and retried; ``MAX_FAILED_POLLS`` in a
row end the source (the sampler records why).
"""

from __future__ import annotations

import threading
import time
from abc import abstractmethod
from collections import deque

from .source import SCOPE_NODE, PowerSource, Reading, SourceUnavailable

MAX_FAILED_POLLS = 3
MIN_POLL_S = 0.25  # a BMC refreshes every 1-10 s: faster polling only repeats its readings
BUFFER_READINGS = 100_000  # readings kept between two reads (a day at 1 s on one channel)


class PolledSource(PowerSource):
    """A source whose :meth:`poll_once` asks the device; :meth:`open` connects (:meth:`connect`),
    polls once as the probe, then starts the polling thread."""

    scope = SCOPE_NODE

    def __init__(self, name: str, poll_s: float) -> None:
        self.name = name
        self.poll_s = max(poll_s, MIN_POLL_S)
        self._buffer: deque[Reading] = deque(maxlen=BUFFER_READINGS)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: str | None = None
        self.polls = 0
        self.failed_polls = 0

    @abstractmethod
    def connect(self) -> None:
        """Reach the device and find what to read; SourceUnavailable with the reason when it cannot."""

    @abstractmethod
    def poll_once(self) -> list[Reading]:
        """One answer from the device: a reading per channel (``t`` is filled in when left None)."""

    def open(self) -> None:
        """Connect, poll once (a device that answers nothing usable is unavailable), start polling."""
        self.connect()
        self._poll()
        if self._failure:
            raise SourceUnavailable(self._failure)
        self._thread = threading.Thread(target=self._run, name=f"poll-{self.name}", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        started = time.time()
        try:
            readings = self.poll_once()
        except Exception as exc:  # noqa: BLE001 - a device's fault becomes the source's reason
            self.failed_polls += 1
            reason = str(exc) if isinstance(exc, SourceUnavailable) else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, SourceUnavailable) or self.failed_polls >= MAX_FAILED_POLLS or not self.polls:
                self._failure = reason
            return
        self.polls += 1
        self.failed_polls = 0
        t = (started + time.time()) / 2
        with self._lock:
            for r in readings:
                if r.t is None:
                    r.t = t
                self._buffer.append(r)

    def _run(self) -> None:
        next_t = time.time()
        while not self._stop.is_set() and self._failure is None:
            self._poll()
            next_t += self.poll_s
            self._stop.wait(max(0.0, next_t - time.time()))

    def read(self) -> list[Reading]:
        """The readings that arrived since the last call; SourceUnavailable once polling failed."""
        with self._lock:
            out = list(self._buffer)
            self._buffer.clear()
        if self._failure is not None and not out:
            raise SourceUnavailable(self._failure)
        return out

    def close(self) -> None:
        """Stop the polling thread (it ends after its current request) and release the device."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.disconnect()

    def disconnect(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`connect` took."""

    def info(self) -> dict[str, object]:
        """How often the device was asked, and how often in vain."""
        return {"poll_s": self.poll_s, "polls": self.polls, "failed_polls_at_end": self.failed_polls}
