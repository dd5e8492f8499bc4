"""The provenance speed benchmark runs end to end (real keys, real c2pa) and prints one JSON line
with both sides of each comparison; its numbers are measured, not asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_provenance_benchmark_prints_one_json_line(tmp_path):
    out = subprocess.run([sys.executable, "benchmarks/perf/provenance.py", "--repeats", "2"], cwd=REPO,
                         capture_output=True, text=True, timeout=300, env={**os.environ, "EVALKIT_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert row["benchmark"] == "provenance" and row["input_bytes"] > 500_000
    for k in ("sign_ms", "sign_c2pa_direct_ms", "verify_manifest_ms", "verify_c2pa_direct_ms", "verify_file_full_ms"):
        assert row[k] > 0, k
    assert abs(row["sign_overhead"] - (row["sign_ms"] / row["sign_c2pa_direct_ms"] - 1)) < 0.05
