# Sourced by the device-call scripts (session.sh, recipe.sh) from the repository root: picks the
# interpreter ($PY), makes the project importable, installs the wheels that travel in .whl/ and
# records the machine in $OUT/env.txt. Needs $OUT; returns 3 when there is no usable torch.
# the project's interpreter where it travelled with the tree, else the machine's
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
"$PY" -c "import torch" 2>/dev/null || { echo "$0: $PY has no torch; set PYTHON=..." >&2; return 3; }
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
# open_clip (the generator's tokenizer) and its two small needs travel as wheels in .whl/
# (`pip download --no-deps -d .whl open_clip_torch ftfy wcwidth` on a machine with the registry)
if [ -d .whl ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nproc;
  "$PY" -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda)"; } \
  > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
"$PY" -c "import open_clip, safetensors, tqdm" 2>/dev/null || {
  echo "$0: $PY cannot import open_clip, safetensors or tqdm; put their wheels in .whl/ (above)" >&2; return 3; }
