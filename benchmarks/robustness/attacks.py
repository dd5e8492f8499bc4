"""The attacks of the watermark benchmarks: each `(frames uint8 [T, H, W, 3], fps, workdir) ->
frames`, grouped as the grid runs them (`benchmarks/robustness/watermark.py --attacks ...`):

- `ATTACKS`, omnisealbench's grid and a re-uploader's basics: H.264 CRF 23/30/40/50 (evalkit's
  writer, preset medium, read back), resize 0.75 / 0.5 (INTER_AREA, even sizes), centre crop 0.8,
  brightness and contrast x0.8 / x1.2 (contrast about each frame's mean grey, torchvision's
  definition), remux into Matroska, resize then CRF 30, CRF 18 then CRF 30, a mirror, letterbox
  bars then CRF 23, greyscale (BT.601);
- `EXTRA_ATTACKS`, what a re-uploader may do beyond it (other codecs, blur, noise, JPEG, colour,
  rotations and flips, VideoMarkBench's stronger settings, captions, picture in picture, aspect
  and upscale, the short-video blur-pad reformat), with `CROP_ATTACKS` (off-centre crops and
  zooms), `EDIT_ATTACKS` (an editor's
  colour, sharpening, shifts, reversal, speed, square crop, vignette, screen recording) and
  `HANDLING_ATTACKS` (shake, fades, flicker, motion interpolation, slates) folded in;
- `LONG_ATTACKS`, the edits that cut time rather than pixels, for long clips marked in segments.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from evalkit import video
from evalkit.video import read_video, write_video



def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def h264(frames, fps, crf, workdir):
    p = Path(workdir) / f"crf{crf}.mp4"
    write_video(p, frames, fps=fps, crf=crf)
    out = read_video(p).frames
    p.unlink()
    return out


def resize(frames, scale):
    h, w = frames.shape[1:3]
    size = (_even(w * scale), _even(h * scale))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def center_crop(frames, frac):
    h, w = frames.shape[1:3]
    ch, cw = _even(h * frac), _even(w * frac)
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(frames[:, y:y + ch, x:x + cw])


def brightness(frames, factor):
    return np.clip(np.rint(frames.astype(np.float32) * factor), 0, 255).astype(np.uint8)


def contrast(frames, factor):
    f = frames.astype(np.float32)
    grey = (f @ np.array([0.299, 0.587, 0.114], np.float32)).mean(axis=(1, 2))[:, None, None, None]
    return np.clip(np.rint((f - grey) * factor + grey), 0, 255).astype(np.uint8)


def letterbox(frames, frac=0.125):
    p = _even(frames.shape[1] * frac)
    return np.pad(frames, ((0, 0), (p, p), (0, 0), (0, 0)))


def greyscale(frames):
    y = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(np.clip(np.rint(y), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def remux(frames, fps, workdir):
    src = Path(workdir) / "src.mp4"
    dst = Path(workdir) / "remux.mkv"
    write_video(src, frames, fps=fps)  # evalkit's default: H.264 CRF 18
    out = read_video(video.remux(src, dst)).frames
    src.unlink()
    dst.unlink()
    return out


ATTACKS = {
    "none": lambda f, fps, d: f,
    "h264_crf23": lambda f, fps, d: h264(f, fps, 23, d),
    "h264_crf30": lambda f, fps, d: h264(f, fps, 30, d),
    "h264_crf40": lambda f, fps, d: h264(f, fps, 40, d),
    "h264_crf50": lambda f, fps, d: h264(f, fps, 50, d),
    "resize_0.75": lambda f, fps, d: resize(f, 0.75),
    "resize_0.5": lambda f, fps, d: resize(f, 0.5),
    "crop_0.8": lambda f, fps, d: center_crop(f, 0.8),
    "brightness_0.8": lambda f, fps, d: brightness(f, 0.8),
    "brightness_1.2": lambda f, fps, d: brightness(f, 1.2),
    "contrast_0.8": lambda f, fps, d: contrast(f, 0.8),
    "contrast_1.2": lambda f, fps, d: contrast(f, 1.2),
    "remux_mkv": lambda f, fps, d: remux(f, fps, d),
    "resize_0.75+h264_crf30": lambda f, fps, d: h264(resize(f, 0.75), fps, 30, d),
    "h264_crf18+crf30": lambda f, fps, d: h264(h264(f, fps, 18, d), fps, 30, d),
    "mirror": lambda f, fps, d: np.ascontiguousarray(f[:, :, ::-1]),
    "letterbox+h264_crf23": lambda f, fps, d: h264(letterbox(f), fps, 23, d),
    "greyscale": lambda f, fps, d: greyscale(f),
}


def encode(frames, codec, options, fmt="mp4"):
    """Encode with any PyAV codec (4:2:0) in memory and decode back."""
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as c:
        st = c.add_stream(codec, rate=24, options=options)
        st.width, st.height, st.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for pkt in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    buf.seek(0)
    with av.open(buf) as c:
        return np.stack([fr.to_ndarray(format="rgb24") for fr in c.decode(video=0)])


def _per_frame(frames, fn):
    return np.stack([fn(f) for f in frames])


def _rotate(frames, deg):
    h, w = frames.shape[1:3]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    return _per_frame(frames, lambda f: cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REFLECT))


def _hue(frames, shift):
    def one(f):
        hsv = cv2.cvtColor(f, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + shift) % 180
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return _per_frame(frames, one)


def _saturation(frames, k):
    x = frames.astype(np.float32)
    g = x.mean(axis=-1, keepdims=True)
    return np.clip(np.rint(g + (x - g) * k), 0, 255).astype(np.uint8)


def _frame_average(frames, k):
    """Each frame replaced by the mean of the k frames centred on it (fewer at the ends)."""
    c = np.cumsum(np.concatenate([np.zeros_like(frames[:1], np.float64), frames.astype(np.float64)]), axis=0)
    i = np.arange(len(frames))
    lo, hi = np.maximum(i - k // 2, 0), np.minimum(i + k // 2 + 1, len(frames))
    return np.rint((c[hi] - c[lo]) / (hi - lo)[:, None, None, None]).astype(np.uint8)


def _caption_and_logo(frames):
    """White caption text across the bottom and a solid red logo block in the top-right corner."""
    out = frames.copy()
    h, w = out.shape[1:3]
    for f in out:
        cv2.putText(f, "BREAKING: watch this", (int(0.03 * w), int(0.92 * h)), cv2.FONT_HERSHEY_SIMPLEX,
                    w / 400, (255, 255, 255), max(1, w // 200))
    out[:, int(0.04 * h):int(0.16 * h), int(0.80 * w):int(0.96 * w)] = (230, 40, 40)
    return out


def _picture_in_picture(frames, scale):
    """The clip shrunk by `scale`, centred in a black frame of its own size."""
    h, w = frames.shape[1:3]
    sh, sw = _even(h * scale), _even(w * scale)
    out = np.zeros_like(frames)
    out[:, (h - sh) // 2:(h - sh) // 2 + sh, (w - sw) // 2:(w - sw) // 2 + sw] = _per_frame(
        frames, lambda x: cv2.resize(x, (sw, sh), interpolation=cv2.INTER_AREA))
    return out


def blur_pad(frames, out_h, out_w, radius=None):
    """The short-video platforms' reformat: the clip scaled to fit an `out_h` x `out_w` frame
    (9:16 for a landscape clip, 16:9 for a portrait one) and centred, the rest filled with a
    copy of the same frame zoomed to cover the frame and box-blurred (ffmpeg's
    `split[a][b];[a]scale,boxblur=20[bg];[b]scale[fg];[bg][fg]overlay`). `radius`: the blur's,
    by default 20 px per 360 px of the frame's short side."""
    h, w = frames.shape[1:3]
    r = radius or max(4, round(20 * min(out_h, out_w) / 360))
    s = min(out_w / w, out_h / h)
    fh, fw = min(out_h, _even(h * s)), min(out_w, _even(w * s))      # the picture, even sizes
    z = max(out_w / w, out_h / h)                                      # the fill covers the frame
    zh, zw = max(out_h, int(np.ceil(h * z))), max(out_w, int(np.ceil(w * z)))
    y, x = (out_h - fh) // 2, (out_w - fw) // 2
    by, bx = (zh - out_h) // 2, (zw - out_w) // 2

    def one(f):
        bg = cv2.resize(f, (zw, zh), interpolation=cv2.INTER_LINEAR)[by:by + out_h, bx:bx + out_w]
        out = cv2.blur(bg, (2 * r + 1, 2 * r + 1))
        out[y:y + fh, x:x + fw] = cv2.resize(f, (fw, fh),
                                             interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        return out
    return _per_frame(frames, one)


def _blur_pad_turned(frames):
    """`blur_pad` into the other orientation, at most 360 px on the new frame's short side: a
    landscape clip into 9:16 portrait (a square one into 1:2), a portrait one into 16:9."""
    h, w = frames.shape[1:3]
    if w >= h:
        s = min(_even(w), 360)
        return blur_pad(frames, _even(s * 16 / 9) if w > h else 2 * s, s)
    s = min(_even(h), 360)
    return blur_pad(frames, s, _even(s * 16 / 9))


# Beyond the grid (`--attacks extra`): other codecs, filters and geometry a re-uploader may apply.
EXTRA_ATTACKS = {
    "none": lambda f, fps, d: f,
    "hevc_crf28": lambda f, fps, d: encode(f, "libx265", {"crf": "28", "x265-params": "log-level=0"}),
    "vp9_crf40": lambda f, fps, d: encode(f, "libvpx-vp9", {"crf": "40", "b": "0"}, fmt="webm"),
    "av1_crf40": lambda f, fps, d: encode(f, "libsvtav1", {"crf": "40", "svtav1-params": "log-level=0"}),
    "mpeg4_q5": lambda f, fps, d: encode(f, "mpeg4", {"qscale": "5"}),
    "gaussian_blur_3": lambda f, fps, d: _per_frame(f, lambda x: cv2.GaussianBlur(x, (3, 3), 0)),
    "median_3": lambda f, fps, d: _per_frame(f, lambda x: cv2.medianBlur(x, 3)),
    "noise_sigma5": lambda f, fps, d: np.clip(
        f + np.random.default_rng(0).normal(0, 5, f.shape), 0, 255).astype(np.uint8),
    "jpeg50": lambda f, fps, d: _per_frame(f, lambda x: cv2.imdecode(
        cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, 50])[1], cv2.IMREAD_UNCHANGED)),
    "saturation_1.5": lambda f, fps, d: _saturation(f, 1.5),
    "hue_20deg": lambda f, fps, d: _hue(f, 10),
    "rotate_2deg": lambda f, fps, d: _rotate(f, 2.0),
    "rotate_-7deg+h264_crf23": lambda f, fps, d: h264(_rotate(f, -7.0), fps, 23, d),
    "rotate_90+h264_crf23": lambda f, fps, d: h264(np.ascontiguousarray(np.rot90(f, -1, axes=(1, 2))), fps, 23, d),
    "rotate_180": lambda f, fps, d: np.ascontiguousarray(f[:, ::-1, ::-1]),
    "flip_vertical": lambda f, fps, d: np.ascontiguousarray(f[:, ::-1]),
    "aspect_0.75": lambda f, fps, d: _per_frame(f, lambda x: cv2.resize(
        x, (x.shape[1], _even(x.shape[0] * 0.75)), interpolation=cv2.INTER_AREA)),
    "upscale_2": lambda f, fps, d: _per_frame(f, lambda x: cv2.resize(
        x, (2 * x.shape[1], 2 * x.shape[0]), interpolation=cv2.INTER_CUBIC)),
    # VideoMarkBench's kinds at their stronger settings
    "zoom_centre_0.95": lambda f, fps, d: _per_frame(_crop(f, 0.025, 0.975, 0.025, 0.975), lambda x: cv2.resize(
        x, (f.shape[2], f.shape[1]), interpolation=cv2.INTER_LINEAR)),
    "noise_sigma25": lambda f, fps, d: np.clip(
        f + np.random.default_rng(0).normal(0, 25.5, f.shape), 0, 255).astype(np.uint8),
    "gaussian_blur_sigma1.5": lambda f, fps, d: _per_frame(f, lambda x: cv2.GaussianBlur(x, (0, 0), 1.5)),
    "jpeg20": lambda f, fps, d: _per_frame(f, lambda x: cv2.imdecode(
        cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, 20])[1], cv2.IMREAD_UNCHANGED)),
    "frame_average_5": lambda f, fps, d: _frame_average(f, 5),
    # what a re-publisher adds: a burnt-in caption and a channel logo, then H.264; the clip shrunk
    # to half inside a black frame of its own size (picture in picture)
    "caption+logo+h264_crf23": lambda f, fps, d: h264(_caption_and_logo(f), fps, 23, d),
    "picture_in_picture_0.5": lambda f, fps, d: _picture_in_picture(f, 0.5),
    # a short-video re-upload: into the other orientation over a blurred, zoomed copy, then H.264
    "blur_pad+h264_crf23": lambda f, fps, d: h264(_blur_pad_turned(f), fps, 23, d),
}


