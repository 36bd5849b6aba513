#!/usr/bin/env bash
# Plan image_driver_1 on a one-GPU machine for several p99 bounds at one rate in one `plan` command,
# validate each plan and its coarse baseline, and build the planner report.
#   bash benchmarks/gpu_plan.sh OUTDIR [RATE] [BOUNDS]
# RATE defaults to 600 q/s (Poisson), BOUNDS to 150,500 (ms, comma-separated; 150,250,500 adds a point).
# Profiles are read from OUTDIR/prof, measured first by benchmarks/gpu_profiles.sh when that is absent.
# Writes OUTDIR/plans/plan-image_driver_1_gpu-slo<MS>.yaml, the validations under OUTDIR/plans/slo<MS>/,
# and the report in OUTDIR/report (copy it to docs/reports/planner-h200).
set -uo pipefail
out=${1:?OUTDIR}; rate=${2:-600}; bounds=${3:-150,500}
here=$(cd "$(dirname "$0")" && pwd)
if ! ls "$out"/prof/*/experiment.json > /dev/null 2>&1; then
  bash "$here/gpu_profiles.sh" "$out"
fi
python3 -m clipper_bench plan "$out/prof" --pipeline image_driver_1_gpu --rate "$rate" --slo_p99_ms "$bounds" \
    --arrival poisson --minimize cores --validate -d 6 --warmup 3 --repeats 3 --results_dir "$out/plans" \
    | tee "$out/plan.txt"
python3 -m clipper_bench report "$out/plans" --out "$out/report" > "$out/report.txt"
