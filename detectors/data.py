"""Labelled clips for training and evaluating detectors.

Sources: a clip folder (index.jsonl + MP4s: world renders, generator outputs) gives its clips; a
video file or a folder of videos without an index gives natural-footage windows: random
`frames`-long windows, random crops (30-100% of the short side), flips, resized to 64-128 px,
and with `jitter` also a random frame stride (1-3: other frame rates and motion speeds) and
photometric jitter (gamma, saturation, contrast, brightness), so that a few recordings stand for
more footage than their own colours and pace.
Every clip can be passed through H.264 at a random CRF so that real and generated clips share
the codec's traces and the detectors cannot learn the container instead of the content; at
detection time `codec_normalised` gives frames that never met a lossy codec one H.264 pass.

Splits are by group so near-duplicates never straddle them: each folder clip is its own group;
a natural video is cut in time into train (first 60%), calibration (next 20%) and test (last
20%) segments, and windows are drawn inside one segment; a video too short for that (under five
windows) is one group, as is each generated video given without an index.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from detectors.features import Protocol, to_protocol
from evalkit.clip import Clip
from evalkit.clipset import video_files
from evalkit.errors import BadInputError, MissingResourceError

SPLITS = ("train", "calib", "test")
CRFS = (23, 30, 35)


@dataclass
class LabelledSet:
    x: np.ndarray                 # float32 [N, T, S, S, 3], the detectors' protocol
    y: np.ndarray                 # int [N], 1 = generated
    source: list[str]             # generator name for generated clips; "world"/"natural:<file>" for real
    split: np.ndarray             # str [N], one of SPLITS
    meta: dict = field(default_factory=dict)

    def subset(self, mask) -> "LabelledSet":
        mask = np.asarray(mask)
        idx = np.flatnonzero(mask) if mask.dtype == bool else mask
        return LabelledSet(self.x[idx], self.y[idx], [self.source[i] for i in idx], self.split[idx], self.meta)

    def __len__(self) -> int:
        return len(self.y)


def _split_of(key: str, seed: int) -> str:
    """Deterministic 60/20/20 split of a group key."""
    u = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16) / 2**32
    return "train" if u < 0.6 else "calib" if u < 0.8 else "test"


def reencode(clip: Clip, crf: int) -> Clip:
    """`clip` after an H.264 round trip at `crf` (what a platform's transcoder does to it)."""
    from evalkit.video import read_video, write_video

    with tempfile.TemporaryDirectory() as tmp:
        p = write_video(Path(tmp) / "c.mp4", clip, crf=crf, preset="veryfast", pad=True)
        out = read_video(p)
    meta = {**(clip.meta or {}), "codec": out.meta["codec"]}  # it has been through a lossy codec now
    return Clip(frames=out.frames[:, : clip.size[0], : clip.size[1]], fps=clip.fps, prompt=clip.prompt, meta=meta)


# Codecs that keep every pixel (or a palette of them): their frames carry no lossy-codec traces,
# which every clip the detectors were trained on has (MP4 at CRF 18 or more).
LOSSLESS_CODECS = frozenset({"ffv1", "rawvideo", "png", "apng", "qtrle", "huffyuv", "ffvhuff", "utvideo",
                             "magicyuv", "v210", "r210", "v410", "bmp", "tiff", "gif", "zlib", "lagarith"})
DETECT_CRF = 18  # evalkit's own MP4 quality, what the detectors' clean clips went through


def codec_normalised(clip: Clip, frames: int) -> tuple[Clip, str | None]:
    """The clip as the detectors know clips: frames that never went through a lossy codec (raw
    frames in memory, or a lossless file: its codec is in `clip.meta["codec"]`) get one H.264
    round trip at CRF 18 first. Returns the clip (its first `frames` frames when re-encoded) and
    a note of what was done, or None when nothing was."""
    codec = clip.meta.get("codec") if clip.meta else None
    if codec is not None and codec not in LOSSLESS_CODECS:
        return clip, None
    why = f"lossless {codec}" if codec else "uncompressed frames"
    first = Clip(frames=clip.frames[:frames], fps=clip.fps, prompt=clip.prompt, meta=clip.meta)
    return reencode(first, DETECT_CRF), f"H.264 CRF {DETECT_CRF} round trip ({why} input)"


def resize_clip(clip: Clip, scale: float) -> Clip:
    """Spatially rescale by `scale` (antialiased), keeping sizes even and at least 16 px."""
    import torch.nn.functional as F

    h, w = clip.size
    nh, nw = max(16, int(round(h * scale / 2)) * 2), max(16, int(round(w * scale / 2)) * 2)
    x = clip.to_tensor()
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=scale < 1, align_corners=False)
    return Clip.from_tensor(x, fps=clip.fps, prompt=clip.prompt, meta=clip.meta)


