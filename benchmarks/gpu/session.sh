#!/usr/bin/env bash
# One lent-GPU session in one call (the device tool's `run`; ~9.5 minutes): train `uvit:small` on
# the GPU from INIT for MINUTES, then time `base` and `small` (benchmarks/perf/generator.py).
# Everything lands in $OUT: train.log, metrics.jsonl, small-gpu.safetensors, bench.jsonl, env.txt.
#   bash benchmarks/gpu/session.sh INIT.safetensors [MINUTES] [BENCH_SECONDS]
set -u
INIT=$1; MINUTES=${2:-4.5}; BENCH_S=${3:-220}
OUT=${OUT:-runs/gpu-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
# open_clip (the generator's tokenizer) and its two small needs travel as wheels in .whl/
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nproc;
  python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda)"; } \
  > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
timeout $(python3 -c "print(int(60 * $MINUTES + 90))") python3 benchmarks/gpu/train_small.py \
  --init-from "$INIT" --out-dir /tmp/gpu-train --minutes "$MINUTES" 2>&1 | tee "$OUT/train.log" | grep -v "^train uvit" | tail -5
cp /tmp/gpu-train/small-gpu.safetensors /tmp/gpu-train/metrics.jsonl "$OUT/" 2>/dev/null
tail -2 "$OUT/metrics.jsonl" 2>/dev/null
B="python3 benchmarks/perf/generator.py"
timeout "$BENCH_S" bash -c "
  $B --presets base --batch 32 --steps 10 --compile --sample-batch 4 --samplers dpmpp-2m:20
  $B --presets small --batch 64 --steps 20 --compile --no-reference --sample-batch 16 --samplers dpmpp-2m:20,ddim:50 --full
" 2>&1 | tee "$OUT/bench.log" | grep '^{' > "$OUT/bench.jsonl"
cat "$OUT/bench.jsonl"; grep -v '^{' "$OUT/bench.log" | tail -5
