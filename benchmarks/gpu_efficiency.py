"""How much of a GPU model's own speed survives serving: one run, one GPU, three levels.

For each model, precision and batch size it measures, on the same GPU in the same run:

* ``limit``: the forward pass alone, data already on the GPU (torchvision, channels_last, bf16
  autocast for bf16; replayed as a captured CUDA graph in the ``--graphs on`` rows), timed with
  CUDA events: what the model can do;
* ``baseline``: the replica's own ``submit``/``finish`` in-process (copy into pinned memory, upload,
  forward, download, base64), two batches in flight as a replica with ``--batches_in_flight 2``;
* ``served``: ``clipper-bench run`` through the local engine, one replica pinned to ``-p`` cores
  and GPU 0, for each ``--transports`` value (closed loop, default concurrency);

and prints a Markdown table of images/s with each level's ratio to the limit. Run on a GPU machine:

    python3 benchmarks/gpu_efficiency.py --models vgg inception --precisions bf16 --out results/gpu-eff
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def forward_limit(model, batch_size: int, seconds: float) -> float:
    """Images/s of the model's forward pass on a batch already on the GPU."""
    import torch

    x = torch.randint(0, 256, (batch_size, model.side, model.side, 3), dtype=torch.uint8, device="cuda")
    with torch.inference_mode():
        warm_end = time.perf_counter() + 1.0  # clocks up, kernels chosen
        while time.perf_counter() < warm_end:
            model.forward_on_device(x)
            torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        n, t0 = 0, time.perf_counter()
        start.record()
        while time.perf_counter() - t0 < seconds:
            for _ in range(10):
                model.forward_on_device(x)
            n += 10
            torch.cuda.synchronize()
        end.record()
        end.synchronize()
    return n * batch_size / (start.elapsed_time(end) / 1000)


def baseline(model, spec, batch_size: int, seconds: float) -> float:
    """Images/s of the replica's own path, in-process."""
    import numpy as np

    from clipper_bench.containers.baseline import _timed_batches

    pool = [np.frombuffer(x.tobytes(), dtype=np.uint8) for x in spec.make_inputs(batch_size * 4)]
    batches = [pool[i * batch_size:(i + 1) * batch_size] for i in range(4)]
    _timed_batches(model, batches, 1.0)
    times, elapsed = _timed_batches(model, batches, seconds)
    return batch_size * len(times) / elapsed


def served(name: str, precision: str, overlap: str, graphs: str, batch_sizes: list[int], transport: str, args,
           out: Path) -> dict[int, dict]:
    """Run the sweep through the local engine; return each batch size's runs.ndjson line."""
    results = out / f"served-{name}-{precision}-overlap-{overlap}-graphs-{graphs}-{transport}"
    cmd = [sys.executable, "-m", "clipper_bench", "run", "-m", name, "--precision", precision,
           "--overlap_batches", overlap, "--cuda_graphs", graphs,
           "-r", "1", "-b", *map(str, batch_sizes), "-g", "0", "-p", str(args.cores), "-d", str(args.duration),
           "--warmup", str(args.warmup), "--idle_s", "0", "--transport", transport,
           "--batches_in_flight", str(args.batches_in_flight), "--results_dir", str(results), *args.run_flags]
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    print(proc.stdout[-3000:], proc.stderr[-2000:], flush=True)
    newest = max(results.glob("*/runs.ndjson"), default=None)  # not an earlier run's, in the same --out
    lines = [json.loads(x) for x in newest.read_text().splitlines()] if newest else []
    return {line["batch_size"]: line for line in lines}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg", "inception"])
    parser.add_argument("--precisions", nargs="+", default=["bf16", "fp32"])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--transports", nargs="+", default=["binary", "shm"])
    parser.add_argument("--overlap", nargs="+", choices=["off", "on"], default=["off", "on"],
                        help="--overlap_batches values to measure")
    parser.add_argument("--graphs", nargs="+", choices=["off", "on"], default=["off", "on"],
                        help="--cuda_graphs values to measure (the limit is measured the same way)")
    parser.add_argument("--batches_in_flight", type=int, default=0, help="0: the driver's auto (3 for these models on a GPU)")
    parser.add_argument("--cores", type=int, default=4, help="cores of the one replica (-p)")
    parser.add_argument("--seconds", type=float, default=4.0, help="per limit and baseline measurement")
    parser.add_argument("--duration", type=float, default=6.0, help="-d of the served runs")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "gpu-efficiency")
    parser.add_argument("run_flags", nargs="*", help="more flags for clipper-bench run (after --)")
    args = parser.parse_args()
    import torch

    from clipper_bench.containers.models import ModelOptions, get_model_spec

    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0)
    rows = []
    for name in args.models:
        spec = get_model_spec(name)
        for precision in args.precisions:
            for overlap, graphs in [(o, g) for o in args.overlap for g in args.graphs]:
                model = spec.build(ModelOptions(precision=precision, overlap_batches=overlap, cuda_graphs=graphs))
                levels = {b: {"limit": forward_limit(model, b, args.seconds),
                              "baseline": baseline(model, spec, b, args.seconds)} for b in args.batch_sizes}
                del model
                torch.cuda.empty_cache()
                for transport in args.transports:
                    lines = served(name, precision, overlap, graphs, args.batch_sizes, transport, args, args.out)
                    for b in args.batch_sizes:
                        line = lines.get(b) or {}
                        levels[b][f"served {transport}"] = (line.get("throughput_qps") if line.get("status") == "ok"
                                                            else None)
                rows += [{"model": name, "precision": precision, "overlap": overlap, "graphs": graphs, "batch_size": b, **levels[b]}
                         for b in args.batch_sizes]
    (args.out / "gpu_efficiency.json").write_text(json.dumps({"device": device, "args": vars(args) | {"out": str(args.out)},
                                                              "rows": rows}, indent=1))
    print(f"\n{device}, one replica with {args.cores} cores, --batches_in_flight {args.batches_in_flight}, "
          "images/s (ratio to the forward-only limit)\n")
    levels = ["limit", "baseline", *(f"served {t}" for t in args.transports)]
    print("| model | precision | overlap | CUDA graphs | batch | " + " | ".join(levels) + " |")
    print("| --- | --- | --- | --- | ---: | " + " | ".join("---:" for _ in levels) + " |")
    for r in rows:
        cells = []
        for level in levels:
            v = r[level]
            cells.append("failed" if v is None else f"{v:,.0f}" + ("" if level == "limit" else f" ({v / r['limit']:.2f})"))
        print(f"| {r['model']} | {r['precision']} | {r['overlap']} | {r['graphs']} | {r['batch_size']} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
