#!/usr/bin/env python3
"""CPU cost of the power sampler: its process's CPU time over a window, as a share of one core.

Usage: .venv/bin/python benchmarks/sampler_overhead.py [--seconds 30] [--interval_ms 100]

Samples every source this machine has, plus a fake 4-domain powercap tree (so RAPL's file reads
are counted where the machine has no powercap) and, with --fake_gpus N, a fake NVML with N GPUs
(the tests' fake: a JSON file read per call, which costs more than the real library's calls).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipper_bench.power.sampler import PowerMonitor, SamplerConfig  # noqa: E402
from tests.power import fake_pynvml  # noqa: E402
from tests.power.fake_powercap import FakePowercap  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval_ms", type=float, default=100.0)
    parser.add_argument("--fake_gpus", type=int, default=1)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    gpus: tuple[int, ...] = ()
    if args.fake_gpus:
        os.environ["CLIPPER_BENCH_NVML_MODULE"] = "tests.power.fake_pynvml"
        os.environ["FAKE_NVML_STATE"] = str(tmp / "nvml.json")
        fake_pynvml.write_state(tmp / "nvml.json", [{"watts": 300.0}] * args.fake_gpus)
        gpus = tuple(range(args.fake_gpus))
    with FakePowercap(tmp / "powercap", tick_s=0.05):
        start = time.time() + 1.0
        cfg = SamplerConfig(interval_s=args.interval_ms / 1000, start_wall=start, end_wall=start + args.seconds,
                            out_path=str(tmp / "samples.json"), gpus=gpus, powercap_root=str(tmp / "powercap"),
                            cpu_groups={"all": sorted(os.sched_getaffinity(0))})
        monitor = PowerMonitor(cfg)
        monitor.start()
        proc = psutil.Process(monitor._process.pid)
        while time.time() < start:
            time.sleep(0.01)
        t0 = sum(proc.cpu_times()[:2])
        time.sleep(args.seconds - 0.5)
        t1 = sum(proc.cpu_times()[:2])
        doc = monitor.result()
    share = (t1 - t0) / (args.seconds - 0.5)
    n = {k: len(v["t"]) for k, v in doc["series"].items()}
    print(f"sampler at {args.interval_ms:g} ms over {args.seconds:g} s: {100 * share:.2f}% of one core "
          f"(sources {doc['status']}; samples per channel {n})")


if __name__ == "__main__":
    main()
