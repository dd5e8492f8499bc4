"""Camera clips from still photographs (benchmarks/detection/photos.py): the real side's extra footage."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.detection.photos import (_movers, _render_movers, film_photo, main, make_photo_clips, packaged_photos,
                                         read_photos)
from evalkit.clipset import iter_clips


@pytest.fixture(scope="module")
def photos():
    p = packaged_photos()
    assert {"china", "flower"} <= set(p)  # scikit-learn's, always installed with evalkit
    return p


def _global_shift(a: np.ndarray, b: np.ndarray, r: int = 6) -> tuple[int, int]:
    """The integer (dy, dx) that best aligns frame b onto frame a (grey, central region)."""
    a, b = a.mean(-1), b.mean(-1)
    n = a.shape[0]
    core = a[r:n - r, r:n - r]
    err = {(dy, dx): np.mean((core - b[r + dy:n - r + dy, r + dx:n - r + dx]) ** 2)
           for dy in range(-r, r + 1) for dx in range(-r, r + 1)}
    return min(err, key=err.get)


def test_clip_shape_determinism_and_content(photos):
    img = photos["china"]
    a = film_photo(img, np.random.default_rng(3), frames=12, size=64)
    b = film_photo(img, np.random.default_rng(3), frames=12, size=64)
    c = film_photo(img, np.random.default_rng(4), frames=12, size=64)
    assert a.shape == (12, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.all(a.reshape(-1, 3).std(0) > 5)  # a textured scene, not a flat field
    # Its colours are the photo's (sensor noise and exposure drift are small).
    assert np.allclose(a.reshape(-1, 3).mean(0), img.reshape(-1, 3).mean(0), atol=40)
    # Sensor noise is drawn anew every frame: no two frames are identical even when still.
    assert all(not np.array_equal(a[i], a[i + 1]) for i in range(11))


def test_camera_moves_smoothly(photos):
    """Over many clips the camera pans: consecutive frames are shifted copies of each other,
    the shift is small from frame to frame, and the clip drifts over its length."""
    moved = 0
    for seed in range(8):
        f = film_photo(photos["flower"], np.random.default_rng(seed), frames=16, size=96).astype(np.float32)
        steps = [_global_shift(f[i], f[i + 1]) for i in range(15)]
        assert max(max(abs(dy), abs(dx)) for dy, dx in steps) <= 5  # hand-held, not teleporting
        dy, dx = _global_shift(f[0], f[8])
        moved += (abs(dy) + abs(dx)) >= 1
    assert moved >= 4


def test_movers_add_independent_motion(photos):
    """Movers change part of a still scene, not all of it, differently at every moment; clips
    with them are deterministic, and clips without them are exactly what they were before."""
    img = photos["china"].astype(np.float32)
    bg = np.ascontiguousarray(img[100:180, 200:280])  # a still 80 px view of the photo
    for seed in range(4):
        movers = _movers(img, np.random.default_rng(seed), 80, 1.0, 3)
        frames = [_render_movers(bg.copy(), img, movers, float(u)) for u in range(6)]
        changed = [np.abs(f - bg).max(-1) > 2 for f in frames]
        assert all(0.005 < c.mean() < 0.9 for c in changed), [c.mean() for c in changed]  # a part moves
        assert all(np.abs(frames[u + 1] - frames[u]).max() > 10 for u in range(5))  # and keeps moving
    for seed in range(3):
        a = film_photo(photos["china"], np.random.default_rng(seed), frames=8, size=64)
        assert np.array_equal(a, film_photo(photos["china"], np.random.default_rng(seed), frames=8, size=64,
                                            movers=0))
        b = film_photo(photos["china"], np.random.default_rng(seed), frames=8, size=64, movers=3)
        assert np.array_equal(b, film_photo(photos["china"], np.random.default_rng(seed), frames=8, size=64,
                                            movers=3))
        assert not np.array_equal(a, b)


def test_folder_roundtrip_and_errors(tmp_path, photos):
    recs = make_photo_clips(tmp_path / "pc", n=5, photos={k: photos[k] for k in ("china", "flower")},
                            frames=16, progress=False)
    clips = list(iter_clips(tmp_path / "pc"))
    assert len(recs) == len(clips) == 5
    assert [r["photo"] for r in recs] == ["china", "flower", "china", "flower", "china"]
    assert all(c.num_frames == 16 and c.size[0] == c.size[1] >= 64 for c in clips)
    # A folder that exists is never overwritten; a folder without images is refused in one line.
    assert main([str(tmp_path / "pc"), "--n", "2"]) == 2
    assert main([str(tmp_path / "neg"), "--movers", "-1"]) == 2 and not (tmp_path / "neg").exists()
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "out"), "--photos", str(tmp_path / "empty")]) == 2
    assert not (tmp_path / "out").exists()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"not a jpeg")
    assert main([str(tmp_path / "out"), "--photos", str(tmp_path / "bad")]) == 2
    from PIL import Image

    ok = tmp_path / "ok"
    ok.mkdir()
    Image.fromarray(photos["china"]).save(ok / "a.png")
    (ok / "notes.txt").write_text("not an image: ignored")
    got = read_photos(ok)
    assert list(got) == ["a"] and np.array_equal(got["a"], photos["china"])
