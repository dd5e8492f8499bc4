"""Training a detector: prepare labelled clips, fit the families on the train split, stack and
calibrate them on the calibration split, fit the threshold there, evaluate on the test split,
save under `$EVALKIT_HOME/detectors/NAME`, and log it all to MLflow (experiment
"evalkit-detectors"), where the detector is also registered as a model version under NAME.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from detectors.data import LabelledSet, concat, load_source, recording_of, shape_warnings
from detectors.ensemble import Detector
from detectors.evaluate import (calibration_figure, detection_metrics, false_positive_rate, figure_png,
                                format_estimate, roc_figure)
from detectors.families import DEFAULT_FAMILIES, FAMILIES, make_family
from detectors.features import Protocol, feature_cache
from evalkit.errors import BadInputError

EXPERIMENT = "evalkit-detectors"


@dataclass(frozen=True)
class TrainConfig:
    families: tuple[str, ...] = DEFAULT_FAMILIES
    calibration: str = "platt"
    combine: str = "trimmed"       # how the families' scores are pooled (detectors/ensemble.py)
    target_fpr: float = 0.01
    threshold_rule: str = "conformal"  # detectors/ensemble.py
    seed: int = 0
    protocol: Protocol = field(default_factory=Protocol)
    natural_windows: int = 80      # windows per natural video
    natural_jitter: bool = True    # frame stride and photometric jitter of natural windows
    max_clips_per_source: int | None = None
    codec_augment: bool = True
    cnn_epochs: int = 16           # 8 until session 13: in-distribution AUC 0.990 / 0.987 (seeds 0 / 1) -> 0.991 / 0.992
    crossfit_folds: int = 2        # natural recordings cross-fitted for calibration (0: off)


def parse_families(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in FAMILIES]
    if bad or not names:
        raise BadInputError(f"--family {text!r}: unknown {bad or 'empty'}; choose from {','.join(FAMILIES)}")
    if len(set(names)) < len(names):  # naive,naive was an "ensemble" of two copies
        raise BadInputError(f"--family {text!r}: names a family twice; give each once")
    return names


def build_dataset(real: list, fake: list, cfg: TrainConfig, progress: bool = False) -> LabelledSet:
    if not real or not fake:
        raise BadInputError("detectors train needs at least one --real and one --fake source")
    kw = dict(protocol=cfg.protocol, seed=cfg.seed, max_clips=cfg.max_clips_per_source,
              natural_windows=cfg.natural_windows, natural_jitter=cfg.natural_jitter,
              codec_augment=cfg.codec_augment, progress=progress)
    sets = [load_source(p, 0, **kw) for p in real] + [load_source(p, 1, **kw) for p in fake]
    data = concat(sets)
    data.meta["shape_warnings"] = shape_warnings(sets, cfg.protocol.frames)
    for split in ("train", "calib"):
        ys = set(data.y[data.split == split].tolist())
        if ys != {0, 1}:
            raise BadInputError(f"the {split} split has only {'real' if ys == {0} else 'generated'} clips; "
                                "give more clips (a few dozen of each kind at least)")
    return data


def fit_families(data: LabelledSet, names, cfg: TrainConfig, progress: bool = False) -> dict:
    """Each family fitted on the train split; {name: (family, seconds)}."""
    tr = data.split == "train"
    out = {}
    for name in names:
        t0 = time.perf_counter()
        kw = {"epochs": cfg.cnn_epochs} if name == "cnn3d" else {}
        fit_kw = {"sources": [s for s, t in zip(data.source, tr) if t]} if name == "oneclass" else {}
        fam = make_family(name, cfg.protocol, **kw).fit(data.x[tr], data.y[tr], seed=cfg.seed, progress=progress,
                                                         **fit_kw)
        out[name] = (fam, time.perf_counter() - t0)
    return out


def crossfit_natural(data: LabelledSet, names, cfg: TrainConfig, progress: bool = False) -> dict:
    """Family logits for the calibration split's natural windows as if their recording were unseen.

    Families fitted on the train split have seen every recording's earlier segments, so their
    scores for its calibration windows are optimistic: a threshold fitted on those lets footage
    from a camera, film or scene never seen through (measured: 15% of windows of a withheld
    recording called generated at a 1% target). Here the recordings are dealt into
    `cfg.crossfit_folds` folds; for each fold the families are refitted without its recordings'
    windows and score its calibration windows. Returns {"rows": indices into the calibration
    split, family name: logits [rows]}; empty without natural footage or with folds = 0."""
    cal = np.flatnonzero(data.split == "calib")
    recs = [recording_of(s) for s in np.asarray(data.source, dtype=object)]
    names_rec = sorted({r for r in recs if r is not None})
    if cfg.crossfit_folds <= 0 or not names_rec:
        return {}
    fold_of = {r: i % cfg.crossfit_folds for i, r in enumerate(names_rec)}
    rows = np.array([k for k, i in enumerate(cal) if recs[i] is not None])
    out: dict = {"rows": rows, **{n: np.zeros(len(rows)) for n in names}}
    for k in sorted(set(fold_of.values())):
        held = np.array([r is not None and fold_of[r] == k for r in recs])
        if set(data.y[~held & (data.split == "train")].tolist()) != {0, 1}:
            # the fold's recordings were all the real clips there are: nothing real is left to fit on
            raise BadInputError(f"cross-fitting the real recordings leaves no real training clips once "
                                f"{', '.join(r for r in names_rec if fold_of[r] == k)} is held out; give "
                                "more real sources (another recording, or a folder of real clips)")
        fitted = fit_families(data.subset(~held), names, cfg, progress)
        sel = np.array([fold_of[recs[cal[j]]] == k for j in rows])
        if sel.any():
            x = data.x[cal[rows[sel]]]
            for n in names:
                out[n][sel] = fitted[n][0].score(x)
    return out


def assemble(name: str, fams: list, data: LabelledSet, cfg: TrainConfig, cross: dict | None = None) -> Detector:
    """A detector of `fams` calibrated on the calibration split; with `cross` (crossfit_natural),
    the natural windows' logits there are the cross-fitted ones."""
    cal = data.split == "calib"
    det = Detector(name, fams, cfg.protocol, calibration=cfg.calibration, target_fpr=cfg.target_fpr,
                   combine=cfg.combine, threshold_rule=cfg.threshold_rule)
    z = det._logits(data.x[cal])
    if cross:
        for j, f in enumerate(fams):
            z[cross["rows"], j] = cross[f.name]
    return det.calibrate(None, data.y[cal], seed=cfg.seed, logits=z)


