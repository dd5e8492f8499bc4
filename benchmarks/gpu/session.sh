#!/usr/bin/env bash
# One lent-GPU session in one call (the device tool's `run`; ~9.5 minutes): train `uvit:small` on
# the GPU from INIT for MINUTES, then time `base` and `small` (benchmarks/perf/generator.py).
# Everything lands in $OUT: train.log, metrics.jsonl, small-gpu.safetensors, bench.jsonl, env.txt.
#   bash benchmarks/gpu/session.sh INIT.safetensors [MINUTES] [BENCH_SECONDS]
# Exit status: 0 only when training exported its weights and every benchmark line came back (a
# failed step once ended in 0 with an empty bench.jsonl: a lent device's minutes spent silently).
set -u -o pipefail
if [ $# -lt 1 ]; then
  echo "usage: bash benchmarks/gpu/session.sh INIT.safetensors [MINUTES] [BENCH_SECONDS]" >&2; exit 2
fi
INIT=$(realpath "$1"); MINUTES=${2:-4.5}; BENCH_S=${3:-220}
cd "$(dirname "$0")/../.."  # the repository root, wherever the call is made from
[ -f "$INIT" ] || { echo "session.sh: $INIT: no such weights file" >&2; exit 3; }
OUT=$(realpath -m "${OUT:-runs/gpu-out}"); mkdir -p "$OUT"
. benchmarks/gpu/setup.sh || exit 3
status=0
timeout $("$PY" -c "print(int(60 * $MINUTES + 90))") "$PY" benchmarks/gpu/train_small.py \
  --init-from "$INIT" --out-dir /tmp/gpu-train --minutes "$MINUTES" 2>&1 | tee "$OUT/train.log" \
  | grep -v "^train uvit" | tail -5 || status=1
cp /tmp/gpu-train/small-gpu.safetensors /tmp/gpu-train/metrics.jsonl "$OUT/" 2>/dev/null
[ -f "$OUT/small-gpu.safetensors" ] || { echo "session.sh: training exported no weights (train.log)" >&2; status=1; }
tail -2 "$OUT/metrics.jsonl" 2>/dev/null
B="$PY benchmarks/perf/generator.py"
timeout "$BENCH_S" bash -c "set -e
  $B --presets base --batch 32 --steps 10 --compile --sample-batch 4 --samplers dpmpp-2m:20
  $B --presets small --batch 64 --steps 20 --compile --no-reference --sample-batch 16 --samplers dpmpp-2m:20,ddim:50 --full
" 2>&1 | tee "$OUT/bench.log" | grep '^{' > "$OUT/bench.jsonl" || status=1
grep -q '"error"' "$OUT/bench.jsonl" && status=1
cat "$OUT/bench.jsonl"; grep -v '^{' "$OUT/bench.log" | tail -5
exit $status
