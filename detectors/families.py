"""Detector families: each turns a protocol batch [B, T, S, S, 3] into a real-valued score
(higher = more likely generated) and saves itself as plain arrays plus JSON (never pickle).

- `naive`, `spectral`, `temporal`: scikit-learn `StandardScaler` + `LogisticRegression` on the
  features of `detectors.features`. Linear on purpose: the features carry the signal, a linear
  model is hard to overfit on a few hundred clips and saves as two vectors.
- `cnn3d`: a small 3D CNN on high-pass residuals (detectors/cnn3d.py).
- `oneclass`: a model of real clips only, scoring distance from them (detectors/oneclass.py).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from detectors.features import FEATURE_SETS, Protocol, features_of

FAMILIES = ("naive", "spectral", "temporal", "cnn3d", "oneclass")
# The ensemble's members. naive is also the baseline row of every table, so that what the other
# families add is visible; as a member it is one voice of five in the trimmed mean, and the one
# that transferred best to a generator family left out of training (benchmarks/detection).
DEFAULT_FAMILIES = ("spectral", "temporal", "cnn3d", "oneclass", "naive")


class LinearFamily:
    """Standardised hand-made features -> L2-regularised logistic regression."""

    def __init__(self, name: str, protocol: Protocol = Protocol(), C: float = 1.0):
        if name not in FEATURE_SETS:
            raise ValueError(f"unknown feature family {name!r}")
        self.name, self.protocol, self.C = name, protocol, C
        names = FEATURE_SETS[name][1]
        self.feature_names = names(protocol)
        self.scaler: StandardScaler | None = None
        self.model: LogisticRegression | None = None

    def _x(self, batch: np.ndarray) -> np.ndarray:
        # Degenerate clips (all-constant frames) give -inf logs; clamp so they stay usable.
        return np.nan_to_num(features_of(self.name, batch), nan=0.0, posinf=30.0, neginf=-30.0)

    def fit(self, batch: np.ndarray, y: np.ndarray, seed: int = 0, progress: bool = False) -> "LinearFamily":
        x = self._x(batch)
        self.scaler = StandardScaler().fit(x)
        self.model = LogisticRegression(C=self.C, max_iter=5000, random_state=seed)
        self.model.fit(self.scaler.transform(x), y)
        return self

    def score(self, batch: np.ndarray) -> np.ndarray:
        """[B] logits (log-odds of generated, before calibration)."""
        if self.model is None:
            raise RuntimeError(f"{self.name} detector family is not fitted")
        return self.model.decision_function(self.scaler.transform(self._x(batch)))

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"family": self.name, "kind": "linear", "C": self.C, "feature_names": self.feature_names}
        arrays = {"scaler_mean": self.scaler.mean_, "scaler_scale": self.scaler.scale_,
                  "coef": self.model.coef_, "intercept": self.model.intercept_}
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray], protocol: Protocol) -> "LinearFamily":
        fam = cls(meta["family"], protocol, C=meta["C"])
        if list(meta["feature_names"]) != fam.feature_names:
            raise ValueError(f"{meta['family']}: saved features differ from this version's; retrain")
        # Rebuild the fitted estimators from their arrays (what fit() would have set).
        fam.scaler = StandardScaler()
        fam.scaler.mean_, fam.scaler.scale_ = arrays["scaler_mean"], arrays["scaler_scale"]
        fam.scaler.var_ = fam.scaler.scale_**2
        fam.scaler.n_features_in_ = len(fam.scaler.mean_)
        fam.model = LogisticRegression(C=meta["C"])
        fam.model.coef_, fam.model.intercept_ = arrays["coef"], arrays["intercept"]
        fam.model.classes_ = np.array([0, 1])
        fam.model.n_features_in_ = fam.model.coef_.shape[1]
        return fam


def make_family(name: str, protocol: Protocol = Protocol(), **kw):
    if name == "oneclass":
        from detectors.oneclass import OneClassFamily

        return OneClassFamily(protocol)
    if name == "cnn3d":
        from detectors.cnn3d import CNN3DFamily

        return CNN3DFamily(protocol, **kw)
    return LinearFamily(name, protocol)


def family_from_state(meta: dict, arrays: dict, protocol: Protocol):
    if meta["kind"] == "oneclass":
        from detectors.oneclass import OneClassFamily

        return OneClassFamily.from_state(meta, arrays, protocol)
    if meta["kind"] == "cnn3d":
        from detectors.cnn3d import CNN3DFamily

        return CNN3DFamily.from_state(meta, arrays, protocol)
    return LinearFamily.from_state(meta, arrays, protocol)
