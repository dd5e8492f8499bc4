"""The colour tracker's settings and its result: `TrackerConfig` and `ObjectTrack`.

Both sides of the tracker read them (the clip's pipeline in `tracking_objects`, a colour's blobs
in `tracking_blobs`), so they sit here, below both, with `expected_area` (the size a blob is
measured against), and no import cycle. `tracking_objects` re-exports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evalkit.world.spec import SIZES


@dataclass(frozen=True)
class TrackerConfig:
    """Thresholds of the colour tracker; defaults calibrated on the world (see physics.py)."""

    min_coverage: float = 0.2  # a mask pixel is at least this much covered by the colour
    min_peak: float = 0.3  # ... and its blob reaches this coverage somewhere (no faint haze)
    bg_sigmas: float = 4.0  # ... and stands out of the frame's robust chroma spread by this much
    min_fill: float = 0.5  # pixels / bounding-box area (a disc 0.79, a square 1.0, noise much less)
    max_aspect: float = 2.5  # longer / shorter side of the bounding box
    min_area_ratio: float = 0.5  # coverage mass / expected area, to count as found
    max_area_ratio: float = 2.0
    min_share: float = 0.6  # of the colour's mask pixels in the frame, the blob holds at least this
    dilate: int = 2  # pixels around the blob whose soft coverage counts toward centroid and area


DEFAULT_TRACKER = TrackerConfig()


@dataclass
class ObjectTrack:
    """One named object over a clip; arrays have one row per frame. Measures are NaN where no blob
    of the colour was chosen; where one was but does not count as found (wrong size, not compact,
    not dominant) they are still given: the laws read them through `found` (or `blob`)."""

    shape: str
    color: str
    size_name: str
    expected_area: float  # pixels
    found: np.ndarray  # bool [T]: one compact blob of the colour, holding most of it, of about the size
    blob: np.ndarray  # bool [T]: the same but of any size (what constant_size looks at)
    centroid: np.ndarray  # float64 [T, 2] (x, y), pixel-index units
    area: np.ndarray  # float64 [T], pixels (coverage mass)
    compactness: np.ndarray  # float64 [T], fill ratio of the blob's bounding box
    share: np.ndarray  # float64 [T], the blob's part of the colour's mask in the frame (all of
    #                    the colour's objects together must hold `min_share` of it)
    colour: np.ndarray  # float64 [T, 3], mean RGB of the blob (coverage^2-weighted), a diagnostic
    hue: np.ndarray | None = None  # float64 [T], degrees, of the coloured blob at the object's place
    followed: np.ndarray | None = None  # bool [T]: not found as itself, but its track continues
    #                                     through a blob of another colour or size (`_follow`)
    extent: np.ndarray | None = None  # float64 [T], px: sqrt(height x width) of the blob
    #   (`tracking_blobs._extent`); unlike `area` (chroma mass) it does not shrink in dimmer light
    span: np.ndarray | None = None  # float64 [T], px: its silhouette's smaller side, whole pixels

    @property
    def presence(self) -> float:
        """Fraction of frames in which the object is found (as itself: its colour, about its size)."""
        return float(self.found.mean()) if self.found.size else 0.0

    @property
    def seen(self) -> np.ndarray:
        """bool [T]: found, or followed through a change of its appearance; centroid and area are
        measured in these frames (what permanence and the kinematic laws read)."""
        return self.found if self.followed is None else self.found | self.followed

    def misses(self, cfg: "TrackerConfig | None" = None) -> np.ndarray:
        """str [T]: per frame, "found" or why not: "absent" (no blob of the colour), "scattered"
        (the colour spread over pieces, none holding `min_share` of it), "not compact" (a blob,
        but too sparse or elongated), "too small" / "too large" (a compact blob off the size)."""
        cfg = cfg or DEFAULT_TRACKER
        out = np.full(self.found.shape, "not compact", dtype=object)
        with np.errstate(invalid="ignore"):
            out[~self.blob & (self.share < cfg.min_share)] = "scattered"
            out[self.blob & (self.area < cfg.min_area_ratio * self.expected_area)] = "too small"
            out[self.blob & (self.area > cfg.max_area_ratio * self.expected_area)] = "too large"
        out[np.isnan(self.area)] = "absent"
        out[self.found] = "found"
        return out

    def to_dict(self) -> dict:
        return {"shape": self.shape, "color": self.color, "size_name": self.size_name,
                "expected_area": self.expected_area, "presence": self.presence,
                "found": self.found.tolist(), "followed": (self.seen & ~self.found).tolist(),
                "centroid": self.centroid.tolist(),
                "area": self.area.tolist(), "compactness": self.compactness.tolist()}


def expected_area(shape: str, size_name: str, frame_hw: tuple[int, int]) -> float:
    """Area in pixels that the world renders an object with: pi/4 d^2 (ball) or d^2 (square)."""
    d = SIZES[size_name] * min(frame_hw)
    return (math.pi / 4.0 if shape == "ball" else 1.0) * d * d
