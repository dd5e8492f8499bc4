#!/usr/bin/env bash
# One lent-GPU call that runs a training recipe from scratch (generators/uvit/recipes.py), e.g. the
# `small` recipe that makes uvit:small (~6-7 min planned on one H100/H200):
#   bash benchmarks/gpu/recipe.sh small [TIMEOUT_SECONDS]
# Everything lands in $OUT: env.txt, recipe.log, recipe.json, every stage's .safetensors export
# and .metrics.jsonl, and result.json (benchmarks/gpu/recipe.py's JSON line). Check the recipe
# here first: `evalkit generator recipe NAME --smoke --out-dir DIR` (two steps a stage on the CPU).
# Exit status: 0 only when every stage finished and exported its weights.
set -u -o pipefail
if [ $# -lt 1 ]; then echo "usage: bash benchmarks/gpu/recipe.sh RECIPE [TIMEOUT_SECONDS]" >&2; exit 2; fi
NAME=$1; LIMIT=${2:-510}
cd "$(dirname "$0")/../.."  # the repository root, wherever the call is made from
OUT=$(realpath -m "${OUT:-runs/gpu-out}"); mkdir -p "$OUT"
. benchmarks/gpu/setup.sh || exit 3
WORK=/tmp/recipe-$NAME
status=0
timeout "$LIMIT" "$PY" benchmarks/gpu/recipe.py "$NAME" --out-dir "$WORK" --device "${DEVICE:-cuda}" \
  2> "$OUT/recipe.log" > "$OUT/result.json" || status=1
cp "$WORK"/recipe.json "$WORK"/*.metrics.jsonl "$WORK"/*.safetensors "$OUT/" 2>/dev/null
grep -v "^train uvit" "$OUT/recipe.log" | tail -5; tail -n 2 "$OUT"/*.metrics.jsonl 2>/dev/null; cat "$OUT/result.json"
[ -s "$OUT/result.json" ] || { echo "recipe.sh: the recipe did not finish (recipe.log)" >&2; status=1; }
exit $status
