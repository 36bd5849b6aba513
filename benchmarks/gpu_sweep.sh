#!/usr/bin/env bash
# The GPU sweeps of docs/benchmarks.md, as run on the lent H100 machine (device tool):
#   bash benchmarks/gpu_sweep.sh MODEL FRAMEWORK OUTDIR [extra run flags...]
# For each precision (fp32, bf16) it runs `run -r 1 -b 1 8 32 -g 0 -p 4 --baseline`.
# FRAMEWORK keras uses the backend in KERAS_BACKEND (jax there: no TensorFlow on that machine).
set -uo pipefail
model=$1; framework=$2; out=$3; shift 3
for precision in fp32 bf16; do
  python3 -m clipper_bench run -m "$model" --framework "$framework" --precision "$precision" \
    -r 1 -b 1 8 32 -g 0 -p 4 -d 8 --warmup 3 --baseline --baseline_s 4 \
    --results_dir "$out" "$@"
done
