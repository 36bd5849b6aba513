#!/usr/bin/env python3
"""How much the local engine costs: noop throughput and latency, against the machine's floor.

Measures, on this machine, in one run:

* the floor: round trips of a plain TCP loopback echo, of a pyzmq DEALER/ROUTER echo between two
  Python processes, and through a bare three-process pyzmq relay (client -> relay -> echo worker
  and back, the shape of client -> frontend -> replica), 64-byte messages, one in flight;
* noop queries per second through the binary path and through REST, at model batch sizes 1 and 16
  (closed loop, ``--concurrency`` outstanding);
* the p50 latency a noop query sees at concurrency 1 (all of it is added by the serving path);
* the frontend's resident memory at the start and end of a ``--memory_s`` run at batch 16.

Usage: .venv/bin/python benchmarks/engine_overhead.py [--duration 10] [--memory_s 60]
Prints a Markdown table for docs/benchmarks.md and writes the experiments under --results_dir.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import socket
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import zmq

from clipper_bench.sweep.runner import ExperimentRunner
from clipper_bench.sweep.settings import RunSettings

ROUNDS = 5000


def _tcp_echo(port: int) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(64):
        conn.sendall(data)


def _zmq_echo(port: int) -> None:
    sock = zmq.Context().socket(zmq.ROUTER)
    sock.bind(f"tcp://127.0.0.1:{port}")
    while True:
        sock.send_multipart(sock.recv_multipart())


def _zmq_relay(front_port: int, back_port: int) -> None:
    """A bare relay, as the frontend sits between client and replica: ROUTER in, DEALER out."""
    ctx = zmq.Context()
    front, back = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    front.bind(f"tcp://127.0.0.1:{front_port}")
    back.connect(f"tcp://127.0.0.1:{back_port}")
    poller = zmq.Poller()
    poller.register(front, zmq.POLLIN)
    poller.register(back, zmq.POLLIN)
    while True:
        for sock, _ in poller.poll():
            (back if sock is front else front).send_multipart(sock.recv_multipart())


def _zmq_round_trips(port: int, msg: bytes) -> list[float]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(f"tcp://127.0.0.1:{port}")
    lat = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        sock.send(msg)
        sock.recv()
        lat.append(time.perf_counter() - t)
    sock.close(0)
    return lat


def relay_round_trip_us() -> float:
    """p50 round trip (us) through three processes: client -> bare pyzmq relay -> echo worker and back."""
    from clipper_bench.common.processes import free_ports

    front, back = free_ports(2)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_zmq_echo, args=(back,), daemon=True),
             ctx.Process(target=_zmq_relay, args=(front, back), daemon=True)]
    for p in procs:
        p.start()
    try:
        lat = _zmq_round_trips(front, b"x" * 64)
    finally:
        for p in procs:
            p.terminate()
    return float(np.percentile(lat[500:], 50) * 1e6)


def floor_round_trips_us() -> dict[str, float]:
    """p50 round trip (us) of a TCP and a pyzmq echo between two processes."""
    from clipper_bench.common.processes import free_ports

    tcp_port, zmq_port = free_ports(2)
    out = {}
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=_tcp_echo, args=(tcp_port,), daemon=True)
    p.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            c = socket.create_connection(("127.0.0.1", tcp_port))
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg, lat = b"x" * 64, []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        c.sendall(msg)
        got = 0
        while got < 64:
            got += len(c.recv(64))
        lat.append(time.perf_counter() - t)
    c.close()
    p.join(2)
    p.terminate()
    out["tcp"] = float(np.percentile(lat[500:], 50) * 1e6)

    p = ctx.Process(target=_zmq_echo, args=(zmq_port,), daemon=True)
    p.start()
    lat = _zmq_round_trips(zmq_port, msg)
    p.terminate()
    out["zmq"] = float(np.percentile(lat[500:], 50) * 1e6)
    out["relay"] = relay_round_trip_us()
    return out


def run(settings: RunSettings) -> dict:
    runner = ExperimentRunner(settings, ["benchmarks/engine_overhead.py"], say=lambda s: None)
    path = runner.run()
    line = json.loads((path / "runs.ndjson").read_text().splitlines()[-1])
    if line["status"] != "ok":
        raise SystemExit(f"benchmark configuration failed: {line['error']}")
    return line


def frontend_memory(results: Path, seconds: float) -> tuple[float, float]:
    """Frontend RSS (MiB) a few seconds into, and at the end of, a ``seconds``-long noop run at batch 16."""
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for proc in psutil.process_iter(["cmdline"]):
                cmd = " ".join(proc.info["cmdline"] or [])
                if cmd.startswith("clipper-bench frontend"):
                    try:
                        samples.append(proc.memory_info().rss / 2**20)
                    except psutil.NoSuchProcess:
                        pass
            stop.wait(1.0)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    run(RunSettings("noop", duration_s=seconds, warmup_s=2, batch_sizes=(16,), concurrency=(64,), results_dir=results))
    stop.set()
    t.join()
    # skip the first samples (start-up) and the last (teardown may have begun)
    return samples[3], samples[-2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--memory_s", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--results_dir", type=Path, default=Path("results/benchmarks"))
    args = parser.parse_args()
    logging.getLogger("clipper_admin").setLevel(logging.WARNING)
    logging.getLogger("clipper_bench.manager").setLevel(logging.WARNING)

    floor = floor_round_trips_us()
    rows = []
    for transport in ("binary", "rest"):
        for batch in (1, 16):
            line = run(RunSettings("noop", duration_s=args.duration, warmup_s=2, batch_sizes=(batch,),
                                   concurrency=(args.concurrency,), transport=transport, results_dir=args.results_dir))
            rows.append((transport, batch, args.concurrency, line))
        line = run(RunSettings("noop", duration_s=args.duration, warmup_s=2, batch_sizes=(1,), concurrency=(1,),
                               transport=transport, results_dir=args.results_dir))
        rows.append((transport, 1, 1, line))
    mem_start, mem_end = frontend_memory(args.results_dir, args.memory_s)

    print(f"floor round trip p50: TCP {floor['tcp']:.0f} us, pyzmq {floor['zmq']:.0f} us, three-process "
          f"pyzmq relay (client -> relay -> echo and back) {floor['relay']:.0f} us")
    binary_c1 = next(line for t, b, c, line in rows if t == "binary" and c == 1)
    print(f"noop binary at concurrency 1: p50 {binary_c1['latency_ms']['p50'] * 1000:.0f} us = "
          f"{binary_c1['latency_ms']['p50'] * 1000 / floor['relay']:.2f} x the relay (target <= 1.5)")
    print()
    print("| path | batch size | concurrency | queries/s | p50 ms | p99 ms | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for transport, batch, conc, line in rows:
        lat = line["latency_ms"]
        print(f"| {transport} | {batch} | {conc} | {line['throughput_qps']:,.0f} | {lat['p50']:.3f} | "
              f"{lat['p99']:.3f} | {line['num_errors']} |")
    print()
    print(f"frontend RSS over a {args.memory_s:.0f} s binary run at batch 16: "
          f"{mem_start:.1f} MiB near the start, {mem_end:.1f} MiB at the end")


if __name__ == "__main__":
    main()
