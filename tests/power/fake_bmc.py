"""Hardware boundaries for the whole-machine sources: a small Redfish service (the schema's
ServiceRoot, Chassis collection, Chassis, Power or EnvironmentMetrics resources, HTTP basic
authentication), a fake ``ipmitool`` printing real DCMI output, and a wall-meter script."""

from __future__ import annotations

import base64
import json
import math
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

USER, PASSWORD = "admin", "pw-Zq8-never-recorded"


def watts_at(t: float, refresh_s: float) -> float:
    """The fake BMC's reading: it changes every ``refresh_s`` (a new value each refresh)."""
    return 300.0 + (int(t / refresh_s) % 7) * 10.0


class RedfishService:
    """A Redfish service on 127.0.0.1 (a port the OS picks) in a thread of the test process."""

    def __init__(self, refresh_s: float = 0.3, resource: str = "Power", password: str = PASSWORD) -> None:
        self.refresh_s, self.resource, self.password = refresh_s, resource, password
        self.requests: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                service.requests.append(self.path)
                doc, status = service.answer(self.path.rstrip("/"), self.headers.get("Authorization"))
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # bound before its port is read
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RedfishService:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, auth: str | None) -> tuple[dict, int]:
        root = "/redfish/v1"
        if path == root:  # the service root answers without credentials, as the standard says
            return {"@odata.id": f"{root}/", "RedfishVersion": "1.15.0", "Chassis": {"@odata.id": f"{root}/Chassis"},
                    "Links": {"Sessions": {"@odata.id": f"{root}/SessionService/Sessions"}}}, 200
        expected = "Basic " + base64.b64encode(f"{USER}:{self.password}".encode()).decode()
        if auth != expected:
            return {"error": {"code": "Base.1.0.NoValidSession"}}, 401
        chassis = f"{root}/Chassis/1U"
        docs = {
            f"{root}/SessionService/Sessions": {"Members": []},
            f"{root}/Chassis": {"Members": [{"@odata.id": chassis}], "Members@odata.count": 1},
            chassis: {"Id": "1U", "ChassisType": "RackMount", self.resource: {"@odata.id": f"{chassis}/{self.resource}"}},
        }
        watts = watts_at(time.time(), self.refresh_s)
        if self.resource == "Power":
            docs[f"{chassis}/Power"] = {"PowerControl": [{"MemberId": "0", "Name": "System Power Control",
                                                          "PowerConsumedWatts": watts}]}
        else:
            docs[f"{chassis}/EnvironmentMetrics"] = {"PowerWatts": {"Reading": watts}}
        return (docs[path], 200) if path in docs else ({"error": "not found"}, 404)


IPMITOOL = '''#!{python}
import json, os, sys, time
log = os.environ["FAKE_IPMI_LOG"]
with open(log, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "password_ok": os.environ.get("IPMI_PASSWORD") == {password!r}}}) + "\\n")
if sys.argv[-3:] != ["dcmi", "power", "reading"]:
    sys.exit("unsupported")
now = time.time()
stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(1700000000 + int(now / 0.3)))  # a new reading each 0.3 s
print("""
    Instantaneous power reading:                   {{w}} Watts
    Minimum during sampling period:                 40 Watts
    Maximum during sampling period:                460 Watts
    Average power reading over sample period:      218 Watts
    IPMI timestamp:                           {{stamp}}
    Sampling period:                          00000001 Seconds.
    Power reading state is:                   activated
""".format(w=300 + int(now / 0.3) % 7 * 10, stamp=stamp))
'''


def write_ipmitool(directory: Path, password: str = PASSWORD) -> Path:
    """A fake ``ipmitool`` in ``directory``: it logs its argv and whether IPMI_PASSWORD was right."""
    path = directory / "ipmitool"
    path.write_text(IPMITOOL.format(python=sys.executable, password=password))
    path.chmod(0o755)
    return path


METER = '''
import math, os, sys, time
tick, skew, pid_file = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
open(pid_file, "w").write(str(os.getpid()))
print("timestamp,watts,channel", flush=True)  # a header, skipped
next_t = time.time()
while True:
    now = time.time()
    print(f"{now + skew:.6f},{250.0 + 50.0 * math.sin(2 * math.pi * now / 7):.6f},psu1", flush=True)
    print(f"{now + skew:.6f},100.0,psu2", flush=True)
    next_t += tick
    time.sleep(max(0.0, next_t - time.time()))
'''


def energy_between(a: float, b: float) -> float:
    """The wall meter's known energy from ``a`` to ``b`` (both cables): 250 + 50 sin(2 pi t / 7) W on
    psu1, 100 W on psu2."""
    w = 2 * math.pi / 7
    return 350.0 * (b - a) - 50.0 / w * (math.cos(w * b) - math.cos(w * a))


def write_meter(directory: Path) -> Path:
    """The meter script (run as ``python meter.py TICK_S CLOCK_SKEW_S PID_FILE``)."""
    path = directory / "meter.py"
    path.write_text(METER)
    return path
