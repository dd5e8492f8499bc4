"""Paired FVD/KVD tests kept between leaderboard calls.

A paired bootstrap of two runs' FVD is hundreds of Fréchet distances: at 1,000 clips of I3D's
400-d features, about 8 s per pair of neighbours on a 2-core machine (minutes before session 38),
and more with more models. A user who prints the board, then renders it as HTML, then as
markdown would wait that long every time, for the same answer:
the runs' logged features do not change. So the result is kept in `$EVALKIT_HOME/cache/paired/`,
named by a hash of everything it depends on: the metric, the three feature matrices tested (the
reference, then the two models' matched clips in order: another pairing or a store rewritten
under the same run ids is tested again), the number of resamples, the seed, and the source of
the code that computes it (`fvd.py`'s distances and `fvd_paired.py`'s bootstrap).

A cache entry is only ever a shortcut: an entry that is missing, unreadable, not a regular file
or inconsistent (a file anyone with the home folder could write: bounds out of order, a value
outside its interval, another N) is recomputed, and a home that cannot be written only means the
next call computes again. Never an error for the user.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import stat
from pathlib import Path

import numpy as np

from evalkit.metrics.stats import Estimate

MAX_ENTRY_BYTES = 4096  # an entry is ~200 bytes: anything larger was not written here


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    from evalkit.metrics import fvd, fvd_paired

    h = hashlib.sha256()
    for mod in (fvd, fvd_paired):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()


def key(metric: str, real: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> str:
    h = hashlib.sha256(json.dumps({"metric": metric, "n_boot": int(n_boot), "seed": int(seed),
                                   "code": _code_digest()}, sort_keys=True).encode())
    for m in (real, a, b):
        m = np.ascontiguousarray(m, dtype=np.float64)
        h.update(repr(m.shape).encode())
        h.update(m.tobytes())
    return h.hexdigest()[:32]


def _path(cache_key: str, create_home: bool = False) -> Path:
    from evalkit.home import evalkit_home

    return evalkit_home(create=create_home) / "cache" / "paired" / f"{cache_key}.json"


def lookup(cache_key: str, n: int) -> tuple[Estimate, float] | None:
    """(estimate, p) kept for this key, or None (absent, not a regular file, unreadable or
    inconsistent). `n`: the matched clips of the test asked for, which the entry must have."""
    path = _path(cache_key)
    try:
        st = path.lstat()  # a FIFO planted here would block the read for ever; a link is not ours
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ENTRY_BYTES:
            return None
        d = json.loads(path.read_text(encoding="utf-8"))
        est = Estimate(float(d["value"]), float(d["ci_low"]), float(d["ci_high"]), int(d["n"]),
                       str(d["method"]), float(d["confidence"]))
        p = float(d["p"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return None
    lo, hi = est.ci_low, est.ci_high
    no_interval = math.isnan(lo) and math.isnan(hi)  # a real answer (`not_estimable`)
    interval_ok = no_interval or (math.isfinite(lo) and math.isfinite(hi) and lo <= est.value <= hi)
    if not (math.isfinite(est.value) and interval_ok and 0.0 <= p <= 1.0 and est.n == n):
        return None
    return est, p


def store(cache_key: str, est: Estimate, p: float) -> None:
    """Keep a result; a home that cannot be written is skipped silently (next call recomputes).
    The home is made as `evalkit_home` makes it (0700: it holds signing keys)."""
    from evalkit.atomic import write_atomic
    from evalkit.errors import EvalkitError

    record = {**est.to_dict(), "p": float(p)}
    try:
        path = _path(cache_key, create_home=True)
        if path.is_symlink() or (path.exists() and not path.is_file()):
            path.unlink()  # not ours: replaced, never written through
        write_atomic(path, json.dumps(record))
    except (EvalkitError, OSError):
        pass
