#!/usr/bin/env bash
# The image models as a user runs them: default flags plus --precision bf16 -g 0 -p 4, one replica,
# then two replicas sharing GPU 0 (-g 0 0). Prints each configuration's line and the settings the
# defaults resolved to.   bash benchmarks/gpu_defaults.sh OUTDIR [-d 6]
set -uo pipefail
out=${1:?OUTDIR}; shift
for model in vgg inception; do
    python3 -m clipper_bench run -m "$model" --precision bf16 -g 0 -p 4 -r 1 -b 8 32 --warmup 2 --idle_s 0 \
        --results_dir "$out/$model-r1" "$@" 2>&1 | grep -E '^\[[0-9]+/[0-9]+\] [a-z0-9-]+:'
    python3 -m clipper_bench run -m "$model" --precision bf16 -g 0 0 -p 4 -r 2 -b 8 32 --warmup 2 --idle_s 0 \
        --results_dir "$out/$model-r2" "$@" 2>&1 | grep -E '^\[[0-9]+/[0-9]+\] [a-z0-9-]+:'
done
python3 - "$out" <<'PY'
import json, sys, pathlib
for p in sorted(pathlib.Path(sys.argv[1]).glob("*/*/configs/*.json")):
    r = json.loads(p.read_text())
    if "settings" not in r:
        continue
    s = r["settings"]
    print(p.stem, {k: s.get(k) for k in ("transport", "batches_in_flight", "overlap_batches", "cuda_graphs", "num_clients")})
PY
