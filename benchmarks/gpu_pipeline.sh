#!/usr/bin/env bash
# The image_driver_1 pipeline on a one-GPU machine (the lent H200, device tool), and what chaining
# stages costs there: a noop model alone against three noop stages, one query at a time.
#   bash benchmarks/gpu_pipeline.sh OUTDIR
# Featurizers on GPU 0 (bf16, CUDA graphs), classifiers on CPU cores: examples/pipelines/image_driver_1_gpu.yaml.
set -uo pipefail
out=${1:?OUTDIR}
mkdir -p "$out"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw --format=csv -l 2 > "$out/nvidia-smi.csv" &
smi=$!
trap 'kill $smi 2>/dev/null' EXIT
python3 -m clipper_bench pipeline image_driver_1_gpu -d 10 --warmup 5 --slo_ms 500 --idle_s 3 \
    --results_dir "$out/pipeline"
python3 -m clipper_bench run -m noop -b 1 -d 5 --warmup 1 --idle_s 0 --concurrency 1 --results_dir "$out/chain"
python3 -m clipper_bench pipeline noop_chain -d 5 --warmup 1 --idle_s 0 --concurrency 1 --results_dir "$out/chain"
nvidia-smi > "$out/nvidia-smi.txt"
