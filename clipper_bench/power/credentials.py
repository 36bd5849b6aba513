"""A BMC's user name and password, from a file or the environment, never from the command line.

``--power_meter_credentials FILE`` names a file of ``user=NAME`` and ``password=SECRET`` lines
(``#`` starts a comment); without it, ``CLIPPER_BENCH_<KIND>_USER`` and ``CLIPPER_BENCH_<KIND>_PASSWORD``
(``KIND`` is ``REDFISH`` or ``IPMI``) are read. Only the file's path and the variables' names are
ever recorded; the password lives in memory, in the request that carries it, and nowhere else (it
is left out of every ``repr`` and message).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from .source import SourceUnavailable

USER_KEYS = ("user", "username")
PASSWORD_KEYS = ("password",)


@dataclass(frozen=True)
class Credentials:
    """A user and password for a BMC; ``where`` says where they came from (a path or variable names)."""

    user: str
    password: str = field(repr=False)
    where: str = ""


def env_names(kind: str) -> tuple[str, str]:
    """The environment variables that hold ``kind``'s user and password."""
    prefix = f"CLIPPER_BENCH_{kind.upper()}"
    return f"{prefix}_USER", f"{prefix}_PASSWORD"


def _read_file(path: Path) -> Credentials:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SourceUnavailable(f"cannot read --power_meter_credentials {path}: {exc.strerror or exc}") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:  # the line itself is never quoted: it may be a password
            raise SourceUnavailable(f"--power_meter_credentials {path}: line {number} is not KEY=VALUE "
                                    "(the file holds user=NAME and password=SECRET lines)")
        values[key.strip().lower()] = value.strip()
    user = next((values[k] for k in USER_KEYS if k in values), None)
    password = next((values[k] for k in PASSWORD_KEYS if k in values), None)
    if user is None or password is None:
        missing = " and ".join(k for k, v in (("user=NAME", user), ("password=SECRET", password)) if v is None)
        raise SourceUnavailable(f"--power_meter_credentials {path} has no {missing} line")
    return Credentials(user, password, str(path))


def load_credentials(kind: str, path: str | None, required: bool = True) -> Credentials | None:
    """The credentials for a ``kind`` source: from ``path`` when given, else the environment.
    Missing and ``required``: SourceUnavailable saying where to put them; else None."""
    if path:
        return _read_file(Path(path))
    user_var, password_var = env_names(kind)
    user, password = os.environ.get(user_var), os.environ.get(password_var)
    if user is not None and password is not None:
        return Credentials(user, password, f"${user_var}, ${password_var}")
    if not required:
        return None
    _missing(kind)


def _missing(kind: str) -> NoReturn:
    user_var, password_var = env_names(kind)
    raise SourceUnavailable(f"no credentials for the {kind} BMC: pass --power_meter_credentials FILE (user=NAME "
                            f"and password=SECRET lines) or set {user_var} and {password_var}; never on the "
                            "command line")
