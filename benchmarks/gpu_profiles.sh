#!/usr/bin/env bash
# Per-model profiles on a one-GPU machine for the planner (clipper-bench plan), and the image_driver_1
# pipeline measured beside them. Featurizers in bf16 on GPU 0 (one and two replicas sharing it, two
# cores each), classifiers on CPU cores.
#   bash benchmarks/gpu_profiles.sh OUTDIR
set -uo pipefail
out=${1:?OUTDIR}
common=(-d 5 --warmup 3 --idle_s 0 --results_dir "$out/prof")
python3 -m clipper_bench run -m vgg -r 1 2 -g 0 0 -p 2 -b 16 64 --precision bf16 "${common[@]}"
python3 -m clipper_bench run -m inception -r 1 2 -g 0 0 -p 2 -b 16 48 --precision bf16 "${common[@]}"
python3 -m clipper_bench run -m kpca-svm -b 4 16 "${common[@]}"
python3 -m clipper_bench run -m lgbm -b 2 8 "${common[@]}"
