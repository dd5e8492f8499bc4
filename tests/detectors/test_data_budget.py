"""Natural footage larger than the decode budget (a 4K recording) still gives training windows:
it is read with every frame reduced by a whole factor, as `score` reads such clips."""

from __future__ import annotations

import numpy as np

from detectors.data import load_source
from evalkit.video import probe_video, read_video, shrink_to_fit


def test_footage_over_the_decode_budget_gives_windows(real_videos_dir, tmp_path, monkeypatch):
    src = real_videos_dir / "carphone_pristine.mp4"
    info = probe_video(src)
    whole = info.frames * info.width * info.height * 3
    folder = tmp_path / "footage"
    folder.mkdir()
    (folder / src.name).symlink_to(src)
    kw = dict(natural_windows=5, codec_augment=False, natural_jitter=False, seed=1)
    full = load_source(folder, 0, **kw)
    monkeypatch.setenv("EVALKIT_MAX_DECODED_BYTES", str(whole // 3))  # before: a decode-budget error
    assert shrink_to_fit(src) == 2
    reduced = load_source(folder, 0, **kw)
    assert reduced.x.shape == full.x.shape and list(reduced.split) == list(full.split)
    # the same windows at the detectors' 64x64 (values in [0, 1]), from frames read at half size
    # first: about 5 levels of 255 apart on average, where two different windows are far more
    assert np.abs(reduced.x - full.x).mean() < 0.04
    assert np.abs(reduced.x - full.x[::-1]).mean() > 2 * np.abs(reduced.x - full.x).mean()
    assert read_video(src, shrink=2).frames.shape[1:3] == (info.height // 2, info.width // 2)