def _crop(frames, y0, y1, x0, x1):
    """The part (y0..y1, x0..x1 as fractions) of every frame, at even pixel offsets and sizes."""
    h, w = frames.shape[1:3]
    return np.ascontiguousarray(frames[:, _even(y0 * h):_even(y1 * h), _even(x0 * w):_even(x1 * w)])


# Crops off centre (`--attacks crops`, also in extra): the detector searches them when nothing
# else reads the mark (`evalkit.provenance.wm_crops`: both sides by one fraction, or one side).
CROP_ATTACKS = {
    "corner_crop_0.9": lambda f, fps, d: _crop(f, 0, 0.9, 0, 0.9),
    "corner_crop_0.8+h264_crf23": lambda f, fps, d: h264(_crop(f, 0.2, 1, 0.2, 1), fps, 23, d),
    "offset_crop_0.75+h264_crf30": lambda f, fps, d: h264(_crop(f, 0.05, 0.8, 0.2, 0.95), fps, 30, d),
    "side_crop_0.7": lambda f, fps, d: _crop(f, 0, 1, 0.05, 0.75),
    "mirror+corner_crop_0.85+h264_crf23": lambda f, fps, d: h264(
        np.ascontiguousarray(_crop(f, 0.15, 1, 0, 0.85)[:, :, ::-1]), fps, 23, d),
    "zoom_0.8": lambda f, fps, d: _per_frame(_crop(f, 0.2, 1, 0, 0.8), lambda x: cv2.resize(
        x, (f.shape[2], f.shape[1]), interpolation=cv2.INTER_LINEAR)),
    "crop_0.9x0.7": lambda f, fps, d: _crop(f, 0.1, 1, 0, 0.7),
}
EXTRA_ATTACKS.update(CROP_ATTACKS)

