"""Time layout of the watermark (`evalkit.provenance.watermark`): the segments a long clip is
marked in, and the windows the detector reads when the whole clip does not verify.

Why segments. The mark is read from a temporal mean, and the embedder puts the mean of what it
marks onto the keyed lattice. An excerpt of moving footage has another mean than the whole clip
(the host's own change, not the mark's), so a clip marked as one piece loses its mark when it is
trimmed (measured before this module: the first half of 64 frames of the carphone footage, not
even detected). A clip of at least two segments' length is therefore marked segment by segment,
each on its own mean: in still regions the segments' means agree, so their patterns are the
same and the codec still codes one static pattern; where the picture moves, each segment
carries its own. Any excerpt that holds one whole segment holds one complete mark.

Why windows. After a trim, segment borders fall anywhere in the excerpt, and on moving footage a
window even two frames off a segment has a mean too far from it (measured on the carphone
footage). So the detector scans every window of a segment's length starting in the first
segment's span (and of half that length, for a clip whose frame rate was halved) with a cheap
lattice fit summed over the segments in step, and reads the best offsets in full: one window
alone, and all the windows in step decoded together. Each read is a test of its own: `detect`
multiplies every p-value by the number of reads it could have made (union bound), so the
false-detection rate stays under the threshold.
"""

from __future__ import annotations

import cv2
import numpy as np


def segments(t: int, seg: int) -> list[tuple[int, int]]:
    """Frame ranges [a, b) a clip of `t` frames is marked in: one piece below `2 * seg` frames
    (or with `seg` 0), else consecutive segments of `seg` frames and the rest (under `seg`
    frames) as a last, shorter one, so that every segment a window can match has `seg` frames."""
    if seg <= 0 or t < 2 * seg:
        return [(0, t)]
    return [(a, min(a + seg, t)) for a in range(0, t, seg)]


def windows(t: int, seg: int) -> list[tuple[int, int]]:
    """Frame ranges [a, b) the detector may read after the whole clip: windows of `seg` frames
    (a segment) and of `seg // 2` (a segment after the frame rate was halved) at every start
    within one period of the segment borders. The whole clip itself is not among them."""
    if seg <= 0 or t < seg:  # a clip shorter than a segment was marked in one piece, if at all
        return []
    out = []
    for length in (seg, seg // 2):
        out += [(a, a + length) for a in range(length) if a + length <= t and (a, a + length) != (0, t)]
    return out


def shrink(frames: np.ndarray, short: int = 128) -> np.ndarray:
    """float32 [T, h, w, 3]: the frames reduced by a whole factor (area average) so that the
    short side stays >= `short`; chip means of a grid with >= 2 pixels a chip barely change."""
    k = max(1, min(frames.shape[1:3]) // short)
    if k == 1:
        return frames.astype(np.float32)
    h, w = frames.shape[1] // k, frames.shape[2] // k
    return np.stack([cv2.resize(f[:h * k, :w * k], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
                     for f in frames])
