"""`oneclass`: a model of real clips only; a clip's score is how far it lies from all of them.

Supervised families learn the direction that separates real clips from the generators they saw,
and different generators leave opposite traces (one adds high-frequency sampling noise, another
removes detail), so that direction does not transfer to a generator left out of training. This
family never looks at generated clips: it fits a Gaussian (Ledoit-Wolf shrunk covariance) to the
naive, spectral and temporal features of each group of real clips and scores a clip by its
smallest squared Mahalanobis distance to any group, log1p-scaled. Two groups: natural footage
(windows of --real videos) and clip folders (--real folders: renders, curated clips), so camera
footage and renders are each modelled on their own; a group with fewer than `min_group` training
clips joins the other. Finer groups (one per folder) were worse: a ~60-dimensional Gaussian fitted
to ~70 clips overfits (leave-VAE-out AUC 0.86 against 0.93 with the two pooled groups).

Measured on the default data (benchmarks/detection, train split only): leave-one-generator-
family-out AUC of this family alone 0.96 (U-ViT left out) and 0.93 (VAE left out), against 0.86
and 0.94 for a logistic regression on the same features.
"""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.preprocessing import StandardScaler

from detectors.features import FEATURE_SETS, Protocol, features_of_many

FEATURES = ("naive", "spectral", "temporal")


class OneClassFamily:
    name = "oneclass"

    def __init__(self, protocol: Protocol = Protocol(), min_group: int = 30):
        self.protocol, self.min_group = protocol, min_group
        self.feature_names = [f"{k}.{n}" for k in FEATURES for n in FEATURE_SETS[k][1](protocol)]
        self.mean = self.scale = None
        self.groups: list[tuple[str, np.ndarray, np.ndarray]] = []  # (name, location, precision)

    def _x(self, batch: np.ndarray) -> np.ndarray:
        x = np.concatenate(features_of_many(FEATURES, batch), 1)
        return np.nan_to_num(x, nan=0.0, posinf=30.0, neginf=-30.0)

    @staticmethod
    def _group_of(source: str) -> str:
        return "natural" if source.startswith("natural:") else "clips"

    def fit(self, batch: np.ndarray, y: np.ndarray, seed: int = 0, progress: bool = False,
            sources=None) -> "OneClassFamily":
        real = np.asarray(y) == 0
        x = self._x(batch[real])
        names = np.array([self._group_of(s) for s in (np.asarray(sources, dtype=object)[real]
                                                       if sources is not None else ["real"] * int(real.sum()))])
        sc = StandardScaler().fit(x)
        self.mean, self.scale = sc.mean_, sc.scale_
        z = sc.transform(x)
        counts = {g: int((names == g).sum()) for g in sorted(set(names))}
        small = [g for g, n in counts.items() if n < self.min_group]
        names = np.where(np.isin(names, small), "pooled", names)
        self.groups = []
        for g in sorted(set(names)):
            m = names == g
            if m.sum() < 3:  # too few to fit anything; the other groups cover it
                continue
            lw = LedoitWolf().fit(z[m])
            self.groups.append((g, lw.location_.astype(np.float64), lw.precision_.astype(np.float64)))
        if not self.groups:
            raise ValueError("oneclass needs at least 3 real training clips")
        return self

    def score(self, batch: np.ndarray) -> np.ndarray:
        """[B] log1p of the smallest squared Mahalanobis distance to a real group."""
        if self.mean is None:
            raise RuntimeError("oneclass detector family is not fitted")
        z = (self._x(batch) - self.mean) / self.scale
        d = np.stack([np.einsum("bi,ij,bj->b", z - loc, prec, z - loc) for _, loc, prec in self.groups])
        return np.log1p(np.maximum(d.min(0), 0.0))

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"family": "oneclass", "kind": "oneclass", "min_group": self.min_group,
                "feature_names": self.feature_names, "groups": [g for g, _, _ in self.groups]}
        arrays = {"mean": self.mean, "scale": self.scale}
        for i, (_, loc, prec) in enumerate(self.groups):
            arrays[f"group{i}.location"], arrays[f"group{i}.precision"] = loc, prec
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict, protocol: Protocol) -> "OneClassFamily":
        fam = cls(protocol, min_group=meta["min_group"])
        if list(meta["feature_names"]) != fam.feature_names:
            raise ValueError("oneclass: saved features differ from this version's; retrain")
        fam.mean, fam.scale = arrays["mean"], arrays["scale"]
        fam.groups = [(g, arrays[f"group{i}.location"], arrays[f"group{i}.precision"])
                      for i, g in enumerate(meta["groups"])]
        return fam
