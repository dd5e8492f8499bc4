"""Colour noise: three channels drawn each on its own, evenly over the frame (session 35).

One noise picture held, drifting or panning correlates from frame to frame like footage does, so
the frame-to-frame test of `upscaled_noise` cannot tell it from a picture; its pixels alone
must. In luma alone they cannot be told from a fine texture: a camera panning over the gravel or
grass photographs of scikit-image's data, shrunk to stones of a few pixels, correlates as little
at 9-16 px and spreads its detail as evenly as noise blown up 1.5-4.5x (session 35). Their
colours can: where R, G and B are drawn independently, the chroma (Cb, Cr) holds as much of the
detail as the luma (1.4-2.2 times its energy, 5th to 95th percentile of 459 clips) in no
preferred hue (Cb and Cr alike, uncorrelated), evenly over the frame (the busiest 8x8 block 2
times the typical one, 3.4 at the 95th percentile). A camera's colours follow its luma (footage 0.31
or less: 292 windows and thumbnails of the four recordings), and a colourful scene's colour sits
in its objects: those of the world's renders whose luma reads like noise (coloured balls on its
textured grey ground, grey noise blown up 6x) put 15 times the typical block's chroma, and more,
into their blocks. Only what persists from one frame to the next is measured (products of
consecutive frames' deviations): grain drawn anew each frame is in none of it, and a generator's
32 px clip under colour white noise (sigma 5-25), whose grain outweighed its picture, was called
noise until it was (52 of 960 clips and edits).
"""

from __future__ import annotations

import numpy as np

CB = np.array([-0.169, -0.331, 0.5], np.float32)  # BT.601
CR = np.array([0.5, -0.419, -0.081], np.float32)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
CHROMA_MIN = 0.7  # chroma energy / luma energy that persists: independent channels 1.4+, footage 0.31 or less
ROUND_MIN = 0.5  # smaller / larger axis of the chroma's spread: noise 0.87 (0.71 at its 5th percentile)
# busiest 8x8 block's chroma / typical block's: noise 2.0 (3.4 at its 95th percentile), coloured objects 15+
CHROMA_PEAK_MAX = 8.0
BLOCK = 8
PERSISTS_MIN = 0.2  # share of the luma's energy that persists to the next frame (as upscaled_noise asks)


def _persisting(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Products of two channels' deviations one frame apart [T-1, H, W]: what persists from frame
    to frame (the noise picture), not what each frame draws anew (sensor grain) or what moves on."""
    return (a[1:] * b[:-1] + a[:-1] * b[1:]) / 2


def colour_noise(rgb: np.ndarray) -> dict | None:
    """What shows the frames [T, H, W, 3] (two or more) are colour noise that persists from frame
    to frame (chroma share, roundness, block peak), or None where their colour is a picture's."""
    f = rgb.astype(np.float32)
    y, cb, cr = (c - c.mean(axis=(1, 2), keepdims=True) for c in (f @ LUMA, f @ CB, f @ CR))
    luma = float(_persisting(y, y).mean())
    if luma < PERSISTS_MIN * float((y * y).mean()):  # little persists: nothing to weigh the colours by
        return None
    energy = _persisting(cb, cb) + _persisting(cr, cr)
    share = float(energy.mean()) / luma
    if share < CHROMA_MIN:
        return None
    cross = float(_persisting(cb, cr).mean())
    eig = np.linalg.eigvalsh(np.array([[_persisting(cb, cb).mean(), cross],
                                       [cross, _persisting(cr, cr).mean()]]))
    roundness = float(eig[0] / max(float(eig[1]), 1e-9))
    if roundness < ROUND_MIN:
        return None
    t, h, w = energy.shape
    blocks = energy[:, :h // BLOCK * BLOCK, :w // BLOCK * BLOCK]
    blocks = blocks.reshape(t, h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    blocks = np.maximum(blocks.mean(axis=(2, 4)).reshape(t, -1), 0)
    peak = float(np.median(blocks.max(axis=1) / np.maximum(np.median(blocks, axis=1), 1e-9)))
    if peak >= CHROMA_PEAK_MAX:
        return None
    return {"chroma": share, "roundness": roundness, "chroma_peak": peak}
