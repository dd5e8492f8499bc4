"""Detectors: protocol, features, families, calibration and threshold, persistence, registry,
training with MLflow, and the `detect` / `verify` commands.

Generated clips here come from a stand-in generator with the traces real generators leave:
world scenes re-rendered with per-frame sampling noise and a slight blur (denoising), so the
tests run in seconds; the real generators are trained and measured in benchmarks/detection.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from detectors.cnn3d import CNN3DFamily
from detectors.ensemble import Detector, fpr_threshold
from detectors.evaluate import ece, eer, tpr_at_fpr
from detectors.families import LinearFamily
from detectors.features import FEATURE_SETS, Protocol, stack_protocol, to_protocol
from evalkit.clip import Clip
from evalkit.clipset import ClipFolderWriter
from evalkit.errors import BadInputError
from evalkit.world.clips import make_clip_from_seed


def noisy_generator(clip: Clip, seed: int, sigma: float = 0.03) -> Clip:
    """World clip -> a clip with generator-like traces: blur (denoising) + fresh noise each frame."""
    rng = np.random.default_rng(seed)
    x = clip.to_tensor()
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    x = x + torch.from_numpy(rng.normal(0, sigma, x.shape).astype(np.float32))
    return Clip.from_tensor(x, fps=clip.fps, prompt=clip.prompt)


def write_folder(path, clips):
    with ClipFolderWriter(path) as w:
        for i, c in enumerate(clips):
            w.add(c, {"id": f"c{i:03d}", "prompt": c.prompt, "seed": i, "fps": 8, "frames": c.num_frames,
                      "size": list(c.size)})
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("det")
    world = [make_clip_from_seed(s, ("train", "test", "ood")[s % 3]) for s in range(40)]
    fake = [noisy_generator(make_clip_from_seed(1000 + s, "train"), s, sigma=0.05) for s in range(40)]
    return write_folder(root / "real", world), write_folder(root / "fake", fake)


# --- protocol and features ------------------------------------------------------------------


def test_protocol_brings_any_clip_to_one_shape():
    rng = np.random.default_rng(0)
    short_odd = Clip(frames=rng.integers(0, 255, (5, 37, 53, 3), dtype=np.uint8))
    x, done = to_protocol(short_odd)
    assert x.shape == (16, 64, 64, 3) and x.dtype == np.float32
    assert done == {"source_size": [37, 53], "source_frames": 5, "padded_frames": 11}
    assert np.array_equal(x[4], x[15])  # padding repeats the last frame
    long_big = Clip(frames=rng.integers(0, 255, (40, 128, 200, 3), dtype=np.uint8))
    x, done = to_protocol(long_big, Protocol(frames=8, size=32))
    assert x.shape == (8, 32, 32, 3) and done["padded_frames"] == 0
    assert 0 <= x.min() and x.max() <= 1


def test_features_are_finite_named_and_see_noise():
    clean = [make_clip_from_seed(s, "test") for s in range(6)]
    noisy = [noisy_generator(c, i) for i, c in enumerate(clean)]
    xc, xn = stack_protocol(clean), stack_protocol(noisy)
    for name, (fn, names) in FEATURE_SETS.items():
        fc = fn(xc)
        assert fc.shape == (6, len(names(Protocol()))) and np.isfinite(fc).all(), name
    spec = FEATURE_SETS["spectral"][1](Protocol())
    top = spec.index(f"resid_spec_r{len([n for n in spec if n.startswith('resid_spec')]) - 1}")
    # Sampling noise lifts the top of the residual spectrum (x10 here); clean renders have little.
    assert (FEATURE_SETS["spectral"][0](xn)[:, top] > FEATURE_SETS["spectral"][0](xc)[:, top] + 0.5).all()
    d2 = FEATURE_SETS["temporal"][1](Protocol()).index("log_d2")
    assert (FEATURE_SETS["temporal"][0](xn)[:, d2] > FEATURE_SETS["temporal"][0](xc)[:, d2]).all()


def test_sources_split_by_group_and_codec_augmentation_reencodes_a_share(folders, real_videos_dir):
    from detectors.data import load_source

    real, _ = folders
    plain = load_source(real, 0, codec_augment=False)
    aug = load_source(real, 0, codec_augment=True)
    assert np.array_equal(plain.split, aug.split) and len(plain) == 40
    changed = np.array([not np.array_equal(a, b) for a, b in zip(plain.x, aug.x)])
    assert 0.3 < changed.mean() < 0.9  # about 60% go through H.264 at CRF 23/30/35
    assert set(plain.split) == {"train", "calib", "test"}
    nat = load_source(real_videos_dir / "carphone_pristine.mp4", 0, natural_windows=10, codec_augment=False)
    assert len(nat) == 10 and nat.source[0] == "natural:carphone_pristine.mp4"
    assert {str(s): int((nat.split == s).sum()) for s in ("train", "calib", "test")} == {"train": 6, "calib": 2, "test": 2}
    again = load_source(real_videos_dir / "carphone_pristine.mp4", 0, natural_windows=10, codec_augment=False,
                        splits=("test",))
    assert np.array_equal(again.x, nat.x[nat.split == "test"])  # the same windows, whatever is kept


def test_natural_jitter_changes_colours_and_pace_but_not_the_windows_drawn(real_videos_dir):
    from detectors.data import load_source, photometric_jitter

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    same = photometric_jitter(frames, gamma=1.0, saturation=1.0, contrast=1.0, brightness=0.0)
    assert np.abs(same.astype(int) - frames).max() <= 1
    grey = photometric_jitter(frames, gamma=1.0, saturation=0.0, contrast=1.0, brightness=0.0).astype(int)
    assert np.abs(grey[..., 0] - grey[..., 2]).max() <= 1  # no colour left
    brighter = photometric_jitter(frames, gamma=1.0, saturation=1.0, contrast=1.0, brightness=20.0)
    assert 15 < brighter.mean() - frames.mean() < 21  # less than 20 where values clip at 255
    kw = dict(natural_windows=10, codec_augment=False)
    plain = load_source(real_videos_dir / "bikes.mp4", 0, natural_jitter=False, **kw)
    jittered = load_source(real_videos_dir / "bikes.mp4", 0, natural_jitter=True, **kw)
    assert np.array_equal(plain.split, jittered.split) and plain.x.shape == jittered.x.shape
    assert all(not np.allclose(a, b, atol=0.02) for a, b in zip(plain.x, jittered.x))
    # A stride of 2-3 moves more between frames: the jittered windows' mean frame change is larger.
    motion = lambda s: np.abs(np.diff(s.x, axis=1)).mean(axis=(1, 2, 3, 4))  # noqa: E731
    assert motion(jittered).mean() > motion(plain).mean()


# --- metrics and threshold ------------------------------------------------------------------


def test_fpr_threshold_is_the_smallest_that_meets_the_target():
    rng = np.random.default_rng(1)
    p = rng.random(300)
    for target in (0.0, 0.01, 0.05, 0.2):
        t = fpr_threshold(p, target)
        assert (p >= t).mean() <= target
        below = p[p < t]
        if len(below):  # one step lower would flag one more real clip, over the target
            assert (p >= below.max()).mean() > target


def test_conformal_threshold_holds_the_target_on_new_real_clips():
    """The empirical rule meets the target on the calibration clips and exceeds it on new ones
    (expected (k + 1) / (n + 1)); the conformal rule meets it on new ones."""
    rng = np.random.default_rng(2)
    n, target = 170, 0.01
    rates = {"empirical": [], "conformal": []}
    for _ in range(3000):
        p = rng.random(n)
        for rule in rates:
            t = fpr_threshold(p, target, rule)
            rates[rule].append(1.0 - min(t, 1.0))  # share of new uniform real scores at or above t
    assert np.mean(rates["empirical"]) == pytest.approx(2 / 171, rel=0.08)   # over the target
    assert np.mean(rates["conformal"]) == pytest.approx(1 / 171, rel=0.08)   # under it
    p = rng.random(n)
    t = fpr_threshold(p, target, "conformal")
    assert ((p >= t).sum() + 1) / (n + 1) <= target
    below = p[p < t]
    assert ((p >= below.max()).sum() + 1) / (n + 1) > target  # the smallest such t
    few = rng.random(20)  # 1 / 21 > 1%: no threshold reaches the target; above every real clip
    assert fpr_threshold(few, target, "conformal") > few.max()


def test_detection_metric_definitions():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    assert eer(y, p) == pytest.approx(0.25)
    assert tpr_at_fpr(y, p, 0.0) == pytest.approx(0.75)  # 0.7, 0.8, 0.9 above every real clip
    perfect = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=float)
    assert ece(y, perfect) == 0.0
    assert ece(y, np.full(8, 0.9)) == pytest.approx(0.4)  # says 0.9, half are generated


# --- families and persistence ---------------------------------------------------------------


def test_cnn3d_learns_residual_noise_and_round_trips():
    clean = stack_protocol([make_clip_from_seed(s, "train") for s in range(24)], Protocol(8, 32))
    noisy = stack_protocol([noisy_generator(make_clip_from_seed(100 + s, "train"), s) for s in range(24)],
                           Protocol(8, 32))
    x, y = np.concatenate([clean, noisy]), np.array([0] * 24 + [1] * 24)
    fam = CNN3DFamily(Protocol(8, 32), width=8, epochs=6, batch_size=16).fit(x, y, seed=0)
    s = fam.score(x)
    assert s[y == 1].min() > s[y == 0].max()
    meta, arrays = fam.state()
    again = CNN3DFamily.from_state(meta, arrays, Protocol(8, 32))
    assert np.array_equal(again.score(x), s)
    other = CNN3DFamily(Protocol(8, 32), width=8, epochs=6, batch_size=16).fit(x, y, seed=0)
    assert np.array_equal(other.score(x), s)  # same seed, same data -> the same network


def test_cnn3d_residual_of_a_flipped_clip_is_the_flipped_residual():
    """cnn3d computes each clip's residual input once per fit and flips the residual for its
    flip augmentation: that is only the same as flipping the clip if the two commute."""
    from detectors.cnn3d import _residuals, residual_input

    x = stack_protocol([make_clip_from_seed(s, "train") for s in range(3)], Protocol(8, 32))
    x[0, :, :, :5] = 0.0  # an asymmetric edge, so a wrong flip axis would show
    r = residual_input(torch.from_numpy(x))
    torch.testing.assert_close(residual_input(torch.from_numpy(x).flip(3)), r.flip(4))
    stored = _residuals(x, chunk=2)  # float16 storage, in chunks
    assert stored.dtype == torch.float16 and stored.shape == r.shape
    torch.testing.assert_close(stored.float(), r, atol=1e-2, rtol=1e-3)


def test_oneclass_flags_departures_from_real_in_either_direction():
    from detectors.oneclass import OneClassFamily

    real = [make_clip_from_seed(s, ("train", "test", "ood")[s % 3]) for s in range(60)]
    x = stack_protocol(real)
    fam = OneClassFamily(min_group=10).fit(x, np.zeros(len(x), int),
                                           sources=["world"] * 45 + ["natural:a.mp4"] * 15)
    assert [g for g, _, _ in fam.groups] == ["clips", "natural"]
    held_out = stack_protocol([make_clip_from_seed(500 + s, "test") for s in range(12)])
    noisy = stack_protocol([noisy_generator(make_clip_from_seed(600 + s, "test"), s) for s in range(12)])
    blurred = []  # the opposite trace: detail removed (what a VAE does)
    for s in range(12):
        c = make_clip_from_seed(700 + s, "test")
        t = torch.nn.functional.avg_pool2d(c.to_tensor(), 5, 1, 2, count_include_pad=False)
        blurred.append(Clip.from_tensor(t, fps=c.fps))
    s_real, s_noisy, s_blur = fam.score(held_out), fam.score(noisy), fam.score(stack_protocol(blurred))
    assert np.median(s_noisy) > np.quantile(s_real, 0.9) and np.median(s_blur) > np.quantile(s_real, 0.9)
    meta, arrays = fam.state()
    assert np.array_equal(OneClassFamily.from_state(meta, arrays, Protocol()).score(noisy), s_noisy)


def test_detector_save_load_gives_identical_probabilities(tmp_path):
    clean = stack_protocol([make_clip_from_seed(s, "train") for s in range(30)])
    noisy = stack_protocol([noisy_generator(make_clip_from_seed(200 + s, "train"), s) for s in range(30)])
    x, y = np.concatenate([clean, noisy]), np.array([0] * 30 + [1] * 30)
    from detectors.oneclass import OneClassFamily

    fams = [LinearFamily("spectral").fit(x[::2], y[::2]), LinearFamily("naive").fit(x[::2], y[::2]),
            OneClassFamily(min_group=5).fit(x[::2], y[::2])]
    for calibration in ("platt", "isotonic"):
        det = Detector("t", fams, calibration=calibration).calibrate(x[1::2], y[1::2])
        p = det.predict_batch(x)
        assert ((p >= 0) & (p <= 1)).all()
        assert det.oc_index == 2 and roc_auc_score(y, p) > 0.9
        again = Detector.load(det.save(tmp_path / calibration))
        assert np.array_equal(again.predict_batch(x), p)
        assert again.threshold == det.threshold and again.calibration == calibration
        assert again.threshold_rule == det.threshold_rule == "conformal" and again.real_below == det.real_below
        assert not list(tmp_path.glob(".*partial*"))
    det = Detector("t", fams, combine="trimmed").calibrate(x[1::2], y[1::2])
    again = Detector.load(det.save(tmp_path / "trimmed"))
    assert again.combine == "trimmed" and np.array_equal(again.predict_batch(x), det.predict_batch(x))


def test_damaged_detector_files_are_one_line_errors(tmp_path, monkeypatch, capsys):
    """A detector folder is user data: unreadable weights or a detector.json with a wrong type
    are refused when loaded, naming the folder (exit 3), never an internal error mid-prediction."""
    import shutil

    from detectors.registry import SHIPPED, load_detector
    from evalkit.errors import MissingResourceError

    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path))
    for case, damage in (("weights", lambda d: (d / "weights.safetensors").write_bytes(b"\xff" * 64)),
                         ("threshold", lambda d: (d / "detector.json").write_text(json.dumps(
                             {**json.loads((d / "detector.json").read_text()), "threshold": "high"}))),
                         ("json", lambda d: (d / "detector.json").write_text("{oops"))):
        folder = tmp_path / "detectors" / case
        shutil.copytree(SHIPPED / "default", folder)
        damage(folder)
        with pytest.raises(MissingResourceError, match="detector files are damaged") as e:
            load_detector(case)
        assert str(folder) in str(e.value) and "\n" not in str(e.value)
    assert load_detector().threshold > 0.5  # the shipped one still loads

    # verify: a damaged *default* detector is said and left out (provenance is still checked);
    # one named with --detector is an error
    from evalkit.cli import main
    from evalkit.errors import EXIT_MISSING
    from evalkit.video import write_video

    shutil.copytree(tmp_path / "detectors" / "weights", tmp_path / "detectors" / "default")
    clip = write_video(tmp_path / "c.mp4", make_clip_from_seed(1, "test"))
    capsys.readouterr()
    assert main(["verify", str(clip)]) == 0
    out, err = capsys.readouterr()
    assert "detector files are damaged" in err and "verifying without the detector" in err
    assert "No detector was run" in out
    assert main(["verify", "--detector", "default", str(clip)]) == EXIT_MISSING


def test_detector_abstains_below_its_smallest_frames(real_videos_dir, tmp_path):
    """Real footage shrunk to 8x8 is blown up 8x to the protocol's 64x64 and read as nearly
    generated (bikes: p 0.95, a hair under the threshold); below MIN_SIDE the detector says
    `uncertain` whatever p, in `detect` and in `verify`, and says why."""
    import cv2

    from detectors.ensemble import MIN_SIDE
    from detectors.predict import detect_clip
    from detectors.registry import load_detector
    from evalkit.provenance.verify import verify_file
    from evalkit.video import read_video, write_video

    det = load_detector()
    frames = read_video(real_videos_dir / "bikes.mp4", max_frames=16).frames
    for side, abstains in ((8, True), (MIN_SIDE, False), (32, False)):
        small = np.stack([cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA) for f in frames])
        row = detect_clip(det, Clip(frames=small, fps=25.0, prompt=""))
        assert bool(row["protocol"]["out_of_domain"]) is abstains, side
        if abstains:
            assert row["decision"] == "uncertain" and f"{side}x{side}" in row["protocol"]["out_of_domain"]
    assert det.decide(0.999, "too small") == "uncertain" and det.decide(0.999) == "generated"
    tiny = write_video(tmp_path / "tiny.mp4", np.stack([cv2.resize(f, (8, 8)) for f in frames]), fps=25)
    res = verify_file(tiny, detector=det)
    assert res["detector"]["decision"] == "uncertain" and res["detector"]["out_of_domain"]
    assert any(r.startswith("The detector abstains") for r in res["reasons"])


def test_detector_abstains_on_clips_shorter_than_its_protocol(tmp_path):
    """A clip shorter than the protocol is padded by repeating its last frame; the threshold was
    fitted on whole clips, and one world frame padded to 16 read as generated (p 0.99, the
    default detector, session 27). Such clips are `uncertain` whatever p, and say why."""
    from detectors.predict import detect_clip
    from detectors.registry import load_detector
    from evalkit.provenance.verify import verify_file
    from evalkit.video import write_video
    from evalkit.world.clips import make_clip

    det = load_detector()
    frames = make_clip("test", 0).frames  # [16, 32, 32, 3]
    assert len(frames) == det.protocol.frames
    for k in (1, 2, 8, 16):
        row = detect_clip(det, Clip(frames=np.ascontiguousarray(frames[:k]), fps=8.0, prompt=""))
        note = row["protocol"]["out_of_domain"]
        assert bool(note) is (k < 16), k
        if note:
            assert row["decision"] == "uncertain" and f"{k} frame" in note and "16" in note
    still = write_video(tmp_path / "still.mp4", frames[:1], fps=8)
    res = verify_file(still, detector=det)
    assert res["detector"]["decision"] == "uncertain" and "1 frame," in res["detector"]["out_of_domain"]
    assert any(r.startswith("The detector abstains") for r in res["reasons"])


def test_detector_abstains_on_flat_noise_and_still_frames(real_videos_dir, tmp_path):
    """Frames with nothing a verdict can rest on read confident and wrong (session 29): a real
    video's black lead-in p 1.00 generated, pure noise p 0.00 real, one generated frame repeated
    "real". Each now abstains and says why; real footage and moving clips do not."""
    from detectors.ensemble import picture_note
    from detectors.predict import detect_clip, detect_files
    from detectors.registry import load_detector
    from evalkit.video import read_video, write_video

    det = load_detector()
    bikes = read_video(real_videos_dir / "bikes.mp4", max_frames=16).frames
    rng = np.random.default_rng(0)
    cases = {"flat": np.zeros_like(bikes), "noise": rng.integers(0, 256, bikes.shape, dtype=np.uint8),
             "do not change": np.repeat(bikes[:1], 16, axis=0)}
    for says, frames in cases.items():
        row = detect_clip(det, Clip(frames=frames, fps=25.0, prompt=""))
        assert row["decision"] == "uncertain" and says in row["protocol"]["out_of_domain"], (says, row)
    assert picture_note(bikes) is None
    # noise upscaled, letterboxed or both (a screen recording) is still noise: it read "real"
    import cv2

    small = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    for edited in (small.repeat(2, 1).repeat(2, 2),
                   np.stack([cv2.resize(f, (128, 128), interpolation=cv2.INTER_CUBIC) for f in small]),
                   np.pad(small.repeat(2, 1).repeat(2, 2), ((0, 0), (16, 16), (0, 0), (0, 0)))):
        assert "noise" in (picture_note(edited) or ""), edited.shape
    # under 48 px the far lag is not measured, and not printed (a placeholder 1.00 was, session 33)
    assert "noise" in picture_note(small) and "at 2 px" not in picture_note(small)
    for name in ("bigbuckbunny.mp4", "carphone_pristine.mp4"):  # footage at any size is no noise
        assert picture_note(read_video(real_videos_dir / name, max_frames=16).frames) is None
    # a black lead-in longer than the judged frames: the file is judged on them, and says how much
    lead = write_video(tmp_path / "lead-in.mp4", np.concatenate([np.zeros_like(bikes), bikes]), fps=25)
    (row,) = detect_files([lead])
    assert row["decision"] == "uncertain" and "flat" in row["protocol"]["out_of_domain"]
    assert row["protocol"]["video_frames"] == 32 and row["protocol"]["frames"] == 16
    assert row["detector"]["calibration"] in ("platt", "isotonic") and row["detector"]["calibration_warnings"] == []


def test_an_empty_detector_name_is_a_mistake_not_the_default():
    from detectors.registry import detector_path

    with pytest.raises(BadInputError, match="--detector is empty"):
        detector_path("  ")


def test_training_refuses_one_path_as_both_classes_and_warns_on_a_thin_calibration(tmp_path):
    from types import SimpleNamespace

    from detectors.train import TrainConfig, calibration_warnings, train_detector

    with pytest.raises(BadInputError, match="under both --real and --fake"):
        train_detector([tmp_path / "a", tmp_path / "b"], [tmp_path / "x", tmp_path / ".." / tmp_path.name / "b"],
                       name="t", cfg=TrainConfig(families=("naive",)), progress=False, log_mlflow=False)
    # one inside the other, or the same bytes under both (a copied folder): trained as both classes
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "a.mp4").write_bytes(b"same video bytes")
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "b.mp4").write_bytes(b"same video bytes")
    for real, fake, why in (([tmp_path / "f" / "a.mp4"], [tmp_path / "f"], "inside"),
                            ([tmp_path / "f"], [tmp_path / "copy"], "the same bytes as")):
        with pytest.raises(BadInputError, match=why):
            train_detector(real, fake, name="t", cfg=TrainConfig(families=("naive",)), progress=False,
                           log_mlflow=False)
    thin = SimpleNamespace(target_fpr=0.01, info={"calibration_set": {
        "n_real": 33, "n_generated": 2, "expected_fpr_new_real": 0.0294}})
    w = calibration_warnings(thin)
    assert len(w) == 2 and "33 real clips" in w[0] and "at least 99 real" in w[0] and "2 generated" in w[1]
    ample = SimpleNamespace(target_fpr=0.01, info={"calibration_set": {
        "n_real": 170, "n_generated": 131, "expected_fpr_new_real": 0.0058}})
    assert calibration_warnings(ample) == []


class ColumnFamily:
    """A stand-in family whose logit for a clip is one column of the 'batch' it is given."""

    def __init__(self, name: str, j: int):
        self.name, self.j = name, j

    def score(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(batch, dtype=np.float64)[:, self.j]


def test_trimmed_pooling_lets_no_single_family_decide():
    """Four families separate the calibration clips equally well. A clip that three of them call
    clearly real and one calls generated with huge confidence is generated under stacking (its
    weights add the logits up) and not under the trimmed mean, which also still calls a clip
    generated when three of four say so."""
    from detectors.ensemble import trimmed_mean

    assert np.allclose(trimmed_mean(np.array([[0.0, 1.0, 2.0, 9.0], [-9.0, 1.0, 3.0, 4.0]])), [1.5, 2.0])
    assert np.allclose(trimmed_mean(np.array([[0.0, 5.0, 1.0]])), [1.0])  # three: the median
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 300)
    z = rng.normal(0.0, 1.0, (600, 4)) + np.where(y[:, None] == 1, 2.0, -2.0)
    fams = [ColumnFamily(n, j) for j, n in enumerate(("spectral", "temporal", "cnn3d", "naive"))]
    lone = np.array([[-3.0, -3.0, 15.0, -3.0]])
    three = np.array([[2.5, 2.5, -3.0, 2.5]])
    stack = Detector("s", fams).calibrate(z, y)
    trim = Detector("t", fams, combine="trimmed").calibrate(z, y)
    assert stack.decide(stack.predict_batch(lone)[0]) == "generated"
    assert trim.decide(trim.predict_batch(lone)[0]) == "real"
    assert trim.decide(trim.predict_batch(three)[0]) == "generated"
    assert roc_auc_score(y, trim.predict_batch(z)) > 0.99
    with pytest.raises(ValueError, match="combine"):
        Detector("x", fams, combine="vote")


# --- training, registry, MLflow, CLI --------------------------------------------------------


@pytest.fixture(scope="module")
def trained(folders, tmp_path_factory, real_videos_dir):
    """One detector trained through the library, in a private home and MLflow store."""
    import mlflow

    from detectors.train import TrainConfig, train_detector

    root = tmp_path_factory.mktemp("trained")
    mp = pytest.MonkeyPatch()
    mp.setenv("EVALKIT_HOME", str(root / "home"))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.chdir(root)
    mlflow.set_tracking_uri(uri)
    real, fake = folders
    # Codec augmentation off here: at this tiny size it erases the stand-in's noise (its own test is below).
    # Stacking: the stand-in generator only adds noise, which the temporal family barely sees, and
    # an equal-weight pool of two would halve the spectral family's evidence.
    cfg = TrainConfig(families=("spectral", "temporal"), natural_windows=10, seed=0, codec_augment=False,
                      combine="stack")
    report = train_detector([real, real_videos_dir / "carphone_pristine.mp4"], [fake], name="unit",
                            cfg=cfg, progress=False)
    yield report, root
    mp.undo()


@pytest.fixture
def in_trained(trained, monkeypatch):
    """Point this test at the trained detector's home and MLflow store (conftest isolates each
    test's EVALKIT_HOME)."""
    import mlflow

    report, root = trained
    monkeypatch.setenv("EVALKIT_HOME", str(root / "home"))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return report, root


