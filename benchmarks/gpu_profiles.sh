#!/usr/bin/env bash
# Per-model profiles on a one-GPU machine for the planner (clipper-bench plan). Featurizers in bf16 on
# GPU 0 (one and two replicas sharing it, two cores each), classifiers on CPU cores; KPCA-SVM at one,
# two and three replicas, since its replicas slow each other on the shared memory system (the planner
# reads each stage's service time at the replica count it plans; docs/planner.md).
#   bash benchmarks/gpu_profiles.sh OUTDIR        (profiles in OUTDIR/prof; about 6 minutes on the H200)
set -uo pipefail
out=${1:?OUTDIR}
common=(-d 5 --warmup 3 --idle_s 0 --results_dir "$out/prof")
python3 -m clipper_bench run -m vgg -r 1 2 -g 0 0 -p 2 -b 16 64 --precision bf16 "${common[@]}"
python3 -m clipper_bench run -m inception -r 1 2 -g 0 0 -p 2 -b 16 48 --precision bf16 "${common[@]}"
python3 -m clipper_bench run -m kpca-svm -r 1 2 3 -b 4 16 "${common[@]}"
python3 -m clipper_bench run -m lgbm -b 2 8 "${common[@]}"
