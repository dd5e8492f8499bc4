"""Where a bench run keeps its work (`$EVALKIT_HOME/bench`: finished clips, reference sets and
caches), and the content hashes that key it: a cache entry is found again only by the same
inputs and the same protocol, and `CODE_VERSION` invalidates them all when the runner's numbers
change."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from benchmarks.suite import canonical_json
from evalkit.atomic import write_atomic

# bump when a change in the runner alters any number (2: session 30 physics, CIs; 3: session 33, set-level
# intervals in content order, the watermark key in the protocol; 4: session 34, no interval where every
# resample is equal, bounded means widened to the bootstrap-t: cached scores kept "1382 [1382, 1382]";
# 5: session 35, physics reads the picture: a bounce on nothing drawn, a zoom, a shake of one object;
# 6: session 36, CLIPScore over every frame of a clip up to 32, not 8 evenly spaced)
CODE_VERSION = "bench-runner-6"


def sha_of(obj) -> str:
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent or damaged: recomputed


def clean(obj):
    from evalkit.tracking import _jsonable

    return _jsonable(obj)


def bench_home() -> Path:
    from evalkit.home import evalkit_home

    return evalkit_home() / "bench"


def estimate_entry(est) -> dict:
    d = est.to_dict() if hasattr(est, "to_dict") else dict(est)
    return {k: d.get(k) for k in ("value", "ci_low", "ci_high", "n")}


class CheckCache:
    """Per-clip check results by the clip's SHA-256 and the check's protocol."""

    def __init__(self):
        self.root = bench_home() / "cache" / "clips"

    def get(self, sha: str, protocol: dict, compute):
        path = self.root / sha[:2] / sha / f"{sha_of(protocol)[:24]}.json"
        hit = read_json(path)
        if hit is not None:
            return hit["result"]
        result = clean(compute())
        write_atomic(path, json.dumps({"protocol": clean(protocol), "result": result}).encode())
        return result
