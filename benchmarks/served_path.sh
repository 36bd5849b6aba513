#!/usr/bin/env bash
# The served path against its references, in one run on one machine (issue 29), each figure with
# the reference it is judged by, measured in the same run:
#
#   1. one replica against the model's own forward pass (CUDA-graph limit), VGG16 and Inception V3,
#      bf16, batch 1/8/32, the driver's defaults plus --precision bf16 -g 0 -p 4  (GPU machines only)
#   2. the frontend's CPU seconds per 1,000 noop queries, this checkout against BASE_REPO (a
#      `git worktree add` of an older commit), REST through Debian's wrk where it is installed and
#      binary through the driver's client
#   3. noop at batch 16 over 1, 2 and 4 replicas with -n auto, 1 and 2 clients
#   4. the floors: a bare three-process ZeroMQ relay against a noop query at concurrency 1
#
#   bash benchmarks/served_path.sh OUT_DIR [BASE_REPO] [PARTS]     PARTS: any of 1234 (default all)
#
# Each part's output goes to OUT_DIR/<part>.log; the ratios are in each table.
set -uo pipefail
out=${1:?usage: served_path.sh OUT_DIR [BASE_REPO] [PARTS]}
base=${2:-}
parts=${3:-1234}
py=${PYTHON:-python3}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
mkdir -p "$out"

if [[ $parts == *1* ]] && $py -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    $py benchmarks/gpu_efficiency.py --models vgg inception --precisions bf16 --batch_sizes 1 8 32 \
        --transports shm --overlap on --graphs on --out "$out/gpu" 2>&1 | tee "$out/1-gpu.log"
fi
if [[ $parts == *2* ]]; then
    transports="binary"
    command -v wrk >/dev/null && transports="rest binary"
    $py benchmarks/frontend_cost.py -d 6 --rounds 3 --transports $transports ${base:+--repo "$base"} --repo . \
        2>&1 | tee "$out/2-frontend-cost.log"
fi
if [[ $parts == *3* ]]; then
    $py benchmarks/noop_scaling.py -b 16 -r 1 2 4 -n 0 1 2 -d 5 2>&1 | tee "$out/3-noop-scaling.log"
fi
if [[ $parts == *4* ]]; then
    $py benchmarks/engine_overhead.py --duration 5 --memory_s 10 --results_dir "$out/overhead" \
        2>&1 | tee "$out/4-floors.log"
fi