def fit_all(data: LabelledSet, names, cfg: TrainConfig, progress: bool = False) -> tuple[dict, dict]:
    """(fit_families on the train split, crossfit_natural) for `names`."""
    return fit_families(data, names, cfg, progress), crossfit_natural(data, names, cfg, progress)


def evaluate_on(det: Detector, data: LabelledSet, split: str = "test") -> dict:
    m = data.split == split
    if not m.any():  # a set so small its split is empty (16 + 16 clips can leave none)
        return {"n": 0, "y": data.y[m], "p": np.zeros(0)}
    p = det.predict_batch(data.x[m])
    y = data.y[m]
    res = {"n": int(m.sum()), "y": y, "p": p}
    if len(set(y.tolist())) == 2:
        res["metrics"] = detection_metrics(y, p, det.threshold)
    src = np.asarray(data.source, dtype=object)[m]
    natural = np.array([s.startswith("natural:") for s in src])
    if (natural & (y == 0)).any():  # natural windows of real footage in the test split (none: no rate)
        # windows of one recording are not independent tries: the interval counts recordings
        held = natural & (y == 0)
        recordings = [recording_of(s) for s in src[held]]
        res["natural_fpr"] = false_positive_rate(p[held], det.threshold, groups=recordings)
        res["natural_recordings"] = len(set(recordings))
    return res


# Below this many clips of a class in the test split, its metrics' bootstrap intervals are
# degenerate (one generated clip: TPR 1.000 [1.000, 1.000]); the report says so.
MIN_TEST_CLIPS = 10


