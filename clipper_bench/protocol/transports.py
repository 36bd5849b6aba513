"""The ways queries reach a frontend: the values of ``--transport``, named once.

Engines declare which they serve (``Engine.transports``) and which ``auto`` means for them
(``Engine.resolve_transport``); the load clients pick their code path by it. A style test keeps
transport names out of comparisons everywhere else (tests/test_style.py).
"""

from __future__ import annotations

from enum import StrEnum


class Transport(StrEnum):
    """A query path. Members are strings: settings and records keep the plain name."""

    AUTO = "auto"  # each engine's own choice (see Engine.resolve_transport)
    BINARY = "binary"  # raw tensors over ZeroMQ (protocol.binary)
    SHM = "shm"  # descriptors over the binary path, inputs in shared memory (protocol.shm)
    REST = "rest"  # Clipper's JSON API over HTTP
    RAY_HANDLE = "ray_handle"  # Ray Serve deployment handles, no HTTP

    @property
    def uses_binary_port(self) -> bool:
        """Whether queries go to the frontend's binary port (else its query port or a handle)."""
        return self in (Transport.BINARY, Transport.SHM)


TRANSPORT_CHOICES = [t.value for t in Transport if t is not Transport.RAY_HANDLE]  # what --transport takes