# What editors and re-uploaders do besides re-encoding (`--attacks edits`, also in extra): tone
# curves, white balance, sharpening, a picture moved within its frame, time played backwards or
# faster, a square crop for a feed, a vignette filter, a screen recording.
def _gamma(frames, g):
    lut = np.clip(np.rint(255 * (np.arange(256) / 255) ** g), 0, 255).astype(np.uint8)
    return lut[frames]


def _white_balance(frames, r, b):
    x = frames.astype(np.float32)
    x[..., 0] *= r
    x[..., 2] *= b
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _shift(frames, dx, dy):
    """The picture moved by (dx, dy) pixels, the uncovered edge smeared (a stabiliser's shift)."""
    h, w = frames.shape[1:3]
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return _per_frame(frames, lambda x: cv2.warpAffine(x, m, (w, h), borderMode=cv2.BORDER_REPLICATE))


def _square(frames):
    h, w = frames.shape[1:3]
    s = min(h, w) // 2 * 2
    y0, x0 = (h - s) // 4 * 2, (w - s) // 4 * 2  # centred, at even offsets (4:2:0)
    return np.ascontiguousarray(frames[:, y0:y0 + s, x0:x0 + s])


def _vignette(frames, k):
    h, w = frames.shape[1:3]
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2
    return np.clip(np.rint(frames * (1 - k * r2 / 2)[None, :, :, None]), 0, 255).astype(np.uint8)


