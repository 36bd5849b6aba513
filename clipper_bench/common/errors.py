"""The errors every layer shares."""

from __future__ import annotations


class ClipperBenchError(Exception):
    """Base of clipper-bench's own errors."""


class UsageError(ClipperBenchError):
    """A problem with the command line or the machine that the user can fix; one line, no trace."""