def test_training_separates_and_meets_its_false_positive_target(trained):
    report, _ = trained
    m = report["rows"]["ensemble"]["metrics"]
    assert m["auc"].value > 0.95 and m["auc"].n == report["rows"]["ensemble"]["n"]
    assert m["auc"].ci_low <= m["auc"].value <= m["auc"].ci_high
    assert set(report["rows"]) == {"ensemble", "spectral", "temporal", "naive"}
    assert report["clips"]["train"] > report["clips"]["test"] > 0
    # the split by class adds up, and a class short in the test split is named in a warning
    from detectors.train import MIN_TEST_CLIPS

    by = report["clips_by_class"]
    assert all(c["real"] + c["generated"] == report["clips"][s] for s, c in by.items())
    short = [k for k, v in by["test"].items() if v < MIN_TEST_CLIPS]
    assert short == ["generated"]  # this small fixture's test split: 4 generated clips
    split = [w for w in report["warnings"] if w.startswith("the test split")]
    assert [w.split(" clips")[0].rsplit(" ", 1)[-1] for w in split] == short
    # and its calibration split is far under the 99 clips a class the 1% target needs: said too
    cal = by["calib"]
    thin = [w for w in report["warnings"] if w.startswith("the calibration split")]
    assert len(thin) == (cal["real"] < 99 and report["expected_fpr_new_real"] > 0.01) + (cal["generated"] < 99)
    assert thin and all("give at least 99" in w for w in thin)