def _screen_recording(frames, fps, d):
    """Shown on a screen and recorded: 0.9 size, display gamma, a little blur and noise, CRF 30."""
    x = _gamma(resize(frames, 0.9), 1.1)
    x = _per_frame(x, lambda y: cv2.GaussianBlur(y, (0, 0), 0.7))
    x = np.clip(x + np.random.default_rng(1).normal(0, 2, x.shape), 0, 255).astype(np.uint8)
    return h264(x, fps, 30, d)


EDIT_ATTACKS = {
    "gamma_0.7": lambda f, fps, d: _gamma(f, 0.7),
    "gamma_1.4": lambda f, fps, d: _gamma(f, 1.4),
    "white_balance_r1.1_b0.9": lambda f, fps, d: _white_balance(f, 1.1, 0.9),
    "white_balance_r0.9_b1.1+h264_crf23": lambda f, fps, d: h264(_white_balance(f, 0.9, 1.1), fps, 23, d),
    "sharpen": lambda f, fps, d: _per_frame(f, lambda x: cv2.addWeighted(x, 2.0, cv2.GaussianBlur(x, (0, 0), 1.0), -1.0, 0)),
    "shift_3px": lambda f, fps, d: _shift(f, 3, 2),
    "shift_1.5%+h264_crf23": lambda f, fps, d: h264(_shift(f, 0.015 * f.shape[2], -0.015 * f.shape[1]), fps, 23, d),
    "reverse": lambda f, fps, d: np.ascontiguousarray(f[::-1]),
    "speed_1.25": lambda f, fps, d: np.ascontiguousarray(np.delete(f, np.arange(4, len(f), 5), axis=0)),
    "square_crop+h264_crf23": lambda f, fps, d: h264(_square(f), fps, 23, d),
    "vignette_0.4": lambda f, fps, d: _vignette(f, 0.4),
    "screen_recording": _screen_recording,
}
EXTRA_ATTACKS.update(EDIT_ATTACKS)


