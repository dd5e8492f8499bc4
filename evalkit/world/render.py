"""Anti-aliased rendering of a scene's trajectories into uint8 RGB frames, with numpy.

Each object is drawn from its signed distance field: a pixel's coverage is
clip(0.5 - d, 0, 1) with d the distance in pixels from the pixel centre to the object's
edge, which gives one pixel of anti-aliasing at any size. Backgrounds are grey so that the
saturated object colours can be segmented by hue. Pixel (i, j) has its centre at
((j + 0.5) / W, (i + 0.5) / H) in frame fractions.
"""

from __future__ import annotations

import numpy as np

from evalkit.world.spec import Scene


def background(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """float32 [H, W] grey level in [0, 255]; static over the clip, like a real wall."""
    if kind == "dark":
        return np.full((h, w), rng.uniform(15, 45), np.float32)
    if kind == "light":
        return np.full((h, w), rng.uniform(195, 230), np.float32)
    if kind == "gradient":
        a, b = rng.uniform(20, 80), rng.uniform(170, 230)
        if rng.random() < 0.5:
            a, b = b, a
        ramp = np.linspace(a, b, h, dtype=np.float32)[:, None]
        return np.broadcast_to(ramp, (h, w)).copy()
    if kind == "noise":
        # Smooth texture: coarse noise upsampled bilinearly, around a mid grey.
        gh, gw = max(2, h // 6), max(2, w // 6)
        coarse = rng.normal(0.0, 1.0, (gh, gw)).astype(np.float32)
        yi = np.linspace(0, gh - 1, h, dtype=np.float32)
        xi = np.linspace(0, gw - 1, w, dtype=np.float32)
        y0, x0 = np.floor(yi).astype(int), np.floor(xi).astype(int)
        y1, x1 = np.minimum(y0 + 1, gh - 1), np.minimum(x0 + 1, gw - 1)
        fy, fx = (yi - y0)[:, None], (xi - x0)[None, :]
        tex = (coarse[y0][:, x0] * (1 - fy) * (1 - fx) + coarse[y1][:, x0] * fy * (1 - fx)
               + coarse[y0][:, x1] * (1 - fy) * fx + coarse[y1][:, x1] * fy * fx)
        return (rng.uniform(100, 150) + 22.0 * tex).clip(0, 255).astype(np.float32)
    raise ValueError(f"unknown background {kind!r}")


def coverage(shape: str, centres: np.ndarray, extent: float, h: int, w: int) -> np.ndarray:
    """float32 [T, H, W] fraction of each pixel the object covers.

    centres: [T, 2] (x, y) in frame fractions; extent: diameter / side in frame fractions.
    """
    cx = centres[:, 0, None, None] * w - 0.5  # [T, 1, 1], pixel-index units
    cy = centres[:, 1, None, None] * h - 0.5
    dx = np.arange(w, dtype=np.float32)[None, None, :] - cx  # [T, 1, W]
    dy = np.arange(h, dtype=np.float32)[None, :, None] - cy  # [T, H, 1]
    half = extent * 0.5 * min(h, w)
    if shape == "ball":
        d = np.sqrt(dx * dx + dy * dy) - half  # [T, H, W]
    elif shape == "square":
        qx, qy = np.abs(dx) - half, np.abs(dy) - half
        outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
        d = outside + np.minimum(np.maximum(qx, qy), 0)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.clip(0.5 - d, 0.0, 1.0).astype(np.float32)


def render(scene: Scene, pos: np.ndarray, size: int | tuple[int, int], rng: np.random.Generator,
           noise: float = 0.0) -> np.ndarray:
    """uint8 [T, H, W, 3] frames of `scene` with object centres `pos` [N, T, 2].

    noise: standard deviation of Gaussian sensor noise in 8-bit levels (0 for none).
    """
    h, w = (size, size) if isinstance(size, int) else size
    t = pos.shape[1]
    bg = background(scene.background, h, w, rng)
    img = np.broadcast_to(bg[None, :, :, None], (t, h, w, 3)).astype(np.float32)  # [T, H, W, 3]
    for o, centres in zip(scene.objects, pos):
        a = coverage(o.shape, centres, o.size, h, w)[..., None]  # [T, H, W, 1]
        img = img * (1 - a) + np.asarray(o.rgb, np.float32) * a
    if noise > 0:
        img = img + rng.normal(0.0, noise, img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