def test_trained_detector_is_saved_registered_and_logged(in_trained):
    from mlflow import MlflowClient

    from detectors.registry import list_detectors, load_detector

    report, root = in_trained
    assert list_detectors().get("unit") == "home"
    det = load_detector("unit")
    assert det.threshold == pytest.approx(report["threshold"]) and len(det.weights_sha256) == 64
    client = MlflowClient()
    versions = client.search_model_versions("name='unit'")
    assert len(versions) == 1 and versions[0].run_id == report["mlflow_run_id"]
    run = client.get_run(report["mlflow_run_id"])
    assert {"auc", "auc_ci_low", "auc_n", "naive.auc", "ece", "natural_fpr"} <= set(run.data.metrics)
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"roc.png", "calibration.png", "detector"} <= files


def test_detect_cli_json_bad_file_and_unknown_name(in_trained, folders, tmp_path, capsys):
    from evalkit.cli import main

    real, fake = folders
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    code = main(["detect", str(fake / "clips/c000.mp4"), str(real / "clips/c001.mp4"), str(bad),
                 "--detector", "unit", "--json"])
    out, err = capsys.readouterr()
    assert code == 2, err
    rows = json.loads(out)
    assert [row["decision"] for row in rows[:2]] == ["generated", "real"]
    assert rows[0]["p_generated"] > rows[1]["p_generated"]
    assert rows[0]["detector"]["combine"] == "stack" and rows[0]["detector"]["families"] == ["spectral", "temporal"]
    assert rows[0]["detector"]["threshold_rule"] == "conformal" and rows[0]["detector"]["target_fpr"] == 0.01
    assert rows[0]["protocol"]["frames"] == 16 and rows[0]["protocol"]["source_size"] == [32, 32]
    assert rows[2]["error"] and "broken.mp4" in rows[2]["error"] and rows[2]["p_generated"] is None
    assert main(["detect", str(bad), "--detector", "nosuch"]) == 3
    err = capsys.readouterr().err
    assert "nosuch" in err and "unit" in err and len(err.strip().splitlines()) == 1
    # a folder stands for its videos (before: 'is a directory' as an error row)
    assert main(["detect", str(fake), "--detector", "unit", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in rows] == [str(p) for p in sorted((fake / "clips").glob("*.mp4"))]
    (tmp_path / "empty").mkdir()
    assert main(["detect", str(tmp_path / "empty"), "--detector", "unit"]) == 2
    assert "no videos in it" in capsys.readouterr().err
    # session 30: a path that is not there is exit 3 (it was 2), and a file name cannot forge a row
    assert main(["detect", str(tmp_path / "nothere.mp4"), "--detector", "unit"]) == 3
    capsys.readouterr()
    import shutil

    forged = tmp_path / "ok\nfake.mp4: p_generated 1.000 -> generated.mp4"
    shutil.copy(fake / "clips/c000.mp4", forged)
    assert main(["detect", str(forged), "--detector", "unit"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "ok\\nfake.mp4" in out


def test_detect_windows_show_generated_footage_after_a_real_lead_in(in_trained, folders, tmp_path, capsys):
    """The verdict rests on the first 16 frames, so a real lead-in before generated footage read
    real with nothing to say otherwise; `--windows N` judges N windows across the video and names
    where it reads generated (session 30), the decision unchanged."""
    import numpy as np

    from evalkit.cli import main
    from evalkit.video import read_video, write_video

    real, fake = folders
    lead, tail = read_video(real / "clips/c001.mp4"), read_video(fake / "clips/c000.mp4")
    spliced = write_video(tmp_path / "spliced.mp4", np.concatenate([lead.frames, tail.frames]), fps=lead.fps)
    assert main(["detect", str(spliced), "--detector", "unit", "--windows", "2", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["decision"] == "real" and [w["frames"] for w in row["windows"]] == [[0, 15], [16, 31]]
    assert row["windows"][0]["p_generated"] == pytest.approx(row["p_generated"])
    assert row["windows"][1]["decision"] == "generated"
    assert main(["detect", str(spliced), "--detector", "unit", "--windows", "2"]) == 0
    assert "1 later window(s) read generated, e.g. frames 16-31" in capsys.readouterr().out


def test_detect_judges_videos_over_the_decode_budget_and_the_frame_limit(in_trained, folders, tmp_path, capsys,
                                                                          monkeypatch):
    """detect reads 16 frames, yet refused every video over the decode budget (a 1080p video over
    23 s) or the frame limit: the header check meant only to count the video's frames failed.
    --windows reads such a video reduced, across its first frame-limit frames."""
    import numpy as np

    from evalkit.cli import main
    from evalkit.video import read_video, write_video

    real, fake = folders
    tail = read_video(fake / "clips/c000.mp4")
    big = tail.frames.repeat(4, axis=1).repeat(4, axis=2)  # 128 px: a reduction by 2 still keeps 64
    long = write_video(tmp_path / "long.mp4", np.concatenate([big] * 3), fps=tail.fps)  # 48 frames
    h, w = big.shape[1:3]
    monkeypatch.setenv("EVALKIT_MAX_DECODED_BYTES", str(40 * h * w * 3))  # room for 40 frames as they are
    assert main(["detect", str(long), "--detector", "unit", "--json", "--windows", "2"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["error"] is None and row["protocol"]["video_frames"] == 48
    assert [x["frames"] for x in row["windows"]] == [[0, 15], [32, 47]]
    monkeypatch.delenv("EVALKIT_MAX_DECODED_BYTES")
    monkeypatch.setenv("EVALKIT_MAX_FRAMES", "40")
    assert main(["detect", str(long), "--detector", "unit", "--json", "--windows", "2"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["error"] is None and row["protocol"]["video_frames"] == 48
    assert [x["frames"] for x in row["windows"]] == [[0, 15], [24, 39]]  # across the first 40
    assert row["windows_cover"] == [0, 39]
    assert main(["detect", str(long), "--detector", "unit", "--windows", "2"]) == 0
    assert "windows cover frames 0-39 of 48" in capsys.readouterr().out


def test_verify_reports_the_detector(in_trained, folders):
    from detectors.registry import load_detector
    from evalkit.provenance.verify import verify_file

    real, fake = folders
    res = verify_file(fake / "clips/c003.mp4", detector=load_detector("unit"))
    assert res["detector"]["name"] == "unit" and res["detector"]["p_generated"] >= res["detector"]["threshold"]
    assert res["detector"]["decision"] == "generated"
    assert res["verdict"] == "likely ai-generated (detector only)"


def test_versions_of_one_recording_are_one_recording():
    from detectors.data import recording_of

    assert recording_of("natural:carphone_pristine.mp4") == recording_of("natural:carphone_distorted.mp4") == "carphone"
    assert recording_of("natural:bikes.mp4") == "bikes" != recording_of("natural:bigbuckbunny.mp4")
    # numbered names are recordings of their own (a camera's IMG_0001, IMG_0002 were all "IMG")
    assert recording_of("natural:IMG_0001.MOV") != recording_of("natural:IMG_0002.MOV")
    assert recording_of("natural:my_video_1.mp4") == "my_video_1"
    assert recording_of("uvit-ddim20") is None and recording_of("world-test") is None


def test_calibration_scores_natural_windows_as_if_their_recording_were_unseen(folders, real_videos_dir):
    """The calibration split's natural windows are scored by families refitted without their
    recording (both carphone versions count as one), so the threshold reflects unseen footage."""
    from detectors.data import concat, load_source, recording_of
    from detectors.train import TrainConfig, assemble, crossfit_natural, fit_families

    real, fake = folders
    cfg = TrainConfig(families=("spectral",), natural_windows=10, codec_augment=False, crossfit_folds=2)
    kw = dict(natural_windows=10, codec_augment=False)
    data = concat([load_source(real, 0, **kw), load_source(real_videos_dir / "bikes.mp4", 0, **kw),
                   load_source(real_videos_dir / "carphone_pristine.mp4", 0, **kw),
                   load_source(real_videos_dir / "carphone_distorted.mp4", 0, **kw), load_source(fake, 1, **kw)])
    cross = crossfit_natural(data, ("spectral",), cfg)
    cal = np.flatnonzero(data.split == "calib")
    recs = [recording_of(data.source[i]) for i in cal]
    assert sorted(cross["rows"].tolist()) == [j for j, r in enumerate(recs) if r is not None]
    for rec in ("bikes", "carphone"):
        held = np.array([recording_of(s) == rec for s in data.source])
        alone = fit_families(data.subset(~held), ("spectral",), cfg)["spectral"][0]
        rows = np.array([j for j in cross["rows"] if recs[j] == rec])
        got = cross["spectral"][np.searchsorted(cross["rows"], rows)]
        np.testing.assert_allclose(got, alone.score(data.x[cal[rows]]))
    seen = fit_families(data, ("spectral",), cfg)["spectral"][0]
    assert not np.allclose(cross["spectral"], seen.score(data.x[cal[cross["rows"]]]))
    det = assemble("x", [seen], data, cfg, cross)
    assert 0.0 < det.threshold <= 1.0
    assert crossfit_natural(data, ("spectral",), TrainConfig(crossfit_folds=0)) == {}

    # one recording as the only real source: holding it out leaves nothing real to fit on. That
    # was an internal error from scikit-learn ("needs samples of at least 2 classes"); now one line.
    only = concat([load_source(real_videos_dir / "bikes.mp4", 0, **kw), load_source(fake, 1, **kw)])
    with pytest.raises(BadInputError, match="no real training clips once bikes is held out"):
        crossfit_natural(only, ("spectral",), cfg)


def test_shipped_default_matches_its_registry_and_tells_its_kinds_apart(real_videos_dir, monkeypatch, tmp_path):
    """The shipped `default` detector: files as registered, threshold as registered, and on clips
    of the kinds it was trained on (not its training clips) generated ones score above real ones."""
    import hashlib
    import json

    from detectors.data import reencode
    from detectors.registry import SHIPPED, load_detector
    from evalkit.video import read_video
    from evalkit.world import make_clip
    from generators.base import get_generator

    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path))  # no user-trained `default` in the way
    entry = json.loads((SHIPPED / "registry.json").read_text())["default"]
    for name, sha in entry["files"].items():
        assert hashlib.sha256((SHIPPED / "default" / name).read_bytes()).hexdigest() == sha, name
    det = load_detector("default")
    assert det.path == SHIPPED / "default" and abs(det.threshold - entry["threshold"]) < 1e-12
    # As a user hands them over: written to MP4 (evalkit's CRF 18). A never-compressed render of a
    # textured scene is outside what the detector was trained on (README: Detecting synthetic video).
    world = [make_clip("test", i, seed=4242) for i in range(4)]
    footage = read_video(real_videos_dir / "bikes.mp4").frames
    real = [reencode(c, 18) for c in world] + [Clip(frames=footage[200:216], fps=25.0)]
    fake = [reencode(c, 18) for c in get_generator("gan:small").generate([c.prompt for c in world], [1, 2, 3, 4])]
    p_real, p_fake = det.predict(real), det.predict(fake)
    assert max(p_real) < min(p_fake), (p_real, p_fake)


def test_lossless_and_uncompressed_inputs_get_the_codec_pass_training_clips_had(tmp_path, monkeypatch):
    """A textured world render never written to a lossy file scored p ~ 1 before this pass: every
    training clip went through H.264. Raw frames and lossless files now get one CRF 18 round trip."""
    import av

    from detectors.data import codec_normalised, reencode
    from detectors.predict import detect_files
    from detectors.registry import load_detector
    from evalkit.world import make_clip

    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    textured = [c for c in (make_clip("test", i, seed=4242) for i in range(8))
                if c.meta["scene"].background == "noise"][:2]
    assert textured, "the world has textured backgrounds in these seeds"
    det = load_detector("default")
    as_mp4 = det.predict([reencode(c, 18) for c in textured])
    raw = det.predict(textured)
    assert max(abs(a - b) for a, b in zip(raw, as_mp4)) < 0.05 and max(raw) < det.threshold
    # A lossless file (FFV1 in Matroska): detected as lossless, given the pass, scored real.
    path = tmp_path / "lossless.mkv"
    with av.open(str(path), "w") as out:
        s = out.add_stream("ffv1", rate=8)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv444p"
        for f in textured[0].frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    row, = detect_files([path])
    assert row["error"] is None and "lossless ffv1" in row["protocol"]["codec"]
    assert row["p_generated"] < det.threshold
    # Lossy inputs are left as they are.
    mp4 = reencode(textured[0], 23)
    assert codec_normalised(mp4, 16)[1] is None and codec_normalised(textured[0], 16)[1] is not None


def test_families_share_features_within_one_prediction(monkeypatch, tmp_path):
    """The shipped default's one-class family reads the spectral and temporal features its
    sibling families compute: one prediction computes each once, with the same probabilities."""
    from detectors import features
    from detectors.registry import load_detector
    from evalkit.world.clips import WorldConfig, make_clip_from_seed

    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path))
    det = load_detector("default")
    x = features.stack_protocol([make_clip_from_seed(s, "test", WorldConfig(size=64)) for s in range(6)])
    calls = {"temporal": 0}
    fn, names = features.FEATURE_SETS["temporal"]

    def counted(batch):
        calls["temporal"] += 1
        return fn(batch)

    monkeypatch.setitem(features.FEATURE_SETS, "temporal", (counted, names))
    shared = det.predict_batch(x)
    assert calls["temporal"] == 1
    separate = det.probability_from_logits(np.stack([f.score(x) for f in det.families], 1))  # no cache
    assert calls["temporal"] == 3 and np.array_equal(shared, separate)


def test_feature_cache_computes_each_clip_once_across_batches(monkeypatch):
    """Training fits the families on subsets, folds and splits of one set of clips: under one
    `feature_cache` every clip's features are computed once, whatever batch or order it comes in,
    equal to computing them directly; a nested block shares the outer cache."""
    from detectors import features
    from evalkit.world.clips import WorldConfig, make_clip_from_seed

    x = features.stack_protocol([make_clip_from_seed(s, "test", WorldConfig(size=64)) for s in range(8)])
    rows = {"n": 0}
    fn, names = features.FEATURE_SETS["temporal"]

    def counted(batch):
        rows["n"] += len(batch)
        return fn(batch)

    monkeypatch.setitem(features.FEATURE_SETS, "temporal", (counted, names))
    direct = fn(x)
    with features.feature_cache():
        a = features.features_of("temporal", x[[5, 1, 2]])
        with features.feature_cache():
            b = features.features_of("temporal", x[[7, 6, 5, 4, 3, 2, 1, 0, 0]])  # a duplicate row too
        c = features.features_of_many(["temporal", "naive"], x[:4])
    assert rows["n"] == 8  # 3 clips, then the 5 not seen yet; nothing afterwards
    np.testing.assert_allclose(a, direct[[5, 1, 2]], rtol=1e-9)
    np.testing.assert_allclose(b, direct[[7, 6, 5, 4, 3, 2, 1, 0, 0]], rtol=1e-9)
    np.testing.assert_allclose(c[0], direct[:4], rtol=1e-9)
    np.testing.assert_allclose(c[1], features.naive_features(x[:4]), rtol=1e-9)
    # A clip that differs in one pixel is another clip.
    y = x[:1].copy()
    y[0, 3, 10, 10, 1] += 0.5
    with features.feature_cache():
        features.features_of("temporal", x[:1])
        features.features_of("temporal", y)
    assert rows["n"] == 10
    features.features_of("temporal", x[:2])  # outside any block: computed
    assert rows["n"] == 12


def test_cli_defaults_are_the_library_defaults():
    """`detectors train` spells its defaults out (the CLI starts without scikit-learn); they must
    be the library's."""
    from detectors.ensemble import COMBINES, THRESHOLD_RULES
    from detectors.families import DEFAULT_FAMILIES
    from detectors.train import TrainConfig
    from evalkit.cli import detectors_train

    opts = {p.name: p for p in detectors_train.params}
    assert tuple(opts["families"].default.split(",")) == DEFAULT_FAMILIES == TrainConfig.families
    assert opts["combine"].default == TrainConfig.combine
    assert tuple(opts["combine"].type.choices) == COMBINES
    assert opts["threshold_rule"].default == TrainConfig.threshold_rule
    assert tuple(opts["threshold_rule"].type.choices) == THRESHOLD_RULES


def test_natural_windows_stay_inside_their_time_segment_and_short_videos_are_one_group(tmp_path):
    """A short segment's windows ran into the next one, so a video under about 75 frames gave
    "held-out" test windows made of its own training frames (16 of 16 at 16 and 60 frames; 7 of
    16 calibration windows at 120). Each segment is a colour here: a window that crossed a
    boundary would hold two."""
    import numpy as np

    from detectors.data import load_source
    from detectors.features import Protocol
    from evalkit.video import write_video

    colours = {"train": (200, 30, 30), "calib": (30, 200, 30), "test": (30, 30, 200)}

    def video(name, t):
        f = np.zeros((t, 48, 48, 3), np.uint8)
        cuts = {"train": (0, int(0.6 * t)), "calib": (int(0.6 * t), int(0.8 * t)), "test": (int(0.8 * t), t)}
        for split, (a, b) in cuts.items():
            f[a:b] = colours[split]
        return write_video(tmp_path / name, f, fps=24.0, crf=0)

    proto = Protocol(frames=16, size=32)
    data = load_source(video("long.mp4", 120), 0, protocol=proto, natural_windows=30, codec_augment=False)
    for x, split in zip(data.x, data.split):
        arr = np.asarray(x, dtype=np.float32).reshape(16, -1, 3) if x.shape[-1] == 3 else \
            np.moveaxis(np.asarray(x, dtype=np.float32), 1, -1).reshape(16, -1, 3)
        dominant = {int(np.argmax(fr.mean(axis=0))) for fr in arr}
        assert dominant == {int(np.argmax(colours[split]))}, (split, dominant)
    assert set(data.split) == {"train", "calib", "test"}
    short = load_source(video("short.mp4", 60), 0, protocol=proto, natural_windows=20, codec_augment=False)
    assert len(set(short.split)) == 1  # under five windows long: one group, never on both sides
    gen = tmp_path / "gen"
    gen.mkdir()
    for i in range(3):
        video(f"gen/g{i}.mp4", 16)
    fake = load_source(gen, 1, protocol=proto, natural_windows=4, codec_augment=False)
    assert not any(s.startswith("natural:") for s in fake.source)  # generated videos are not "natural footage"


@pytest.mark.parametrize("edit", [{"threshold": float("nan")}, {"threshold": -3}, {"threshold": 7.0},
                                  {"protocol": {"frames": 0, "size": 64}}, {"protocol": {"frames": 16, "size": "64"}},
                                  {"protocol": {"frames": 10_000_000, "size": 64}}, {"family_states": []},
                                  {"info": "x"}, {"info": {"calibration_warnings": "too few"}}])
def test_a_damaged_detector_json_is_refused_when_loaded(tmp_path, monkeypatch, edit):
    """Values of the right type but wrong: NaN or out-of-range thresholds gave wrong verdicts with
    exit 0, bad protocols and shapes were internal errors or blamed the video (session 31)."""
    import shutil

    from detectors.registry import SHIPPED, load_detector
    from evalkit.errors import MissingResourceError

    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path))
    folder = tmp_path / "detectors" / "mangled"
    shutil.copytree(SHIPPED / "default", folder)
    meta = json.loads((folder / "detector.json").read_text())
    (folder / "detector.json").write_text(json.dumps({**meta, **edit}))
    with pytest.raises(MissingResourceError, match="damaged"):
        load_detector("mangled")


def test_training_never_saves_over_a_folder_that_is_not_only_a_detector(tmp_path, monkeypatch):
    from detectors.registry import check_replaceable
    from evalkit.errors import BadInputError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "NOTES.txt").write_text("keep me")
    with pytest.raises(BadInputError, match="NOTES.txt"):
        check_replaceable(mine)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(BadInputError, match="not a detector's folder"):
        check_replaceable(tmp_path / "afile")
    assert check_replaceable(tmp_path / "new") == tmp_path / "new"


def test_padded_or_tiny_training_clips_are_warned_about(tmp_path):
    """6-frame "generated" clips of the same renderer as the real ones scored AUC 0.92 on the
    padding alone, without a word (session 31)."""
    from detectors.data import load_source, shape_warnings
    from detectors.features import Protocol
    from evalkit.world import WorldConfig
    from evalkit.world.export import render_folder

    render_folder(tmp_path / "gen", n=3, config=WorldConfig(frames=6, size=12), progress=False)
    s = load_source(tmp_path / "gen", 1, protocol=Protocol(frames=16, size=32), codec_augment=False)
    assert s.meta["padded"] == s.meta["n"] == 3 and s.meta["under_min_side"] == 3
    w = shape_warnings([s], 16)
    assert len(w) == 2 and "fewer than 16 frames" in w[0] and "under 16 px" in w[1]


def test_a_matroska_row_says_how_much_of_it_was_judged(real_videos_dir, tmp_path):
    """Matroska/WebM headers hold no frame count: the row said nothing of the rest of the video."""
    from detectors.predict import detect_files
    from evalkit.video import read_video, write_video

    frames = read_video(real_videos_dir / "bikes.mp4", max_frames=40).frames
    webm = write_video(tmp_path / "bikes.mkv", frames, fps=25)  # Matroska: no count in the header
    (row,) = detect_files([webm])
    assert row["protocol"]["video_frames"] == 40 and row["protocol"]["frames"] < 40


def test_fine_foliage_is_no_noise(real_videos_dir):
    """Leaves cropped from the film correlate 0.27 at 1/32 of the frame: under the first line of
    0.3 there they were called noise and the detector abstained (session 32)."""
    from detectors.ensemble import picture_note
    from evalkit.video import read_video

    film = read_video(real_videos_dir / "bigbuckbunny.mp4", max_frames=16).frames
    h, w = film.shape[1:3]
    noisy = [(y, x) for y in range(0, h - 128, 64) for x in range(0, w - 128, 64)
             if "noise" in (picture_note(film[:, y:y + 128, x:x + 128]) or "")]
    assert not noisy, f"crops read as noise at {noisy}"
