"""Starting, naming and reaping the engine's processes.

Every child runs in its own session (so a Ctrl-C reaches only the driver, which then stops the
children in order), writes to its own log file, dies with its parent (see :func:`die_with_parent`),
and names itself so that ``ps`` and ``htop`` show what it is.

A child stopped (SIGSTOP, a debugger) when the driver is killed must die too, and a stopped process
acts on no signal but SIGKILL until it is continued: a SIGTERM sent as the parent-death signal would
stay pending for ever. So the parent-death signal is SIGCONT, which wakes a stopped child; its
handler, seeing the parent gone, sends the child SIGTERM (its orderly exit: a load client removes its
shared-memory region, the sampler its live file) and arms SIGALRM in the kernel, whose default
action ends the child if that exit stalls. A driver that lives stops its children in order
(:func:`reap`: SIGTERM and SIGCONT, then SIGKILL).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from socket import socket as socket_type

PARENT_PID_ENV = "CLIPPER_BENCH_PARENT_PID"
_PR_SET_PDEATHSIG = 1


EXPERIMENT_ENV = "CLIPPER_BENCH_EXPERIMENT"  # the experiment id, put in every child's title


def set_title(title: str) -> None:
    """Set this process's title, with the experiment id when it runs for one, so that two runs on
    one machine are told apart in ``ps`` and ``htop``."""
    experiment = os.environ.get(EXPERIMENT_ENV)
    try:
        import setproctitle

        setproctitle.setproctitle(f"{title} [{experiment}]" if experiment else title)
    except ImportError:  # pragma: no cover - setproctitle is a dependency
        pass


ORPHAN_EXIT_WITHIN_S = 5  # an orphan's orderly exit may take this long before the kernel ends it


def _exit_as_orphan() -> None:
    """The parent is gone: exit in order (SIGTERM) and be ended by SIGALRM if that stalls."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # default action: terminate, no Python needed
    signal.alarm(ORPHAN_EXIT_WITHIN_S)
    os.kill(os.getpid(), signal.SIGTERM)


def die_with_parent(parent_pid: int | None) -> None:
    """Make this process exit when ``parent_pid`` (its parent) dies, also when it is stopped then
    (Linux ``PR_SET_PDEATHSIG`` with SIGCONT; see the module's docstring). Call from the main thread,
    first thing; if the parent is already gone, exit now."""
    if parent_pid is None or not sys.platform.startswith("linux"):
        return

    def on_continue(signum: int, frame: object) -> None:
        if os.getppid() != parent_pid:  # else an ordinary continue (job control, a debugger)
            _exit_as_orphan()

    signal.signal(signal.SIGCONT, on_continue)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGCONT, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        _exit_as_orphan()


def become_child(title: str) -> None:
    """Call first thing in a child process: set its title (see :func:`set_title`) and die with the parent."""
    set_title(title)
    parent = os.environ.get(PARENT_PID_ENV)
    if parent:
        die_with_parent(int(parent))


@dataclass
class ChildProcess:
    """A started child, its name and where it logs."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the child has not exited yet."""
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the child's log (empty if it cannot be read)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    stdin_pipe: bool = False,
) -> ChildProcess:
    """Start ``argv`` in its own session, logging stdout and stderr to ``log_path``.

    With ``stdin_pipe`` the child's stdin is a pipe the parent can write to (``popen.stdin``).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    child_env = dict(os.environ if env is None else env)
    child_env[PARENT_PID_ENV] = str(os.getpid())
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    with open(log_path, "ab") as log_file:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=child_env,
            start_new_session=True,
        )
    return ChildProcess(name, popen, log_path)


def python_module_argv(module: str, *args: str) -> list[str]:
    """The command that runs ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def reap(children: Sequence[ChildProcess], timeout_s: float = 5.0) -> None:
    """Stop children: SIGTERM, wait up to ``timeout_s``, then SIGKILL what is left, and wait."""
    for child in children:
        if child.alive():
            try:
                child.popen.send_signal(signal.SIGTERM)
                child.popen.send_signal(signal.SIGCONT)  # a stopped child acts on SIGTERM only once continued
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout_s
    for child in children:
        remaining = max(deadline - time.monotonic(), 0.0)
        try:
            child.popen.wait(remaining)
        except subprocess.TimeoutExpired:
            try:
                child.popen.kill()
            except ProcessLookupError:
                pass
            child.popen.wait()


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports that were free a moment ago on ``host``.

    Only for tools and tests that cannot bind themselves: another process may take such a port
    before it is bound. The engine binds first (port 0, or a wanted port with a fallback; see
    :func:`listen_tcp`) and reports the ports it holds."""
    import socket

    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# What each of the local engine's ports is, for messages: the key is also its flag, --<key>_port.
PORT_LABELS = {"query": "query", "admin": "admin", "rpc": "container RPC", "binary": "binary query",
               "metrics": "Prometheus metrics"}


def listen_tcp(host: str, port: int, backlog: int = 128) -> socket_type:
    """A TCP socket bound to ``host``:``port`` (0: a port the OS picks) and listening, with
    SO_REUSEADDR; OSError (EADDRINUSE) when the port is taken."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=backlog)


def port_taken_message(what: str, port: int, host: str, reason: str = "address already in use") -> str:
    """One line for a port that was asked for and is taken: which port, and how to get past it."""
    label = PORT_LABELS.get(what, what)
    if what == "metrics":
        fix = ("pass another --metrics_port (0: none), or leave the flag out: the default, 1390, moves to a "
               "free port when it is taken")
    else:
        fix = f"pass another --{what}_port, or leave the flag out: the default moves to a free port when it is taken"
    return f"port {port} ({label}) on {host} is in use ({reason}): stop what holds it, or {fix}"