def _same_paths(real: list, fake: list) -> str | None:
    """Where the two classes share a video, or None: a path given as both (through any spelling),
    one inside the other (`--real f/a.mp4 --fake f`), or one video's bytes under both (a copied
    folder): each such clip trained as real and as generated at once (session 31)."""
    import hashlib

    from evalkit.clipset import video_files

    def key(p):
        try:
            return Path(p).resolve()
        except OSError:
            return Path(p)
    reals = {key(p): p for p in real}
    same = next((str(p) for p in fake if key(p) in reals), None)
    if same:
        return same
    for a in map(key, real):
        for b in map(key, fake):
            if a.is_relative_to(b) or b.is_relative_to(a):
                return f"{a if a.is_relative_to(b) else b} (inside {b if a.is_relative_to(b) else a})"

    def files(paths):
        out = []
        for p in map(Path, paths):
            out += [p] if p.is_file() else video_files(p) if p.is_dir() else []
        return [f for f in out if f.is_file()]  # a broken link is named later, when it is read

    def digest(f: Path) -> str:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    real_files = {}
    for f in files(real):
        real_files.setdefault(digest(f), f)
    return next((f"{f} (the same bytes as {real_files[d]})" for f in files(fake) if (d := digest(f)) in real_files),
                None)


def calibration_warnings(det) -> list[str]:
    """What the calibration split is too small to support: the threshold's false-alarm rate on new
    real clips (the conformal bound needs about 1/target - 1 real clips to reach the target at all)
    and the "real" cut-off (the same count of generated clips). Kept with the detector, so that
    `detect` can say its verdicts rest on them."""
    cal, target = det.info["calibration_set"], det.target_fpr
    need = int(np.ceil(1 / target)) - 1
    out = []
    if cal["expected_fpr_new_real"] > target:
        out.append(f"the calibration split holds {cal['n_real']} real clips, too few for the target false-alarm "
                   f"rate {target:g}: expected on new real clips {cal['expected_fpr_new_real']:.3f}; give at least "
                   f"{need} real clips to calibrate on")
    if cal["n_generated"] < need:
        out.append(f"the calibration split holds {cal['n_generated']} generated clips, too few to place the "
                   f"'real' cut-off at a {target:g} miss rate; give at least {need} generated clips to calibrate on")
    return out


def train_detector(real: list, fake: list, *, name: str, cfg: TrainConfig = TrainConfig(),
                   progress: bool = True, log_mlflow: bool = True) -> dict:
    """Train, evaluate, save and log; returns a report with the saved path and the test metrics."""
    from detectors.registry import check_name, check_replaceable, home_dir

    check_replaceable(home_dir() / check_name(name))
    if log_mlflow:
        from evalkit import tracking

        tracking.check_reachable()  # before the training, which is logged at its end
    both = _same_paths(real, fake)
    if both:
        raise BadInputError(f"{both}: a video under both --real and --fake; each clip belongs to one class")
    t0 = time.perf_counter()
    data = build_dataset(real, fake, cfg, progress)
    prep_s = time.perf_counter() - t0
    wanted = tuple(dict.fromkeys([*cfg.families, "naive"]))  # naive: the baseline row of every table
    with feature_cache():  # each clip's features once, for every fit, fold and evaluation below
        fitted, cross = fit_all(data, wanted, cfg, progress)
        det = assemble(name, [fitted[f][0] for f in cfg.families], data, cfg, cross)
        rows = {"ensemble" if len(cfg.families) > 1 else cfg.families[0]: evaluate_on(det, data)}
        for f in wanted:
            if len(cfg.families) > 1 or f != cfg.families[0]:
                rows[f] = evaluate_on(assemble(f, [fitted[f][0]], data, cfg, cross), data)
    det.info["calibration_warnings"] = calibration_warnings(det)
    det.info.update({"trained_on": {"real": [str(p) for p in real], "fake": [str(p) for p in fake]},
                     "clips": {s: int((data.split == s).sum()) for s in ("train", "calib", "test")},
                     "sources": sorted(set(data.source)), "config": _config_dict(cfg),
                     "test": {k: {m: e.to_dict() for m, e in r.get("metrics", {}).items()} for k, r in rows.items()}})
    path = det.save(home_dir() / name)
    by_class = {s: {"real": int(((data.split == s) & (data.y == 0)).sum()),
                    "generated": int(((data.split == s) & (data.y == 1)).sum())} for s in ("train", "calib", "test")}
    few = {k: v for k, v in by_class["test"].items() if v < MIN_TEST_CLIPS}
    warnings = [(f"the test split holds no {k} clips, so it has no AUC or TPR; give at least "
                 f"{MIN_TEST_CLIPS * 5} {k} clips") if v == 0 else
                (f"the test split holds only {v} {k} clips, so its AUC, TPR and their intervals rest on "
                 f"{'that one clip' if v == 1 else 'those few'} (a bootstrap of {v} says little); give at least "
                 f"{MIN_TEST_CLIPS * 5} {k} clips") for k, v in few.items()] + det.info["calibration_warnings"] \
        + data.meta.get("shape_warnings", [])
    report = {"name": name, "path": str(path), "rows": rows, "threshold": det.threshold,
              "clips_by_class": by_class, "warnings": warnings,
              "expected_fpr_new_real": det.info["calibration_set"]["expected_fpr_new_real"],
              "real_below": det.real_below, "clips": det.info["clips"], "prep_s": prep_s,
              "fit_s": {f: s for f, (_, s) in fitted.items()}, "total_s": time.perf_counter() - t0}
    if log_mlflow:
        report["mlflow_run_id"] = _log(det, report, cfg)
    return report


