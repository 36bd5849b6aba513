#!/usr/bin/env bash
# Where a served configuration's time goes: py-spy samples of the frontend, the load client and the
# first replica while `clipper-bench run` measures one configuration, a per-thread `top` snapshot and,
# on a GPU machine, nvidia-smi's utilisation. Writes collapsed stacks (py-spy's raw format) to OUTDIR.
#   bash benchmarks/profile_served.sh OUTDIR -m noop -r 4 -b 16
#   bash benchmarks/profile_served.sh OUTDIR -m vgg --precision bf16 -g 0 -p 4 -b 8 --transport shm
set -euo pipefail
out=${1:?OUTDIR}; shift
mkdir -p "$out"
python3 -m clipper_bench run "$@" -d 20 --warmup 2 --idle_s 0 --results_dir "$out/results" > "$out/run.log" 2>&1 &
driver=$!
for _ in $(seq 120); do  # until the window opens
    grep -q 'measuring' "$out/run.log" 2>/dev/null && break
    sleep 1
done
sleep 3
for role in frontend loadgen replica; do
    pid=$(pgrep -f "clipper-bench $role" | head -1)
    [ -n "$pid" ] && py-spy record -p "$pid" -d 6 -r 250 -f raw -o "$out/$role.txt" --nonblocking > /dev/null 2>&1 &
done
top -b -n 2 -d 2 -H -w 200 | tail -n 45 > "$out/top.txt" || true
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=utilization.gpu,power.draw --format=csv -lms 200 > "$out/gpu.csv" 2>&1 &
    sleep 4; kill $! || true
fi
wait "$driver" || true
wait
grep -v '^ ' "$out/run.log" | tail -3
