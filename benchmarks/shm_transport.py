"""The image data path without a model: noop-image through --transport binary and shm, same run.

    .venv/bin/python benchmarks/shm_transport.py [--batch_sizes 8 32] [-d 10] [-n 1]

For each batch size it runs `clipper-bench run -m noop-image` once per transport, one replica, and
prints images/s, p50 and p99 and the shm / binary ratio. Each query carries a 224x224x3 uint8 image
(150,528 bytes) over the binary path, or a 16-byte descriptor of it with shm.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(transport: str, batch_sizes: list[int], args, out: Path) -> dict[int, dict]:
    results = out / transport
    cmd = [sys.executable, "-m", "clipper_bench", "run", "-m", "noop-image", "--transport", transport,
           "-b", *map(str, batch_sizes), "-n", str(args.num_clients), "-d", str(args.duration),
           "--warmup", "2", "--idle_s", "0", "--results_dir", str(results)]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    lines = [json.loads(x) for p in results.glob("*/runs.ndjson") for x in p.read_text().splitlines()]
    return {line["batch_size"]: line for line in lines}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("-n", "--num_clients", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {t: measure(t, args.batch_sizes, args, Path(tmp)) for t in ("binary", "shm")}
    print("| batch | binary images/s | binary p50 / p99 ms | shm images/s | shm p50 / p99 ms | shm / binary |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for b in args.batch_sizes:
        bi, sh = runs["binary"][b], runs["shm"][b]
        lat = [f"{r['latency_ms']['p50']:.2f} / {r['latency_ms']['p99']:.2f}" for r in (bi, sh)]
        print(f"| {b} | {bi['throughput_qps']:,.0f} | {lat[0]} | {sh['throughput_qps']:,.0f} | {lat[1]} | "
              f"{sh['throughput_qps'] / bi['throughput_qps']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