def _config_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["protocol"] = cfg.protocol.describe()
    return d


def _log(det: Detector, report: dict, cfg: TrainConfig) -> str:
    import mlflow

    from evalkit import tracking

    params = {"name": det.name, **{k: v for k, v in _config_dict(cfg).items()}, "clips": report["clips"],
              "threshold": det.threshold, "real_below": det.real_below,
              "expected_fpr_new_real": report["expected_fpr_new_real"]}
    with tracking.start_run(EXPERIMENT, run_name=det.name, params=params, seed=cfg.seed) as run:
        for row, r in report["rows"].items():
            prefix = "" if row in ("ensemble", det.name) else f"{row}."
            tracking.log_estimates({f"{prefix}{k}": e for k, e in r.get("metrics", {}).items()})
            if "natural_fpr" in r:
                tracking.log_estimate(f"{prefix}natural_fpr", r["natural_fpr"])
        mlflow.log_metrics({f"train_seconds.{f}": s for f, s in report["fit_s"].items()}
                            | {"prepare_seconds": report["prep_s"], "total_seconds": report["total_s"]})
        curves = {k: (r["y"], r["p"]) for k, r in report["rows"].items() if "metrics" in r}
        tracking.log_image(figure_png(roc_figure(curves, f"ROC, test split ({det.name})")), "roc.png")
        main = next(iter(report["rows"].values()))
        tracking.log_image(figure_png(calibration_figure(main["y"], main["p"], title=det.name)), "calibration.png")
        tracking.log_artifact(report["path"], "detector")
        tracking.log_json({"table": table_rows(report)}, "evaluation.json")
        run_id = run.info.run_id
        artifact_uri = mlflow.get_artifact_uri("detector")
    _register(det.name, artifact_uri, run_id)
    return run_id


def _register(name: str, source: str, run_id: str) -> None:
    """A model version under `name` in MLflow's registry, pointing at the run's detector files."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        client.create_registered_model(name)
    except MlflowException:
        pass  # already registered: add a version
    client.create_model_version(name, source, run_id=run_id)


def table_rows(report: dict) -> list[dict]:
    out = []
    for row, r in report["rows"].items():
        m = r.get("metrics", {})
        out.append({"detector": row, "n": r["n"], **{k: format_estimate(e) for k, e in m.items()},
                    # its own N (natural windows, several a recording), not the test split's clips
                    "natural_fpr": (f"{format_estimate(r['natural_fpr'])} of {r['natural_fpr'].n} windows "
                                    f"from {r['natural_recordings']} recordings" if "natural_fpr" in r else "n/a")})
    return out
