"""The world's vocabulary and parameter ranges: what a scene is made of.

Units: positions are fractions of the (square) frame, origin top-left, y pointing down;
time in seconds; sizes are an object's extent (ball diameter, square side) as a fraction of
the frame. The renderer converts to pixels; the physics never sees pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("fall", "throw", "slide", "collide", "static")
SHAPES = ("ball", "square")
BACKGROUNDS = ("dark", "light", "gradient", "noise")
SPLITS = ("train", "test", "ood")

# Saturated object colours on grey backgrounds, so that a probe can find each object by hue.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 210, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
    "cyan": (40, 200, 210),
}

SIZES: dict[str, float] = {"small": 0.12, "medium": 0.18, "large": 0.24}

# Attribute and motion combinations that only the `ood` split contains.
HELD_OUT_COLOR_SHAPE = frozenset({("green", "square"), ("orange", "ball")})
HELD_OUT_KIND_SHAPE = frozenset({("throw", "square")})
HELD_OUT_KIND_BACKGROUND = frozenset({("collide", "gradient")})


@dataclass(frozen=True)
class Range:
    low: float
    high: float

    def __contains__(self, v: float) -> bool:
        return self.low <= v <= self.high


# Physical parameters: train/test draw inside TRAIN_RANGES, ood may draw one of them from OOD_RANGES.
TRAIN_RANGES = {
    "gravity": Range(2.5, 4.0),  # frame heights / s^2
    "restitution": Range(0.5, 0.8),  # bounce speed ratio, always < 1
    "friction": Range(0.3, 0.6),  # sliding deceleration, frame widths / s^2
}
OOD_RANGES = {
    "gravity": Range(5.0, 6.5),
    "restitution": Range(0.86, 0.95),
    "friction": Range(0.9, 1.3),
}

# Below this rebound speed an object stays on the floor instead of bouncing forever (Zeno).
REST_SPEED = 0.15  # frame heights / s


@dataclass(frozen=True)
class ObjectSpec:
    shape: str
    color: str
    size_name: str
    pos: tuple[float, float]  # initial centre (x, y)
    vel: tuple[float, float] = (0.0, 0.0)  # initial velocity (vx, vy)

    @property
    def size(self) -> float:
        return SIZES[self.size_name]

    @property
    def rgb(self) -> tuple[int, int, int]:
        return COLORS[self.color]

    @property
    def area(self) -> float:
        """Area as a fraction of the frame; masses are proportional to it (one density)."""
        s = self.size
        return 3.141592653589793 * s * s / 4 if self.shape == "ball" else s * s


@dataclass(frozen=True)
class Scene:
    kind: str
    background: str
    objects: tuple[ObjectSpec, ...]
    gravity: float = 0.0
    restitution: float = 0.0
    friction: float = 0.0
    split: str = "train"
    ood: tuple[str, ...] = field(default=())  # why an ood scene is out of distribution
