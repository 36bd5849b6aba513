#!/usr/bin/env bash
# The README's main job on a one-GPU machine (the lent H200, device tool), then the same sweep with
# Keras (JAX backend) for comparison; docs/reports/vgg-h200 is `clipper-bench report` of them.
#   bash benchmarks/gpu_main_job.sh OUTDIR [STEP...]     STEP: torch, keras-r1, keras-r2 (default all)
# Both replicas share GPU 0 (-g 0 0); --baseline adds the raw in-process speed per batch size, so
# every record carries serving_efficiency. Keras runs one replica count per experiment: JAX compiles
# every padded batch shape when a replica starts (about 80 s), so the whole sweep outlasts one
# 10-minute device call.
set -uo pipefail
out=${1:?OUTDIR}; shift
steps=${*:-torch keras-r1 keras-r2}
for step in $steps; do
  case $step in
    torch)
      python3 model_composition/image_driver_1/driver.py --model_name vgg --num_replicas 1 2 \
          --batch_sizes 1 8 32 -g 0 0 --precision bf16 -d 10 --slo_ms 500 \
          --baseline --baseline_s 4 --results_dir "$out/torch" ;;
    keras-r1|keras-r2)
      r=${step#keras-r}
      KERAS_BACKEND=jax python3 -m clipper_bench run -m vgg --framework keras --precision bf16 \
          -r "$r" -b 1 8 32 -g 0 0 -d 10 --slo_ms 500 --baseline --baseline_s 4 \
          --results_dir "$out/keras" ;;
    *) echo "unknown step $step (torch, keras-r1, keras-r2)" >&2; exit 2 ;;
  esac
done
