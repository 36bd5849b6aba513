"""What one load-generating client is asked to do, as a JSON-serialisable settings object."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import IntEnum
from pathlib import Path


# Per-query status codes in the raw data files.
class QueryStatus(IntEnum):
    """What became of one query, as the clients record it (one byte per query in the raw data)."""

    OK = 0  # answered with the model's output
    SLO_DEFAULT = 1  # answered with the application's default output: the SLO passed first
    ERROR = 2  # answered with an error
    UNANSWERED = 3  # no answer by the end of the drain

    @property
    def label(self) -> str:
        """The name ``load_queries`` shows."""
        return self.name.lower()


# the codes as plain ints, for the clients' hot loops
STATUS_OK, STATUS_DEFAULT, STATUS_ERROR, STATUS_NO_ANSWER = (int(s) for s in QueryStatus)


@dataclass(frozen=True)
class LoadSpec:
    """One client's job: where to send, what, how hard, and when."""

    client_index: int
    transport: str  # a protocol.transports.Transport value
    address: str  # host:port of the binary path or of the REST query frontend
    app: str
    model_name: str  # registry model whose input pool the client sends
    concurrency: int
    start_at_wall: float  # time.time() at which sending starts
    warmup_s: float
    duration_s: float
    drain_timeout_s: float  # the drain's shortest silence limit (see load.client.Drain)
    out_path: str
    pool_size: int = 1000
    seed: int = 0
    cpus: tuple[int, ...] = ()
    rate_qps: float | None = None  # open loop at this rate (this client's share); None: closed loop
    arrival: str = "constant"
    stable_window_s: float | None = None  # stop when stable (see load.stability); None: full duration
    stable_tolerance: float = 0.1
    drain_max_s: float = 600.0  # the longest the drain may wait in all (see load.client.Drain)
    slo_s: float | None = None  # the application's latency SLO: the drain waits at least this long

    def save(self, path: Path) -> None:
        """Write the spec to ``path`` as JSON."""
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> LoadSpec:
        """Read a spec that :meth:`save` wrote."""
        data = json.loads(Path(path).read_text())
        data["cpus"] = tuple(data.get("cpus", ()))
        return cls(**data)
