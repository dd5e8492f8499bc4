"""Paired FVD/KVD tests kept between leaderboard calls.

A paired bootstrap of two runs' FVD is hundreds of Fréchet distances: at 1,000 clips of I3D's
400-d features, 20 s to several minutes per pair of neighbours on a 2-core machine. A user who
prints the board, then renders it as HTML, then as markdown would wait that long every time, for
the same answer: the runs' logged features do not change. So the result is kept in
`$EVALKIT_HOME/cache/paired/`, named by a hash of everything it depends on: the metric, the
SHA-256 of both runs' feature artifacts (the bytes the test read, so a store rewritten under the
same run ids is tested again), their order, the number of resamples, the seed and the test's
code version (`fvd_paired.PAIRED_CODE`).

A cache entry is only ever a shortcut: an entry that is missing, unreadable or malformed (a file
anyone with the home folder could write) is recomputed, and a home that cannot be written only
means the next call computes again. Never an error for the user.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from evalkit.metrics.stats import Estimate


def key(metric: str, digest_a: str, digest_b: str, n_boot: int, seed: int) -> str:
    from evalkit.metrics.fvd_paired import PAIRED_CODE

    parts = {"code": PAIRED_CODE, "metric": metric, "a": digest_a, "b": digest_b, "n_boot": int(n_boot),
             "seed": int(seed)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _path(cache_key: str) -> Path:
    from evalkit.home import evalkit_home

    return evalkit_home(create=False) / "cache" / "paired" / f"{cache_key}.json"


def lookup(cache_key: str) -> tuple[Estimate, float] | None:
    """(estimate, p) kept for this key, or None (absent, unreadable or malformed)."""
    try:
        d = json.loads(_path(cache_key).read_text(encoding="utf-8"))
        est = Estimate(float(d["value"]), float(d["ci_low"]), float(d["ci_high"]), int(d["n"]),
                       str(d["method"]), float(d["confidence"]))
        p = float(d["p"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    # NaN bounds are a real answer (`not_estimable`); a NaN or out-of-range value or p is not
    if not math.isfinite(est.value) or not 0.0 <= p <= 1.0 or est.n < 2:
        return None
    return est, p


def store(cache_key: str, est: Estimate, p: float) -> None:
    """Keep a result; a home that cannot be written is skipped silently (next call recomputes)."""
    from evalkit.atomic import write_atomic
    from evalkit.errors import EvalkitError

    record = {**est.to_dict(), "p": float(p)}
    try:
        write_atomic(_path(cache_key), json.dumps(record))
    except (EvalkitError, OSError):
        pass
