"""Whole-machine power from a BMC's Redfish service, through DMTF's ``redfish`` client library.

``--power_meter redfish:https://BMC`` finds the first chassis that reports power;
``redfish:https://BMC/redfish/v1/Chassis/<id>`` names one. The chassis' power is read from its
``Power`` resource (``PowerControl[].PowerConsumedWatts``, the first entry with a value: the
chassis total) or, on services that dropped it, from ``EnvironmentMetrics`` (``PowerWatts.Reading``).
The client logs in with HTTP basic authentication on every request (no session is left open on the
BMC when the sampler is killed); credentials come from a file or the environment
(:mod:`.credentials`). Every vendor error is translated here into SourceUnavailable with a reason.
"""

from __future__ import annotations

import warnings
from typing import Any
from urllib.parse import urlsplit

from .credentials import load_credentials
from .polled import PolledSource
from .source import Reading, SourceUnavailable

SERVICE_ROOT = "/redfish/v1"
TIMEOUT_S = 5
MAX_RETRY = 1  # redfish 3.3 raises RetriesExhaustedError after a success when max_retry is 0


def check_url(url: str) -> str | None:
    """What is wrong with a ``redfish:URL`` target, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL: pass e.g. redfish:https://10.0.0.5"
    if parts.username or parts.password:
        return ("credentials do not go in the URL (nor anywhere on the command line): pass "
                "--power_meter_credentials FILE or set CLIPPER_BENCH_REDFISH_USER and CLIPPER_BENCH_REDFISH_PASSWORD")
    path = parts.path.rstrip("/")
    if path and not path.startswith(SERVICE_ROOT):
        return f"{url!r}: the path must be empty or a Redfish resource under {SERVICE_ROOT} (a chassis)"
    return None


def split_url(url: str) -> tuple[str, str | None]:
    """The service's base URL and the chassis path the URL names (None: find one)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}", path if path.startswith(f"{SERVICE_ROOT}/Chassis/") else None


def power_reading(doc: dict[str, Any], path: str) -> tuple[float, str] | None:
    """The chassis watts in a Power or EnvironmentMetrics resource, and where in it they were."""
    for k, control in enumerate(doc.get("PowerControl") or []):
        watts = control.get("PowerConsumedWatts") if isinstance(control, dict) else None
        if isinstance(watts, (int, float)):
            return float(watts), f"{path} PowerControl[{k}].PowerConsumedWatts"
    watts = (doc.get("PowerWatts") or {}).get("Reading") if isinstance(doc.get("PowerWatts"), dict) else None
    if isinstance(watts, (int, float)):
        return float(watts), f"{path} PowerWatts.Reading"
    return None


class RedfishSource(PolledSource):
    """The chassis power a BMC reports over Redfish, polled every ``poll_s``."""

    kind = "redfish"
    name = "redfish"  # the first of its kind; the next are "redfish2", ...

    def __init__(self, url: str, name: str = "redfish", credentials_file: str | None = None,
                 poll_s: float = 1.0) -> None:
        super().__init__(name, poll_s)
        self.url = url
        self.credentials_file = credentials_file
        self.client: Any = None
        self.power_path: str | None = None
        self.where = ""

    def connect(self) -> None:
        """Log in and find the chassis power resource; SourceUnavailable with the reason otherwise."""
        problem = check_url(self.url)
        if problem:
            raise SourceUnavailable(problem)
        try:
            import redfish
        except ImportError as exc:
            raise SourceUnavailable("no Redfish client: pip install 'redfish>=3.2,<4'") from exc
        creds = load_credentials("redfish", self.credentials_file)
        base, chassis = split_url(self.url)
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")  # BMCs serve self-signed certificates
        try:
            self.client = redfish.redfish_client(base_url=base, username=creds.user, password=creds.password,
                                                 default_prefix=SERVICE_ROOT + "/", timeout=TIMEOUT_S, max_retry=MAX_RETRY)
            self.client.login(auth="basic")
        except Exception as exc:  # noqa: BLE001 - the library's errors, translated
            raise SourceUnavailable(_login_problem(base, exc)) from None
        candidates = [chassis] if chassis else self._chassis_members()
        for path in candidates:
            found = self._power_resource(path)
            if found:
                self.power_path, self.where = found
                return
        raise SourceUnavailable(f"no chassis at {base} reports its power (looked at {', '.join(candidates) or 'none'}: "
                                "neither Power.PowerControl[].PowerConsumedWatts nor EnvironmentMetrics.PowerWatts)")

    def _get(self, path: str) -> dict[str, Any]:
        resp = self.client.get(path)
        if resp.status == 401:
            raise SourceUnavailable(f"the BMC refused the credentials for {path} (HTTP 401)")
        if resp.status != 200:
            raise SourceUnavailable(f"GET {path} answered HTTP {resp.status}")
        doc = resp.dict
        if not isinstance(doc, dict):
            raise SourceUnavailable(f"GET {path} did not answer a JSON object")
        return doc

    def _chassis_members(self) -> list[str]:
        doc = self._get(f"{SERVICE_ROOT}/Chassis")
        return [m["@odata.id"] for m in doc.get("Members") or [] if isinstance(m, dict) and "@odata.id" in m]

    def _power_resource(self, chassis: str) -> tuple[str, str] | None:
        """The chassis' resource that holds its power, and the field read, or None."""
        doc = self._get(chassis)
        for key in ("Power", "EnvironmentMetrics"):
            link = doc.get(key)
            path = link.get("@odata.id") if isinstance(link, dict) else None
            if not path:
                continue
            try:
                found = power_reading(self._get(path), path)
            except SourceUnavailable:
                continue
            if found:
                return path, found[1]
        return None

    def poll_once(self) -> list[Reading]:
        """The chassis watts, now."""
        assert self.power_path is not None
        found = power_reading(self._get(self.power_path), self.power_path)
        if found is None:
            raise SourceUnavailable(f"{self.where} is no longer in {self.power_path}")
        return [Reading(f"node:{self.name}", power_w=found[0])]

    def disconnect(self) -> None:
        """Close the client's HTTP session (basic authentication: nothing to log out of)."""
        if self.client is not None:
            try:
                self.client.logout()
            except Exception:  # noqa: BLE001 - closing only
                pass
            self.client = None

    def info(self) -> dict[str, object]:
        """The service, the resource and field read, how the client authenticated; never the password."""
        creds_from = self.credentials_file or "environment"
        return {**super().info(), "url": self.url, "read": self.where, "auth": "basic", "credentials_from": creds_from}


def _login_problem(base: str, exc: Exception) -> str:
    name = type(exc).__name__
    if name == "InvalidCredentialsError":
        return f"the BMC at {base} refused the credentials (HTTP 401): check the user and password"
    if name in ("ServerDownOrUnreachableError", "RetriesExhaustedError", "ConnectionError"):
        return f"no Redfish service answers at {base}{SERVICE_ROOT}/ ({name})"
    return f"could not log in to the Redfish service at {base}: {name}: {exc}"
