#!/usr/bin/env bash
# Plan image_driver_1 on a one-GPU machine from the profiles benchmarks/gpu_profiles.sh measured, for
# two p99 bounds at one rate, and validate each plan and its coarse baseline.
#   bash benchmarks/gpu_plan.sh PROFILES_DIR OUTDIR [RATE]
set -uo pipefail
prof=${1:?PROFILES_DIR}; out=${2:?OUTDIR}; rate=${3:-600}
for slo in 150 500; do
  python3 -m clipper_bench plan "$prof" --pipeline image_driver_1_gpu --rate "$rate" --slo_p99_ms "$slo" \
      --arrival poisson --minimize cores --validate -d 6 --warmup 3 --repeats 3 \
      --results_dir "$out/slo$slo" --out "$out/plan-slo$slo.yaml"
done
