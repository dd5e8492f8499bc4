"""The soft-binding registry's pictures of a marked video: of the whole clip, and of each stretch
of it (session 34).

A record kept only the whole clip's temporal mean, so an excerpt of moving footage (frames 80-160
of 160) was compared with a picture it is only part of, read "different", and was called a mark
copied onto another video. A record now also keeps the picture of every `SEGMENT`-frame window,
and `registry.resolve` matches a suspect against the best run of consecutive windows (the mean
of a run is the count-weighted mean of its windows' pictures: the thumbnail is linear in the
frames). A long clip's windows are merged in pairs until at most `MAX_SEGMENTS` remain.

Each picture is two 16x16 thumbnails: luma (as before) and value, max(R, G, B) of the mean frame
(HSV's V). A hue shift or a saturation change in HSV leaves each frame's V as it was, while it
moves luma (a red object turned yellow is brighter): a re-graded genuine copy read "different"
(difference 1.01, session 34) on luma alone.

Stored in the record as {"frames": window length, "total": frames signed, "luma": base64,
"value": base64}, each uint8 [N, THUMB, THUMB]: 128 windows are 64 KiB before base64.
"""

from __future__ import annotations

import base64
from typing import Iterable, Iterator

import cv2
import numpy as np

from evalkit.provenance import wm_grid as geo

THUMB = 16
SEGMENT = 8  # frames per window at signing: a 40-frame excerpt is 5 windows, its ends off by <= 4 frames
MAX_SEGMENTS = 128  # windows kept: a 10-minute 30 fps clip keeps 141-frame windows


def luma_thumbnail(mean: np.ndarray) -> np.ndarray:
    """float32 [THUMB, THUMB]: the luma of a temporal-mean frame [H, W, 3], area-averaged."""
    y = np.ascontiguousarray(mean, np.float32) @ geo._LUMA.astype(np.float32)  # BT.601, as the mark's luma
    return cv2.resize(y, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)


def value_thumbnail(mean: np.ndarray) -> np.ndarray:
    """float32 [THUMB, THUMB]: max(R, G, B) of a temporal-mean frame [H, W, 3], area-averaged."""
    v = np.ascontiguousarray(np.asarray(mean, np.float32).max(axis=2))
    return cv2.resize(v, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)


class SegmentRecorder:
    """The windows' pictures of a video whose frames pass by once (`watch` a stream of uint8 RGB
    frames [H, W, 3], or `add` them): `result()` is what `registry.register` takes as `segments`."""

    def __init__(self, segment: int = SEGMENT):
        self.segment = segment
        self._sum, self._n = None, 0
        self.luma: list[np.ndarray] = []
        self.value: list[np.ndarray] = []
        self.counts: list[int] = []

    def watch(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for f in frames:
            self.add(f)
            yield f

    def add(self, frame: np.ndarray) -> None:
        if self._sum is None or self._sum.shape != frame.shape:
            self._flush()
            self._sum = np.zeros(frame.shape, np.uint32)
        self._sum += frame
        self._n += 1
        if self._n == self.segment:
            self._flush()

    def _flush(self) -> None:
        if self._n:
            mean = (self._sum.astype(np.float32) / np.float32(self._n))
            self.luma.append(luma_thumbnail(mean))
            self.value.append(value_thumbnail(mean))
            self.counts.append(self._n)
            self._sum[:] = 0
        self._n = 0

    def result(self) -> dict | None:
        """{"frames", "total", "luma", "value"} (arrays [N, THUMB, THUMB]), None for no frames."""
        self._flush()
        if not self.counts:
            return None
        luma, value, counts, frames = np.stack(self.luma), np.stack(self.value), np.array(self.counts, float), self.segment
        while len(counts) > MAX_SEGMENTS:  # merge pairs: a run's picture is the count-weighted mean
            if len(counts) % 2:
                luma, value, counts = (np.concatenate([a, a[-1:] * 0]) for a in (luma, value, counts))
            w = counts.reshape(-1, 2)
            tot = w.sum(axis=1)
            luma, value = ((a.reshape(-1, 2, THUMB, THUMB) * w[:, :, None, None]).sum(axis=1)
                           / np.maximum(tot, 1)[:, None, None] for a in (luma, value))
            counts, frames = tot, frames * 2
        return {"frames": int(frames), "total": int(counts.sum()), "luma": luma.astype(np.float32),
                "value": value.astype(np.float32)}


def segment_thumbnails(frames: np.ndarray) -> dict | None:
    """The windows' pictures of uint8 RGB frames [T, H, W, 3] held in memory."""
    rec = SegmentRecorder()
    for f in frames:
        rec.add(f)
    return rec.result()


def to_json(seg: dict) -> dict:
    enc = lambda a: base64.b64encode(np.clip(np.round(a), 0, 255).astype(np.uint8).tobytes()).decode("ascii")  # noqa: E731
    return {"frames": seg["frames"], "total": seg["total"], "luma": enc(seg["luma"]), "value": enc(seg["value"])}


def from_json(obj) -> dict | None:
    """The windows of a record (untrusted JSON), or None where it has none or they do not read."""
    try:
        frames, total = obj["frames"], obj["total"]
        if not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in (frames, total)):
            return None
        n = -(-total // frames)
        arrays = [np.frombuffer(base64.b64decode(obj[k], validate=True), np.uint8) for k in ("luma", "value")]
        if not 1 <= n <= MAX_SEGMENTS or any(a.size != n * THUMB * THUMB for a in arrays):
            return None
        counts = np.full(n, float(frames))
        counts[-1] = total - frames * (n - 1)
        luma, value = (a.reshape(n, THUMB, THUMB).astype(np.float32) for a in arrays)
        return {"frames": frames, "total": total, "luma": luma, "value": value, "counts": counts}
    except (KeyError, TypeError, ValueError):
        return None


def runs(seg: dict, n_frames: int, near: bool = False,
         own: bool = True) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """(first frame, end frame, luma, value) of each run of consecutive windows that an excerpt of
    `n_frames` frames could be: unless not `own`, about its length (a window's worth either way);
    unless `near`, half or twice it (the excerpt's speed changed), and never the whole clip."""
    counts, w = seg["counts"], seg["frames"]
    total = len(counts)
    k0 = n_frames / w
    mine = {round(k0) + d for d in (-1, 0, 1)}
    lengths = (mine if own else set()) | (set() if near else {round(k0 * f) for f in (0.5, 2 / 3, 1.5, 2.0)} - mine)
    c = np.concatenate([[0.0], np.cumsum(counts)])
    cy = np.concatenate([np.zeros((1, THUMB, THUMB)), np.cumsum(seg["luma"] * counts[:, None, None], axis=0)])
    cv = np.concatenate([np.zeros((1, THUMB, THUMB)), np.cumsum(seg["value"] * counts[:, None, None], axis=0)])
    for k in sorted(x for x in lengths if 1 <= x < total):
        for i in range(total - k + 1):
            n = c[i + k] - c[i]
            yield (int(c[i]), int(c[i + k]), ((cy[i + k] - cy[i]) / n).astype(np.float32),
                   ((cv[i + k] - cv[i]) / n).astype(np.float32))


__all__ = ["THUMB", "SEGMENT", "MAX_SEGMENTS", "luma_thumbnail", "value_thumbnail", "SegmentRecorder",
           "segment_thumbnails", "to_json", "from_json", "runs"]
