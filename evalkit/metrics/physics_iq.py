"""Physics-IQ's motion-mask metrics for any video with a real continuation: spatial IoU,
spatiotemporal IoU, weighted spatial IoU and MSE, normalised by the physical variance between
two real takes (as Physics-IQ's own code computes them)."""

from __future__ import annotations

import numpy as np

from evalkit.metrics.base import as_frames


def motion_masks(frames, threshold: float = 10.0, alpha: float = 0.3, blur: int = 5,
                 kernel: int = 5) -> np.ndarray:
    """bool [T, H, W]: Physics-IQ's motion masks (their binary_mask_generator.py) of uint8 RGB
    frames: grey (BT.601) -> 5x5 Gaussian blur -> |frame - running average (cv2.accumulateWeighted,
    alpha 0.3, started at the first frame)| > threshold -> 5x5 opening then closing. Frame 0: empty."""
    import cv2

    f = as_frames(frames, min_frames=1)
    k = np.ones((kernel, kernel), np.uint8)
    out = np.zeros(f.shape[:3], bool)
    avg = None
    for i, frame in enumerate(f):
        g = cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (blur, blur), 0)
        if avg is None:
            avg = g.astype(np.float64)
            continue
        cv2.accumulateWeighted(g, avg, alpha)
        diff = cv2.absdiff(g, cv2.convertScaleAbs(avg))
        _, b = cv2.threshold(diff, threshold, 255, cv2.THRESH_BINARY)
        b = cv2.morphologyEx(cv2.morphologyEx(b, cv2.MORPH_OPEN, k), cv2.MORPH_CLOSE, k)
        out[i] = b > 0
    return out


def _downscale(x: np.ndarray, factor: int) -> np.ndarray:
    """Physics-IQ compares at a quarter of the real video's size (cv2.resize, bilinear)."""
    import cv2

    if factor == 1:
        return x
    h, w = x.shape[1:3]
    size = (max(1, w // factor), max(1, h // factor))
    return np.stack([cv2.resize(np.ascontiguousarray(f), size) for f in x])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def motion_mask_metrics(generated, real, *, downscale: int = 4, threshold: float = 10.0) -> dict[str, float]:
    """Physics-IQ's four metrics of a continuation against one real take (uint8 [T, H, W, 3] each,
    same shape; the first T frames of each are compared):

    - spatial_iou: IoU of the motion masks collapsed over time (where anything moved);
    - spatiotemporal_iou: per-frame IoU of the masks, averaged over frames (both empty: 1);
    - weighted_spatial_iou: sum(min) / sum(max) of the per-pixel fraction of frames in motion;
    - mse: mean squared error of the frames in [0, 1] (lower is better).

    As Physics-IQ: masks from the full-size frames, then frames and masks resized to 1/`downscale`
    (bilinear; masks re-binarised at one half).
    """
    if isinstance(downscale, bool) or int(downscale) != downscale or downscale < 1:
        raise ValueError(f"downscale must be a whole number >= 1 (Physics-IQ uses 4), got {downscale!r}")
    g, r = as_frames(generated, min_frames=2), as_frames(real, min_frames=2)
    if g.shape[1:] != r.shape[1:]:
        raise ValueError(f"generated {g.shape[1:3]} and real {r.shape[1:3]} frames differ in size; "
                         "resize one to the other first")
    t = min(len(g), len(r))
    g, r = g[:t], r[:t]
    mg = _downscale(motion_masks(g, threshold).astype(np.uint8) * 255, downscale) > 127
    mr = _downscale(motion_masks(r, threshold).astype(np.uint8) * 255, downscale) > 127
    fg = _downscale(g, downscale).astype(np.float64) / 255.0
    fr = _downscale(r, downscale).astype(np.float64) / 255.0
    wg, wr = mg.mean(0), mr.mean(0)
    union = np.maximum(wg, wr)
    return {
        "spatial_iou": _iou(mg.any(0), mr.any(0)),
        "spatiotemporal_iou": float(np.mean([_iou(a, b) for a, b in zip(mg, mr)])),
        "weighted_spatial_iou": 1.0 if union.sum() == 0 else float(np.minimum(wg, wr).sum() / union.sum()),
        "mse": float(np.mean((fg - fr) ** 2)),
    }


def physics_iq_score(generated, take1, take2, *, downscale: int = 4, threshold: float = 10.0) -> dict:
    """Physics-IQ score of a continuation given two real takes of the same event.

    The metrics of `generated` against `take1`, the "physical variance" (the same metrics between
    `take1` and `take2`), and Physics-IQ's normalised score in percent:

        100 * (mean(st_iou / var_st_iou, spatial_iou / var_spatial, w_spatial_iou / var_w_spatial)
               - (mse - var_mse)), clipped to [0, 100]

    (their calculate_iq_score.py, here for one scenario: two real takes score about 100). A
    variance of 0 (the takes' motions are disjoint) is taken as 1e-6.
    """
    m = motion_mask_metrics(generated, take1, downscale=downscale, threshold=threshold)
    var = motion_mask_metrics(take2, take1, downscale=downscale, threshold=threshold)
    ratios = [m[k] / max(var[k], 1e-6) for k in ("spatiotemporal_iou", "spatial_iou", "weighted_spatial_iou")]
    score = 100.0 * (float(np.mean(ratios)) - (m["mse"] - var["mse"]))
    return {"metrics": m, "variance": var, "normalised": dict(zip(
        ("spatiotemporal_iou", "spatial_iou", "weighted_spatial_iou"), ratios)),
        "score": float(min(max(score, 0.0), 100.0))}
