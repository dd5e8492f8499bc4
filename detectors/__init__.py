"""Synthetic-video detectors: features, model families, training, calibration, evaluation.

`load_detector(name)` gives a trained detector by name (the shipped `default`, or one trained
with `evalkit detectors train` under $EVALKIT_HOME); `.predict(clips)` returns calibrated
p(generated), `.threshold` and `.decide(p)` the verdict.
"""


def load_detector(name: str | None = None):
    from detectors.registry import load_detector as _load

    return _load(name)


__all__ = ["load_detector"]