def _shake(frames, amplitude, seed=3):
    """Handheld re-filming or a stabiliser: each frame moved by its own random sub-pixel offset."""
    h, w = frames.shape[1:3]
    rng = np.random.default_rng(seed)
    out = np.empty_like(frames)
    for i, x in enumerate(frames):
        dx, dy = rng.uniform(-amplitude, amplitude, 2)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        out[i] = cv2.warpAffine(x, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    return out


def _fade(frames, share):
    """A fade in from black over the first `share` of the frames and out over the last."""
    n = len(frames)
    k = max(1, int(n * share))
    g = np.ones(n)
    g[:k], g[n - k:] = np.linspace(0, 1, k + 1)[1:], np.linspace(1, 0, k + 1)[:-1]
    return np.clip(np.rint(frames * g[:, None, None, None]), 0, 255).astype(np.uint8)


def _flicker(frames, amount, seed=4):
    """Each frame's brightness scaled by its own factor in [1 - amount, 1 + amount]."""
    g = np.random.default_rng(seed).uniform(1 - amount, 1 + amount, len(frames))
    return np.clip(np.rint(frames * g[:, None, None, None]), 0, 255).astype(np.uint8)


def _interpolate(frames):
    """Twice the frame rate by blending each pair of neighbours (a TV's motion smoothing)."""
    mid = ((frames[:-1].astype(np.uint16) + frames[1:]) // 2).astype(np.uint8)
    out = np.empty((2 * len(frames) - 1, *frames.shape[1:]), np.uint8)
    out[0::2], out[1::2] = frames, mid
    return out


def _slates(frames, n):
    """`n` frames of a title card (flat grey) before and after the clip, as an edit adds."""
    card = np.full((n, *frames.shape[1:]), 40, np.uint8)
    return np.concatenate([card, frames, card])


# What a video goes through on its way from a generator to a viewer beyond re-encoding: the
# hand and the stabiliser, the editor's fades and slates, a display's motion smoothing.
HANDLING_ATTACKS = {
    "shake_1px": lambda f, fps, d: _shake(f, 1.0),
    "shake_2px+h264_crf23": lambda f, fps, d: h264(_shake(f, 2.0), fps, 23, d),
    "fade_in_out_0.25": lambda f, fps, d: _fade(f, 0.25),
    "flicker_0.1": lambda f, fps, d: _flicker(f, 0.1),
    "interpolate_2x+h264_crf23": lambda f, fps, d: h264(_interpolate(f), fps * 2, 23, d),
    "slates_8+h264_crf23": lambda f, fps, d: h264(_slates(f, 8), fps, 23, d),
}
EXTRA_ATTACKS.update(HANDLING_ATTACKS)


def resample_rate(frames, ratio):
    """A frame-rate conversion by `ratio` (5/6: 30 to 25 fps, dropping every sixth frame; 6/5:
    25 to 30, repeating every fifth) with nearest frames, as a transcoder without blending does."""
    n = int(len(frames) * ratio)
    return frames[np.minimum((np.arange(n) / ratio).astype(int), len(frames) - 1)]


LONG_ATTACKS = {
    "none": lambda f, fps, d: f,
    "first_half": lambda f, fps, d: f[:len(f) // 2],
    "excerpt_75": lambda f, fps, d: f[13:88],
    "excerpt_75_half_rate": lambda f, fps, d: f[13:88:2],
    "excerpt_75+h264_crf30": lambda f, fps, d: h264(f[13:88], fps, 30, d),
    "half_rate": lambda f, fps, d: f[::2],
    "rate_5/6": lambda f, fps, d: resample_rate(f, 5 / 6),
    "excerpt_75_rate_6/5": lambda f, fps, d: resample_rate(f[13:88], 6 / 5),
    "h264_crf30": lambda f, fps, d: h264(f, fps, 30, d),
    "h264_crf40": lambda f, fps, d: h264(f, fps, 40, d),
    "h264_crf50": lambda f, fps, d: h264(f, fps, 50, d),
}