def photometric_jitter(frames: np.ndarray, gamma: float, saturation: float, contrast: float,
                       brightness: float) -> np.ndarray:
    """uint8 [T, H, W, 3] with its gamma, saturation (about the luma), contrast (about the clip's
    mean) and brightness (added, in 0-255 units) changed."""
    x = (frames.astype(np.float32) / 255.0) ** gamma
    luma = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = luma[..., None] + saturation * (x - luma[..., None])
    x = x.mean() + contrast * (x - x.mean()) + brightness / 255.0
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _natural_windows(path: Path, n: int, frames: int, rng: np.random.Generator, seed: int, jitter: bool = False,
                     group: str | None = None):
    """n augmented windows of a video, spread evenly over its three time segments; or, where a
    segment cannot hold one window (a video under 5 windows long) or `group` names the video's
    split group (generated videos: one group a file, as folder clips), all n in that group's split,
    drawn from the whole video. Windows never cross a segment's bounds: a short segment's windows
    used to run into the next one, so a 16- to 75-frame video gave "held-out" test windows made of
    its own training frames (session 31)."""
    from evalkit.video import read_video, shrink_to_fit

    # a long or 4K recording is read reduced to fit the decode budget (its windows go to 64x64)
    video = read_video(path, shrink=shrink_to_fit(path))
    t = video.num_frames
    if t < frames:
        raise BadInputError(f"{path}: {t} frames, fewer than the detectors' {frames}; use longer footage")
    if group is None and int(0.8 * t) - int(0.6 * t) >= frames and t - int(0.8 * t) >= frames:
        bounds = {"train": (0, int(0.6 * t)), "calib": (int(0.6 * t), int(0.8 * t)), "test": (int(0.8 * t), t)}
        counts = {"train": n - 2 * (n // 5), "calib": n // 5, "test": n // 5}
    else:  # too short to cut in time (or a generated video): the whole of it in one split
        bounds = {_split_of(group or f"natural:{path.name}", seed): (0, t)}
        counts = {split: n for split in bounds}
    for split, (a, b) in bounds.items():
        for _ in range(counts[split]):
            # Drawn whether or not `jitter` is on, so both settings draw the same crops and flips.
            stride = int(rng.choice((1, 1, 2, 3)))
            photo = dict(gamma=float(np.exp(rng.uniform(-0.25, 0.25))), saturation=float(rng.uniform(0.7, 1.3)),
                         contrast=float(rng.uniform(0.8, 1.2)), brightness=float(rng.uniform(-20, 20)))
            stride = stride if jitter else 1
            stride = max(1, min(stride, (b - a - 1) // (frames - 1)))  # the segment holds the window
            span = (frames - 1) * stride + 1
            lo, hi = a, b
            s0 = int(rng.integers(lo, hi - span + 1))
            f = video.frames[s0:s0 + span:stride]
            h, w = f.shape[1:3]
            side = int(min(h, w) * rng.uniform(0.3, 1.0))
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            f = f[:, top:top + side, left:left + side]
            if rng.random() < 0.5:
                f = f[:, :, ::-1]
            f = photometric_jitter(f, **photo) if jitter else np.ascontiguousarray(f)
            clip = Clip(frames=f, fps=video.fps / stride)
            target = int(rng.integers(32, 65)) * 2
            clip = resize_clip(clip, target / side)
            yield clip, split, f"natural:{path.name}"


def _video_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else video_files(path)  # hidden files (macOS ._*) skipped


def load_source(path, label: int, *, protocol: Protocol = Protocol(), seed: int = 0, max_clips: int | None = None,
                natural_windows: int = 80, natural_jitter: bool = True, codec_augment: bool = True,
                name: str | None = None,
                splits: tuple[str, ...] = SPLITS, transform=None, progress: bool = False) -> LabelledSet:
    """One --real/--fake source as a LabelledSet (see the module docstring). `splits` keeps only
    those splits; `transform(clip) -> clip` is applied last (robustness tests: re-encode, resize).
    The same seed always selects the same clips and windows, whatever the other options."""
    from evalkit.clipset import iter_clips

    path = Path(path)
    if not path.exists():
        raise MissingResourceError(f"{path}: no such clip folder or video; check the path")
    rng = np.random.default_rng(int(hashlib.sha256(f"{seed}:{path.name}".encode()).hexdigest()[:8], 16))
    items = []  # (clip, split, source)
    if (path / "index.jsonl").is_file():
        source = name or path.name
        for i, clip in enumerate(iter_clips(path)):
            if max_clips is not None and i >= max_clips:
                break
            items.append((clip, _split_of(f"{source}/{clip.meta['record']['id']}", seed), source))
    else:
        files = _video_files(path)
        if not files:
            raise BadInputError(f"{path}: neither a clip folder (index.jsonl) nor videos; give one of those")
        for f in files:
            if label == 1:  # generated videos without an index: each file its own group, as folder clips
                source = name or path.name
                items.extend((c, sp, source) for c, sp, _ in _natural_windows(
                    f, natural_windows, protocol.frames, rng, seed, natural_jitter, group=f"{source}/{f.name}"))
            else:
                items.extend(_natural_windows(f, natural_windows, protocol.frames, rng, seed, natural_jitter))
    xs, kept, sources = [], [], []
    short = small = 0
    for clip, split, source in tqdm(items, desc=f"prepare {path.name}", unit="clip", disable=None if progress else True):
        crf = int(rng.choice(CRFS)) if rng.random() < 0.6 else None  # drawn always: same stream either way
        if split not in splits:
            continue
        short += clip.num_frames < protocol.frames  # padded by repeating the last frame
        small += min(clip.frames.shape[1:3]) < MIN_SIDE
        if codec_augment and crf is not None:
            clip = reencode(clip, crf)
        if transform is not None:
            clip = transform(clip)
        xs.append(to_protocol(clip, protocol)[0])
        kept.append(split)
        sources.append(source)
    if not xs:
        raise BadInputError(f"{path}: no clips in the {'/'.join(splits)} split(s); give more clips")
    return LabelledSet(np.stack(xs), np.full(len(xs), label), sources, np.array(kept),
                       {"path": str(path), "n": len(xs), "padded": short, "under_min_side": small})


MIN_SIDE = 16  # clips smaller than this on a side carry little but their size (the detector abstains there)


def shape_warnings(sets: list[LabelledSet], frames: int) -> list[str]:
    """Sources whose clips the protocol pads (fewer frames: the last repeated) or that are tiny:
    a detector then learns the padding or the size, and its test score reports that as skill (6-frame
    "generated" clips of the same renderer as the real ones: AUC 0.92, against 0.50 at 16 frames)."""
    out = []
    for s in sets:
        m = s.meta
        if m.get("padded"):
            out.append(f"{m['padded']} of {m['n']} clips of {m['path']} have fewer than {frames} frames and are "
                       "padded by repeating their last frame: a detector may learn that, not the content")
        if m.get("under_min_side"):
            out.append(f"{m['under_min_side']} of {m['n']} clips of {m['path']} are under {MIN_SIDE} px on a side: "
                       "a detector may learn their size, not the content")
    return out


def recording_of(source: str) -> str | None:
    """The recording a natural window comes from ("natural:carphone_pristine.mp4" -> "carphone":
    versions of one recording, named STEM_VARIANT with a word for VARIANT, count as one); None for
    folder clips. A numbered name is its own recording: a camera's IMG_0001.MOV and IMG_0002.MOV,
    or my_video_1 and my_video_2, were all one recording "IMG" or "my" (session 31)."""
    if not source.startswith("natural:"):
        return None
    stem = Path(source.split(":", 1)[1]).stem
    head, _, variant = stem.rpartition("_")
    return head if head and variant.isalpha() else stem


def concat(sets: list[LabelledSet]) -> LabelledSet:
    return LabelledSet(np.concatenate([s.x for s in sets]), np.concatenate([s.y for s in sets]),
                       [src for s in sets for src in s.source], np.concatenate([s.split for s in sets]))
