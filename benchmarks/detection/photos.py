"""Camera clips from still photographs: more varied natural content for the detectors' real side.

    python -m benchmarks.detection.photos OUT [--n 240] [--photos DIR] [--seed 0] [--movers K]

The detectors had three natural recordings to learn what camera footage looks like, and called
10% of the windows of a recording they never saw generated (README, "Detecting synthetic
video"). Photographs are real camera images with the optics, sensor noise, demosaicing and JPEG
history of real footage, and there are more of them than there are test videos in any package.
A virtual hand-held camera films each one: a window of the photo (a quarter to nine tenths of its
short side) is panned, zoomed and slightly rotated along a smooth trajectory with hand shake,
each frame integrated over its exposure (motion blur from several sub-frame renders), with
signal-dependent sensor noise drawn anew every frame and a slow exposure drift. A rigid photo
has no independent motion; with `--movers K` up to K things in each scene move on their own
(patches of the photo cut out by soft irregular masks that travel, turn and stretch, and local
elastic bends of the scene), under the same shutter and sensor. Measured (README, session 11):
as 240 extra real clips they did not lower the false positives on the cyclists of the bikes
recording, so the shipped detector's data does not use them.

Photos: every image in --photos DIR (jpg/png), else the natural photographs that ship inside
installed packages: scikit-learn's two sample images (always there), matplotlib's Grace Hopper
portrait, and scikit-image's colour photographs when scikit-image is installed
(`pip install -e '.[detdata]'`). Greyscale images, drawings and microscopy are left out (a detector
must not learn "greyscale means real"). Output: a clip folder (MP4 at CRF 18 + index.jsonl) that
`detectors train --real` and `benchmarks.detection.run --real` read like the world's renders.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np

from evalkit.errors import BadInputError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # colour camera photographs


def packaged_photos() -> dict[str, np.ndarray]:
    """Natural colour photographs shipped inside installed packages, uint8 [H, W, 3] by name."""
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    photos = {Path(f).stem: img for f, img in zip(data.filenames, data.images)}
    try:
        from matplotlib.cbook import get_sample_data
        from PIL import Image

        with Image.open(get_sample_data("grace_hopper.jpg")) as im:
            photos["grace_hopper"] = np.asarray(im.convert("RGB"))
    except (OSError, ValueError):  # a matplotlib build without its sample data
        pass
    try:
        import skimage.data as skd
    except ImportError:
        return photos
    for name in SKIMAGE_PHOTOS:
        photos[name] = getattr(skd, name)()
    left, right = skd.stereo_motorcycle()[:2]
    photos["motorcycle_left"], photos["motorcycle_right"] = left, right
    return photos


def read_photos(folder: Path) -> dict[str, np.ndarray]:
    """Every colour image in `folder` (sorted by name), uint8 [H, W, 3]."""
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not files:
        raise BadInputError(f"{folder}: no photos ({', '.join(PHOTO_SUFFIXES)}); give a folder of images")
    photos = {}
    for p in files:
        try:
            with Image.open(p) as im:
                photos[p.stem] = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as e:
            raise BadInputError(f"{p}: not a readable image ({e}); remove it or convert it") from None
    return photos


def _movers(img: np.ndarray, rng: np.random.Generator, size: int, scale: float, count: int) -> list[dict]:
    """`count` independent movers: a patch of the photo cut out by a soft irregular mask (an
    object with real texture) or a local elastic bend of the scene (a limb, a flag, water)."""
    h, w = img.shape[:2]
    out = []
    for _ in range(count):
        ang = rng.uniform(0, 2 * math.pi)
        m = {"kind": "sprite" if rng.random() < 0.65 else "bend",
             "p": rng.uniform(0.15, 0.85, 2) * size,                       # output px
             "v": np.array([math.cos(ang), math.sin(ang)]) * rng.uniform(0.3, 0.09 * size),  # px a frame
             "phase": rng.uniform(0, 2 * math.pi), "omega": rng.uniform(0.15, 0.9)}       # rad a frame
        if m["kind"] == "sprite":
            r = rng.uniform(0.08, 0.25) * size  # semi-axis, output px
            m.update(axes=np.array([r, r * rng.uniform(0.5, 1.0)]), spin=math.radians(rng.normal(0, 2.0)),
                     breathe=rng.uniform(0.0, 0.1), lobes=rng.normal(0, 0.12, 3),
                     src=rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h]), scale=scale * rng.uniform(0.8, 1.25))
        else:
            m.update(sigma=rng.uniform(0.08, 0.25) * size, amp=rng.normal(0, 0.035 * size, 2))
            m["v"] = m["v"] * 0.3  # a bend stays roughly where it is
        out.append(m)
    return out


def _render_movers(frame: np.ndarray, img: np.ndarray, movers: list[dict], u: float) -> np.ndarray:
    """The frame at time `u` (frames, fractional) with each mover drawn over it."""
    size = frame.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for m in movers:
        p = m["p"] + m["v"] * u
        p = size - np.abs(np.mod(p, 2 * size) - size)  # bounce inside the frame
        wobble = math.sin(m["omega"] * u + m["phase"])
        if m["kind"] == "bend":
            g = np.exp(-((xx - p[0]) ** 2 + (yy - p[1]) ** 2) / (2 * m["sigma"] ** 2)).astype(np.float32)
            dx, dy = (m["amp"] * wobble).astype(np.float32)
            frame = cv2.remap(frame, xx - dx * g, yy - dy * g, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            continue
        theta = m["spin"] * u
        sx, sy = 1.0 + m["breathe"] * wobble, 1.0 - m["breathe"] * wobble  # non-rigid: it stretches
        c, s = math.cos(theta), math.sin(theta)
        # Output pixel -> sprite-local coordinates -> photo pixel (inverse map for warpAffine).
        a = np.array([[c / sx, s / sx], [-s / sy, c / sy]]) * m["scale"]
        tex = cv2.warpAffine(img, np.hstack([a, (m["src"] - a @ p)[:, None]]), (size, size),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
        qx = (c * (xx - p[0]) + s * (yy - p[1])) / sx
        qy = (-s * (xx - p[0]) + c * (yy - p[1])) / sy
        ang = np.arctan2(qy, qx)
        edge = 1.0 + sum(l * np.cos((k + 2) * ang + m["phase"]) for k, l in enumerate(m["lobes"]))
        rad = np.sqrt((qx / m["axes"][0]) ** 2 + (qy / m["axes"][1]) ** 2) / edge
        alpha = np.clip((1.0 - rad) * m["axes"][1] / 1.5, 0.0, 1.0)[..., None]  # ~1.5 px soft edge
        frame = frame * (1.0 - alpha) + tex * alpha
    return frame


def film_photo(photo: np.ndarray, rng: np.random.Generator, frames: int = 20, size: int | None = None,
               subframes: int = 4, movers: int = 0) -> np.ndarray:
    """A hand-held camera clip of a still photo: uint8 [frames, size, size, 3]. With `movers`
    > 0, up to that many things in the scene also move on their own (`_movers`): independent,
    non-rigid motion that a rigid photo cannot otherwise give."""
    h0, w0 = photo.shape[:2]
    size = size or int(rng.integers(32, 73)) * 2
    side0 = min(h0, w0) * rng.uniform(0.25, 0.9)  # the window, in photo pixels, at frame 0
    zoom = math.exp(rng.uniform(-0.012, 0.012))  # per frame
    side_max = side0 * max(1.0, zoom ** frames) * 1.05
    if side_max >= min(h0, w0):
        side0 *= min(h0, w0) / side_max * 0.98
        side_max = min(h0, w0) * 0.98
    # Pre-filter once so that sampling at this scale does not alias (a camera's optics do this).
    down = max(1.0, side0 / size / 1.5)
    img = cv2.resize(photo, (max(8, round(w0 / down)), max(8, round(h0 / down))), interpolation=cv2.INTER_AREA)
    img = img.astype(np.float32)
    h, w = img.shape[:2]
    side0, side_max = side0 / down, side_max / down
    half = side_max * 0.75  # room the rotated window needs around its centre
    speed = rng.uniform(0.0, 0.035) * side0 * rng.choice((0.0, 1.0, 1.0, 1.0))  # photo px a frame
    ang = rng.uniform(0, 2 * math.pi)
    vel = np.array([math.cos(ang), math.sin(ang)]) * speed
    rot_rate = math.radians(rng.normal(0.0, 0.15))
    shake_std = rng.uniform(0.1, 1.2) * side0 / size  # hand shake, in photo px (0.1-1.2 output px)
    exposure = rng.uniform(0.2, 1.0)  # fraction of the frame interval the shutter is open
    noise_a, noise_b = rng.uniform(0.2, 4.0), rng.uniform(0.0, 0.08)  # variance = a + b * level
    drift = np.exp(rng.normal(0.0, 0.002, 3)).astype(np.float32)  # white balance/exposure, a frame
    lo = np.array([half, half])
    hi = np.array([w - half, h - half])
    c = rng.uniform(lo, np.maximum(lo, hi))
    shake = np.zeros(2)
    # Drawn after everything above, so clips without movers are the same as before they existed.
    moving = _movers(img, rng, size, side0 / size, int(rng.integers(1, movers + 1))) if movers > 0 else []
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        shake = 0.7 * shake + rng.normal(0.0, shake_std, 2)
        acc = np.zeros((size, size, 3), np.float32)
        for k in range(subframes):  # the shutter integrates the motion during the exposure
            u = t + exposure * (k / max(subframes - 1, 1) - 0.5)
            centre = np.clip(c + vel * (u - t) + shake, lo, np.maximum(lo, hi))
            side = side0 * zoom ** u
            theta = rot_rate * u
            s = side / size
            a = np.array([[s * math.cos(theta), -s * math.sin(theta)], [s * math.sin(theta), s * math.cos(theta)]])
            m = np.hstack([a, (centre - a @ np.array([size / 2, size / 2]))[:, None]])
            sub = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REFLECT)
            acc += _render_movers(sub, img, moving, u) if moving else sub
        frame = acc / subframes * drift ** t
        frame += rng.normal(0.0, 1.0, frame.shape).astype(np.float32) * np.sqrt(noise_a + noise_b * frame)
        out[t] = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
        # Bounce off the photo's edges rather than stick to them.
        vel = np.where((c + vel < lo) | (c + vel > hi), -vel, vel)
        c = c + vel
    return out


def make_photo_clips(out: Path, n: int = 240, photos: dict[str, np.ndarray] | None = None, seed: int = 0,
                     frames: int = 20, progress: bool = True, movers: int = 0) -> list[dict]:
    """Write `n` camera clips, dealt round-robin over the photos, as a clip folder (`movers`:
    see `film_photo`)."""
    from tqdm import tqdm

    from evalkit.clip import Clip
    from evalkit.clipset import ClipFolderWriter

    photos = photos if photos is not None else packaged_photos()
    names = sorted(photos)
    if n < 1 or not names or movers < 0:
        raise BadInputError(f"need n >= 1, movers >= 0 and at least one photo, got n={n}, movers={movers} "
                            f"and {len(names)} photos")
    with ClipFolderWriter(Path(out)) as writer:
        for i in tqdm(range(n), desc="photo clips", unit="clip", disable=None if progress else True):
            name = names[i % len(names)]
            rng = np.random.default_rng([seed, i])
            fps = float(rng.choice((24.0, 25.0, 30.0)))
            clip = Clip(frames=film_photo(photos[name], rng, frames, movers=movers), fps=fps)
            writer.add(clip, {"id": f"photo-{i:04d}", "prompt": f"camera clip of the photograph {name}",
                              "photo": name, "seed": seed, "movers": movers})
    return writer.records


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=240)
    ap.add_argument("--photos", type=Path, help="A folder of photographs (default: those packages ship).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--movers", type=int, default=0,
                    help="Up to this many things in each scene move on their own (default: a rigid scene).")
    a = ap.parse_args(argv)
    try:
        photos = read_photos(a.photos) if a.photos else packaged_photos()
        recs = make_photo_clips(a.out, a.n, photos, a.seed, movers=a.movers)
    except BadInputError as e:
        print(f"evalkit: error: {e}")
        return 2
    print(f"{len(recs)} clips of {len(photos)} photos in {a.out}")
    return 0


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
