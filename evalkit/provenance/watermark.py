"""A keyed, weight-free, invisible video watermark with an error-correcting code and a p-value.

    key = make_key(b"my secret")                       # SHA-256 of the secret seeds everything
    marked = embed(frames, payload=b"8+bytes!", key=key)   # uint8 [T, H, W, 3] in and out
    d = detect(marked_then_attacked, key)              # Detection(detected, payload, p_value, ...)

Scheme (why each choice)
------------------------
*Luma only.* The mark is one change of luma, added equally to R, G and B, so chroma
subsampling (yuv420p) and colour edits never touch it and the PSNR of the video equals that of
the luma change.

*One static mark, on the temporal mean.* The same pattern is added to every frame: H.264 codes
a static pattern once (in the reference frames) and then carries it through P/B-frames for free,
while per-frame noise would be thrown away by the motion-compensated residual quantiser at high
CRF. The bits are read from the temporal mean of the clip's luma, which averages the codec's
frame-to-frame errors and the moving content away. (Consequence: detection wants the whole clip;
a trimmed excerpt of moving footage loses the mark. Re-encoding, remuxing and every attack of the
benchmark keep all frames.)

*Scale-invariant geometry.* Bits live on a G x G grid of "chips" laid over the frame's unit
square (G = 16/32/64, the largest whose chips are >= `min_chip_px` pixels on the short side), so
a resize changes nothing in normalised coordinates. The detector measures chip means exactly
(a summed-area table with fractional boxes) and tries: every grid size, no crop, and centre crops
of the listed fractions at every sub-pixel placement that whole-pixel rounding allows.

*Quantisation, not spread spectrum.* Measured on the world clips and the real footage, the
host image's own energy at the chip scale is 5 to 20 times the mark's at PSNR 42, so blind
spread-spectrum correlation is host-limited (its SNR was too low to carry 64 bits even before
compression). Instead each orthonormal 2-D Haar detail coefficient of the chip grid (levels 1
and 2: chip-scale and twice that) is moved to the nearest point of a keyed, dithered lattice
(dither modulation, QIM) whose coset encodes one code bit. The host then causes no
interference at all; only the attack does. The step is fixed by the PSNR target (uniform
displacement, MSE = step^2 / 12 per coefficient), the pattern is the chip changes drawn as
blocks lightly smoothed (`blur`) with the smoothing and the 8-bit rounding pre-compensated, and a
guard shrinks the change (distortion-compensated QIM) on the rare clip that would fall under
`min_psnr`. Haar details have zero mean, so brightness offsets cancel; gain changes (contrast,
brightness as a factor) are found by a search over the luma gain, scored by the sign-blind
lattice fit sum(cos(4 pi e)) that needs no knowledge of the bits.

*Error correction and a keyed check.* The 64-bit payload (8 to 32 bytes allowed) plus a 24-bit
keyed MAC (BLAKE2b under the key) is encoded with a constraint-length-9, rate-1/3 recursive
systematic convolutional code (`wm_ecc`) whose bits come in rate-compatible order. Coefficients
take the code bits centre-out (sorted by how far their tile reaches from the frame centre, keyed
random order among equals, repeating the code when there are more coefficients than code bits),
so a clip with fewer coefficients than code bits carries a punctured code and a centre crop
keeps a prefix of the code rather than random holes. Decoding is max-log BCJR from soft values
cos(2 pi e), each Haar level weighted by its reliability estimated from its own lattice fit;
the decoded payload counts only if the MAC verifies.

*p-value under "no mark of this key".* With the key's dithers uniform and independent of the
video, the phase e of every coefficient is uniform, so (i) the lattice fit F = sum cos(4 pi e)
has log-MGF n log I0(lambda): a Chernoff bound gives p_presence, multiplied by the number of
(geometry, gain) points searched (Bonferroni); (ii) given all magnitudes, the code-bit signs are
fair coins, so the correlation S of the soft values with the re-encoded decoded codeword obeys
P(S >= s) <= min_lambda prod cosh(lambda m_i) exp(-lambda s), times the 2^64 payloads (union
bound over MAC-valid codewords), and a wrong decode passes the MAC with probability 2^-24; both are multiplied by the number of decoding
attempts (at most `max_attempts`). p_value = min(1, 2 min(p_presence, p_payload)); detected
means p_value < 1e-6. A mark whose payload does not verify but whose lattice fit is
overwhelming is still "detected", with payload None. The bound is checked empirically by
`benchmarks/robustness/watermark.py` (zero detections over >= 1,000 unmarked clip/key pairs) and
by the tests.

Presets differ only in `psnr`, and a step ratio looks to the detector like a luma gain: a clip
marked with one preset is usually also found with another within the gain range (about 3 dB).

Limits (measured with `benchmarks/robustness/watermark.py`; the numbers are in its report): at
PSNR 42 the chip-scale structure of small clips does not survive strong compression. On a flat
128x128 world clip x264 at CRF 40 keeps ~10% of the amplitude of the chip-scale coefficients
(8-pixel chips) and ~33% of the next level; a 128x128 frame has only ~60 Haar coefficients at
>= 16-pixel scale, fewer than the 88 information bits (64 payload + 24 check) any code must
carry. At CRF 50 every size measured (up to 720p) keeps too little (roughly 20-60 bits of
capacity). The payload survives CRF 23 on everything from 64x64 up; CRF 30 on 128x128 and
256x256 world clips and natural footage (not always on 64x64, nor on the heavily textured
176x144 carphone); CRF 40 on most 256x256 world clips and 640x272 / 720p footage; CRF 50 on
nothing. The "strong" preset (PSNR 40 dB) moves each limit down by about one size class.

The built-in generator's 16-frame 32x32 clips (issue 5) are below every limit: after CRF 18
then CRF 30 the payload comes back from 0 of 60 clips (CRF 23: 27%). At 32x32 the 16x16 grid has
2-pixel chips; probed with random +-4 patterns through CRF 18 + 30, x264 keeps 32% of the
amplitude of 4-pixel-period Haar details, 39% at 8 px, 60% at 16 px, 95% at 32 px, with a
residual of ~1.9 per coefficient, and it shrinks a small mark towards the host (a dead zone)
rather than adding noise, so a QIM displacement d comes back as about g d: a bit flips once
(1 - g)|d| > step / 4. Chroma channels keep less (11-30% at the two finest levels). A Shannon
estimate from those gains gives roughly 60-90 bits at PSNR 36-38 for the whole clip, blind
host interference ignored, against the 88 information bits to carry; measured, lowering the
PSNR to 38.4 dB, reweighting the levels towards coarse ones, using 3 or 4 Haar levels, or
feeding the x264 result back into the embedding (closed loop, down to 34 dB) each left CRF 30
recovery on these clips at 0-5%. Meeting it needs another channel (e.g. a mark that differs
between I-frame-aligned segments, or a shorter payload, which the format does not allow).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
from scipy.special import i0e

from evalkit.errors import BadInputError
from evalkit.provenance.wm_ecc import DEFAULT_CODE, ConvCode

__all__ = [
    "DEFAULT_P_THRESHOLD", "PRESETS", "Detection", "WatermarkConfig", "WatermarkInputError",
    "WatermarkKey", "detect", "embed", "get_config", "make_key",
]

DEFAULT_P_THRESHOLD = 1e-6
_LUMA = np.array([0.299, 0.587, 0.114])  # BT.601: a change added to R, G and B alike is a pure luma change
_VERSION = b"evalkit.watermark.v1"


class WatermarkInputError(BadInputError, ValueError):
    """Bad frames, payload, key or config given to `embed`/`detect` (a ValueError too)."""


@dataclass(frozen=True)
class WatermarkConfig:
    """How the mark is made and searched for; embedder and detector must use the same one (name
    a preset from `PRESETS`). Strength is set by `psnr`: the lattice step follows from it."""

    psnr: float = 42.3  # nominal PSNR of the mark; sets the lattice step
    min_psnr: float = 42.02  # guard: a clip that would come out below is marked more softly
    grid_sizes: tuple[int, ...] = (16, 32, 64)  # chip grids (cells per side), by frame size
    min_chip_px: float = 16.0  # the largest grid whose chips are >= this many pixels (short side)
    levels: int = 2  # Haar levels of the chip grid that carry bits
    level_steps: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # lattice step of each level, relative
    blur: float = 0.2  # smoothing of the chip pattern, in chips (std of a Gaussian)
    mac_bits: int = 24  # keyed check on the payload
    crops: tuple[float, ...] = (1.0, 0.8)  # centre-crop fractions the detector tries
    gain_range: tuple[float, float] = (0.7, 1.43)  # luma gains (contrast, brightness) searched
    gain_steps: int = 73
    max_attempts: int = 3  # decodes tried (best geometries by lattice fit); Bonferroni-counted
    p_threshold: float = DEFAULT_P_THRESHOLD

    def __post_init__(self):
        if not 20.0 <= self.psnr <= 80.0 or self.min_psnr > self.psnr:
            raise WatermarkInputError(f"psnr must be in 20..80 dB and >= min_psnr, got "
                                      f"{self.psnr}/{self.min_psnr}")
        if not self.grid_sizes or any(g < 4 or g % 2 ** self.levels for g in self.grid_sizes):
            raise WatermarkInputError(f"grid sizes must be multiples of 2**levels, got {self.grid_sizes}")
        if not 1 <= self.levels <= len(self.level_steps):
            raise WatermarkInputError(f"levels must be 1..{len(self.level_steps)}, got {self.levels}")
        if not 8 <= self.mac_bits <= 64:
            raise WatermarkInputError(f"mac_bits must be 8..64, got {self.mac_bits}")
        if not self.crops or any(not 0.3 <= c <= 1.0 for c in self.crops):
            raise WatermarkInputError(f"crops must be fractions in 0.3..1, got {self.crops}")
        lo, hi = self.gain_range
        if not (0 < lo <= 1 <= hi) or self.gain_steps < 3 or self.max_attempts < 1:
            raise WatermarkInputError("gain_range must bracket 1, gain_steps >= 3, max_attempts >= 1")
        if any(x <= 0 for x in self.level_steps) or not 0 <= self.blur <= 2 or self.min_chip_px <= 0:
            raise WatermarkInputError("level_steps and min_chip_px must be positive and blur in 0..2")
        if not 0 < self.p_threshold < 1:
            raise WatermarkInputError(f"p_threshold must be in (0, 1), got {self.p_threshold}")

    def grid_for(self, h: int, w: int) -> int:
        short = min(h, w)
        ok = [g for g in sorted(self.grid_sizes) if short / g >= self.min_chip_px]
        return ok[-1] if ok else min(self.grid_sizes)


PRESETS: dict[str, WatermarkConfig] = {
    "default": WatermarkConfig(),
    # More robust, more visible (PSNR 40 dB); for footage that will be recompressed hard.
    "strong": WatermarkConfig(psnr=40.3, min_psnr=40.02),
    # Nearly lossless (PSNR 46 dB); survives mild re-encoding (about CRF <= 23) only.
    "light": WatermarkConfig(psnr=46.3, min_psnr=46.02),
}


def get_config(name_or_config: str | WatermarkConfig | None = None) -> WatermarkConfig:
    if name_or_config is None:
        return PRESETS["default"]
    if isinstance(name_or_config, WatermarkConfig):
        return name_or_config
    try:
        return PRESETS[name_or_config]
    except (KeyError, TypeError):
        raise WatermarkInputError(f"unknown watermark preset {name_or_config!r}; choose one of "
                                  f"{', '.join(PRESETS)}") from None


@dataclass(frozen=True)
class WatermarkKey:
    """Seeds derived from a secret by SHA-256; the secret itself is not kept."""

    seed: bytes = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """A short public identifier of the key (not of the secret)."""
        return hashlib.sha256(b"fingerprint\0" + self.seed).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"WatermarkKey(fingerprint={self.fingerprint})"

    def mac(self, payload: bytes, bits: int) -> np.ndarray:
        d = hashlib.blake2b(payload, key=self.seed, digest_size=8, person=b"evalkit-wm-mac").digest()
        return np.unpackbits(np.frombuffer(d, np.uint8))[:bits]


def make_key(secret: bytes | str) -> WatermarkKey:
    """Derive a watermark key from a secret (bytes or text). Never log the secret."""
    if isinstance(secret, WatermarkKey):
        return secret
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not isinstance(secret, (bytes, bytearray)) or len(secret) == 0:
        raise WatermarkInputError("a watermark secret must be non-empty bytes or text")
    return WatermarkKey(hashlib.sha256(_VERSION + b"\0" + bytes(secret)).digest())


def _as_key(key) -> WatermarkKey:
    return key if isinstance(key, WatermarkKey) else make_key(key)


# ----------------------------------------------------------------------------------------------
# Geometry: luma, chip grid, Haar levels


def _mean_luma(frames: np.ndarray) -> np.ndarray:
    """float32 [H, W]: the luma of the temporal mean frame."""
    t = frames.shape[0]
    s = frames.sum(axis=0, dtype=np.uint32 if t < (1 << 24) else np.float64)
    return (s.astype(np.float32) @ (_LUMA / t).astype(np.float32)).astype(np.float32)


class _Integral:
    """Summed-area table of a luma image, for exact area means over fractional boxes."""

    def __init__(self, y: np.ndarray):
        self.h, self.w = y.shape
        s = np.zeros((self.h + 1, self.w + 1), np.float64)
        np.cumsum(y, axis=0, dtype=np.float64, out=s[1:, 1:])
        np.cumsum(s[1:, 1:], axis=1, out=s[1:, 1:])
        self.s = s

    def _at(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Integral over [0, r] x [0, c] (fractional, clamped), for r [n, 1] and c [1, m]."""
        r = np.clip(r, 0, self.h)
        c = np.clip(c, 0, self.w)
        r0 = np.minimum(np.floor(r).astype(np.int64), self.h - 1)
        c0 = np.minimum(np.floor(c).astype(np.int64), self.w - 1)
        fr, fc = r - r0, c - c0
        s = self.s
        return ((1 - fr) * (1 - fc) * s[r0, c0] + fr * (1 - fc) * s[r0 + 1, c0]
                + (1 - fr) * fc * s[r0, c0 + 1] + fr * fc * s[r0 + 1, c0 + 1])

    def chips(self, g: int, box=(0.0, 1.0, 0.0, 1.0), tol: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
        """Means [g, g] of the chip grid of the marked frame's unit square, and their validity,
        where this image shows the part `box` = (y0, y1, x0, x1) of that square."""
        y0, y1, x0, x1 = box
        e = np.arange(g + 1) / g
        r = (e - y0) / (y1 - y0) * self.h
        c = (e - x0) / (x1 - x0) * self.w
        integ = self._at(r[:, None], c[None, :])
        area = np.diff(np.clip(r, 0, self.h))[:, None] * np.diff(np.clip(c, 0, self.w))[None, :]
        sums = integ[1:, 1:] - integ[:-1, 1:] - integ[1:, :-1] + integ[:-1, :-1]
        okr = (r[:-1] >= -tol) & (r[1:] <= self.h + tol)
        okc = (c[:-1] >= -tol) & (c[1:] <= self.w + tol)
        valid = okr[:, None] & okc[None, :] & (area > 0)
        return np.where(valid, sums / np.maximum(area, 1e-9), 0.0), valid


def _crop_boxes(h: int, w: int, frac: float) -> list[tuple[float, float, float, float]]:
    """Where a centre crop of fraction `frac` that came out h x w pixels may sit in the unit
    square of the original: the ideal box, and the boxes of every original size and integer
    offset that rounding to whole (or even) pixels could have produced."""
    def axis(n):
        out = {((1 - frac) / 2, (1 + frac) / 2)}
        for n0 in range(int(math.floor((n - 2) / frac)), int(math.ceil((n + 2) / frac)) + 1):
            if n0 <= n or abs(n - frac * n0) > 1.01:
                continue
            for off in {(n0 - n) // 2, (n0 - n + 1) // 2}:
                out.add((off / n0, (off + n) / n0))
        return sorted(out)
    return [(a, b, c, d) for a, b in axis(h) for c, d in axis(w)]


def _haar(c: np.ndarray, levels: int) -> np.ndarray:
    """Orthonormal 2-D Haar detail coefficients of levels 1..levels, flattened (finest first)."""
    out = []
    for _ in range(levels):
        a, b, cc, d = c[0::2, 0::2], c[0::2, 1::2], c[1::2, 0::2], c[1::2, 1::2]
        out += [(a - b + cc - d) / 2, (a + b - cc - d) / 2, (a - b - cc + d) / 2]
        c = (a + b + cc + d) / 2
    return np.concatenate([o.ravel() for o in out])


def _haar_valid(v: np.ndarray, levels: int) -> np.ndarray:
    out = []
    for _ in range(levels):
        ok = v[0::2, 0::2] & v[0::2, 1::2] & v[1::2, 0::2] & v[1::2, 1::2]
        out += [ok.ravel()] * 3
        v = ok
    return np.concatenate(out)


def _ihaar(x: np.ndarray, g: int, levels: int) -> np.ndarray:
    """Inverse of `_haar` with a zero coarse average."""
    sizes = [g >> (l + 1) for l in range(levels)]
    parts, i = [], 0
    for s in sizes:
        n = s * s
        parts.append([x[i + k * n:i + (k + 1) * n].reshape(s, s) for k in range(3)])
        i += 3 * n
    c = np.zeros((sizes[-1], sizes[-1]), np.float64)
    for (h, v, d), s in zip(reversed(parts), reversed(sizes)):
        n = np.empty((2 * s, 2 * s))
        n[0::2, 0::2] = (c + h + v + d) / 2
        n[0::2, 1::2] = (c - h + v - d) / 2
        n[1::2, 0::2] = (c + h - v - d) / 2
        n[1::2, 1::2] = (c - h - v + d) / 2
        c = n
    return c


# ----------------------------------------------------------------------------------------------
# The keyed plan: which coefficient carries which code bit, with which dither and step


@dataclass(frozen=True)
class _Plan:
    g: int
    level: np.ndarray  # level index (0 = finest) of each coefficient
    step: np.ndarray  # lattice step in luma levels
    dither: np.ndarray  # in [0, 1) of a step
    codebit: np.ndarray  # index into the rate-compatible code-bit array
    n_code: int


@lru_cache(maxsize=64)
def _plan(key: WatermarkKey, g: int, cfg: WatermarkConfig, n_info: int, code: ConvCode) -> _Plan:
    n_code = code.n_code_bits(n_info)
    ent = int.from_bytes(hashlib.sha256(b"plan\0" + key.seed).digest(), "big")
    rng = np.random.default_rng(np.random.SeedSequence(ent, spawn_key=(g, cfg.levels, n_code)))
    counts = [3 * (g >> (l + 1)) ** 2 for l in range(cfg.levels)]
    level = np.concatenate([np.full(n, l) for l, n in enumerate(counts)])
    w = np.asarray(cfg.level_steps[: cfg.levels], np.float64)
    target_mse = 255.0 ** 2 / 10 ** (cfg.psnr / 10) - 1 / 12  # rounding adds ~1/12
    delta0 = math.sqrt(12 * g * g * target_mse / float(np.sum(np.asarray(counts) * w ** 2)))
    # Centre-out assignment: coefficients sorted by how far their tile reaches from the frame's
    # centre (keyed random order among equals) take the code bits in rate-compatible order, so a
    # centre crop keeps a prefix of the code, i.e. a punctured code rather than random holes.
    ring = []
    for l in range(cfg.levels):
        t = 2 << l  # tile side in chips
        edges = np.arange(g // t + 1) * t / g - 0.5
        reach = np.maximum(np.abs(edges[:-1]), np.abs(edges[1:]))
        ring += [np.maximum(reach[:, None], reach[None, :]).ravel()] * 3
    ring = np.round(np.concatenate(ring), 9)
    rank = np.lexsort((rng.random(ring.size), ring))
    codebit = np.empty(ring.size, np.int64)
    codebit[rank] = np.arange(ring.size) % n_code
    return _Plan(g=g, level=level, step=delta0 * w[level], dither=rng.random(level.size),
                 codebit=codebit, n_code=n_code)


# ----------------------------------------------------------------------------------------------
# Embedding


def _check_frames(frames) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 \
            or frames.shape[-1] != 3 or frames.shape[0] < 1:
        shape = getattr(frames, "shape", None)
        raise WatermarkInputError(f"frames must be a uint8 array [T, H, W, 3] with T >= 1, got "
                                  f"{getattr(frames, 'dtype', type(frames).__name__)} {shape}")
    if min(frames.shape[1:3]) < 32:
        raise WatermarkInputError(f"frames are {frames.shape[2]}x{frames.shape[1]}; the watermark needs "
                                  "at least 32x32 pixels")
    return frames


def _payload_bits(payload) -> np.ndarray:
    if not isinstance(payload, (bytes, bytearray)):
        raise WatermarkInputError(f"payload must be bytes, got {type(payload).__name__}")
    if not 8 <= len(payload) <= 32:
        raise WatermarkInputError(f"payload must be 8 to 32 bytes (64 to 256 bits), got {len(payload)} bytes")
    return np.unpackbits(np.frombuffer(bytes(payload), np.uint8))


def _synth(dc: np.ndarray, h: int, w: int, blur: float) -> np.ndarray:
    g = dc.shape[0]
    p = cv2.resize(dc.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    if blur > 0:
        p = cv2.GaussianBlur(p, (0, 0), sigmaX=blur * w / g, sigmaY=blur * h / g,
                             borderType=cv2.BORDER_REFLECT)
    return p


def embed(frames: np.ndarray, payload: bytes, key, config: WatermarkConfig | str | None = None) -> np.ndarray:
    """Mark uint8 RGB frames [T, H, W, 3] with `payload` (8 to 32 bytes) under `key`.

    Returns new frames of the same shape; the same inputs always give the same output."""
    frames = _check_frames(frames)
    cfg = get_config(config)
    key = _as_key(key)
    bits = _payload_bits(payload)
    info = np.concatenate([bits, key.mac(bytes(payload), cfg.mac_bits)])
    code = DEFAULT_CODE.encode(info)
    _, h, w, _ = frames.shape
    g = cfg.grid_for(h, w)
    plan = _plan(key, g, cfg, info.size, DEFAULT_CODE)
    b = code[plan.codebit]
    c, _ = _Integral(_mean_luma(frames)).chips(g)
    v = _haar(c, cfg.levels)
    off = plan.step * (plan.dither + 0.5 * b)
    disp = plan.step * np.round((v - off) / plan.step) + off - v
    target = _ihaar(disp, g, cfg.levels)
    dc = target.copy()
    for _ in range(3):  # pre-compensate smoothing and rounding so that chip means hit the target
        p = np.rint(_synth(dc, h, w, cfg.blur))
        dc += target - _Integral(p).chips(g)[0]
    p = np.rint(_synth(dc, h, w, cfg.blur))
    mse = float(np.mean(p * p)) + 1e-12
    floor = 255.0 ** 2 / 10 ** (cfg.min_psnr / 10)
    if mse > floor:  # rare: distortion-compensated QIM with alpha < 1 keeps the PSNR promise
        p = np.rint(_synth(dc * math.sqrt(floor / mse) * 0.98, h, w, cfg.blur))
    delta = p.astype(np.int16)[None, :, :, None]
    out = np.empty_like(frames)
    step = max(1, (1 << 24) // max(1, h * w * 3))  # bounded int16 temporaries on large frames
    for i in range(0, frames.shape[0], step):
        chunk = frames[i:i + step].astype(np.int16)
        chunk += delta
        np.clip(chunk, 0, 255, out=chunk)
        out[i:i + step] = chunk
    return out


# ----------------------------------------------------------------------------------------------
# Detection


@dataclass
class Detection:
    """What `detect` found. `bits` are soft payload bits in [-1, 1] (positive means 1);
    `bit_confidence` is their mean magnitude. `p_value` is the probability, with no mark of this
    key present, of evidence at least this strong (see the module docstring)."""

    detected: bool
    payload: bytes | None
    p_value: float
    bit_confidence: float
    bits: np.ndarray
    p_payload: float = 1.0
    p_presence: float = 1.0
    geometry: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"detected": bool(self.detected),
                "payload": self.payload.hex() if self.payload is not None else None,
                "p_value": float(self.p_value), "bit_confidence": float(self.bit_confidence)}


def _chernoff_log(logmgf, mags: np.ndarray, t: float) -> float:
    """log of min over lambda >= 0 of E[exp(lambda S)] exp(-lambda t), S a sum of independent
    symmetric terms with log-MGFs logmgf(lambda * mags)."""
    if t <= 0 or mags.size == 0:
        return 0.0
    s2 = float(np.sum(mags ** 2))
    f = lambda lam: float(np.sum(logmgf(lam * mags))) - lam * t  # noqa: E731
    lo, hi = 0.0, max(4 * t / max(s2, 1e-12), 1e-6)
    while f(hi) < f(hi / 2) and hi < 1e6:
        hi *= 2
    for _ in range(60):  # ternary search on a convex function
        a, b = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        if f(a) < f(b):
            hi = b
        else:
            lo = a
    return min(0.0, f((lo + hi) / 2))


def _log_cosh(x):
    x = np.abs(x)
    return x + np.log1p(np.exp(-2 * x)) - math.log(2)


def _log_i0(x):
    x = np.abs(x)
    return np.log(i0e(x)) + x


@dataclass
class _Cand:
    z: float
    fit: float
    g: int
    box: tuple
    crop: float
    gain: float
    v: np.ndarray
    valid: np.ndarray
    plan: _Plan
    prior: bool = False


def _fit(v, st, di, gains):
    """Lattice fit (sign-blind: a half step apart both bits fit) at each gain."""
    e = (v / st)[None, :] / gains[:, None] - di
    return np.cos((4 * np.pi) * e.astype(np.float32)).sum(axis=1, dtype=np.float64)


def _search(y: np.ndarray, cfg: WatermarkConfig, key: WatermarkKey, n_info: int):
    """Every (grid, crop box) hypothesis with its best gain (and its best gain near 1).
    Returns the candidates and the number of (hypothesis, gain) points looked at."""
    h, w = y.shape
    integ = _Integral(y)
    lo, hi = math.log(cfg.gain_range[0]), math.log(cfg.gain_range[1])
    coarse = np.exp(np.linspace(lo, hi, cfg.gain_steps))
    step = (hi - lo) / max(cfg.gain_steps - 1, 1)
    near = np.exp(np.linspace(-0.03, 0.03, 13))
    native = cfg.grid_for(h, w)
    cands, n_search = [], 0
    for g in cfg.grid_sizes:
        plan = _plan(key, g, cfg, n_info, DEFAULT_CODE)
        for crop in cfg.crops:
            if min(h, w) / crop / g < 2.0:
                continue
            boxes = [(0.0, 1.0, 0.0, 1.0)] if crop >= 1.0 else _crop_boxes(h, w, crop)
            # many candidate crop boxes: rank them on every 4th gain, refine the best two
            grid = coarse if len(boxes) == 1 else coarse[::4]
            gstep = step * (coarse.size - 1) / max(grid.size - 1, 1)
            per_box = []
            for box in boxes:
                c, ok = integ.chips(g, box)
                valid = _haar_valid(ok, cfg.levels)
                if valid.sum() < 24:
                    continue
                v = _haar(c, cfg.levels)
                vv, st, di = v[valid], plan.step[valid], plan.dither[valid]
                fit = _fit(vv, st, di, grid)
                n_search += grid.size
                per_box.append((float(fit.max()), box, v, valid, vv, st, di, int(np.argmax(fit))))
            per_box.sort(key=lambda t: -t[0])
            for rank, (_, box, v, valid, vv, st, di, j) in enumerate(per_box[:2]):
                fine = np.exp(math.log(grid[j]) + np.linspace(-gstep, gstep, 15 if grid is coarse else 41))
                gains = [fine] + ([near] if rank == 0 else [])
                for k, gs in enumerate(gains):
                    fit = _fit(vv, st, di, gs)
                    n_search += gs.size
                    i = int(np.argmax(fit))
                    z = float(fit[i]) / math.sqrt(vv.size / 2)
                    cands.append(_Cand(z, float(fit[i]), g, box, crop, float(gs[i]), v, valid, plan,
                                       prior=(k == 1 and g == native and crop >= 1.0)))
    return cands, n_search


def _decode(c: _Cand, cfg: WatermarkConfig, key: WatermarkKey, payload_bits: int) -> dict:
    plan, valid = c.plan, c.valid
    e = c.v / c.gain / plan.step - plan.dither
    cos2 = np.where(valid, np.cos(4 * np.pi * e), 0.0)
    s = np.where(valid, np.cos(2 * np.pi * e), 0.0)
    # Reliability of each level from its lattice fit alone (sign-blind, so the null stays exact):
    # for a Gaussian error, E cos(4 pi e) = m and E cos(2 pi e) = m ** (1/4).
    kappa = np.zeros(cfg.levels)
    for lv in range(cfg.levels):
        sel = valid & (plan.level == lv)
        if sel.any():
            m = max(float(cos2[sel].mean()) - 2.0 / math.sqrt(2.0 * sel.sum()), 1e-3)
            mu = m ** 0.25
            kappa[lv] = 2 * mu / max((1 + m) / 2 - mu * mu, 0.05)
    return {**_evidence(kappa[plan.level] * s, plan, key, cfg, payload_bits), "cand": c}


def _evidence(llr_dim: np.ndarray, plan: _Plan, key: WatermarkKey, cfg: WatermarkConfig,
              payload_bits: int) -> dict:
    """Decode per-coefficient LLRs (positive = code bit 0); check the MAC; bound the evidence."""
    n_info = payload_bits + cfg.mac_bits
    llr = np.bincount(plan.codebit, weights=llr_dim, minlength=plan.n_code)
    hard, out_llr = DEFAULT_CODE.decode(llr, n_info)
    payload = np.packbits(hard[:payload_bits]).tobytes()
    ok = bool(np.array_equal(hard[payload_bits:], key.mac(payload, cfg.mac_bits)))
    sgn = 1.0 - 2.0 * DEFAULT_CODE.encode(hard)[plan.codebit]
    stat = float(np.sum(llr_dim * sgn))
    mags = np.abs(llr_dim[llr_dim != 0])
    # Given the magnitudes, the signs are fair coins under the null: a Chernoff bound on the
    # correlation with one codeword, times the number of payloads (union bound).
    log_corr = payload_bits * math.log(2) + _chernoff_log(_log_cosh, mags, stat)
    soft = -np.tanh(np.clip(out_llr[:payload_bits], -60, 60) / 2)
    return {"ok": ok, "payload": payload, "log_corr": log_corr, "soft": soft}


def detect(frames: np.ndarray, key, config: WatermarkConfig | str | None = None,
           payload_bits: int = 64) -> Detection:
    """Look for the mark of `key` in uint8 RGB frames [T, H, W, 3] (any size, any length)."""
    frames = _check_frames(frames)
    cfg = get_config(config)
    key = _as_key(key)
    if isinstance(payload_bits, bool) or not isinstance(payload_bits, (int, np.integer)) \
            or payload_bits % 8 or not 64 <= payload_bits <= 256:
        raise WatermarkInputError(f"payload_bits must be a multiple of 8 in 64..256, got {payload_bits!r}")
    payload_bits = int(payload_bits)
    cands, n_search = _search(_mean_luma(frames), cfg, key, payload_bits + cfg.mac_bits)
    if not cands:
        return Detection(False, None, 1.0, 0.0, np.zeros(payload_bits))
    cands.sort(key=lambda c: -c.z)
    best = cands[0]
    n_valid = int(best.valid.sum())
    p_presence = min(1.0, n_search * math.exp(_chernoff_log(_log_i0, np.ones(n_valid), best.fit)))
    # Decode the most plausible geometry a priori (native grid, no crop, gain near 1), then the
    # best lattice fits; every attempt is counted in the p-value.
    attempts = [c for c in cands if c.prior][:1]
    for c in cands:
        if len(attempts) >= cfg.max_attempts:
            break
        if not any(c.g == a.g and c.box == a.box and abs(c.gain / a.gain - 1) < 0.005 for a in attempts):
            attempts.append(c)
    results = []
    for c in attempts:
        r = _decode(c, cfg, key, payload_bits)
        results.append(r)
        if r["ok"]:
            break
    good = [r for r in results if r["ok"]]
    if good:
        r = good[0]
        p_payload = min(1.0, len(attempts) * min(2.0 ** -cfg.mac_bits, math.exp(min(r["log_corr"], 0.0))))
    else:  # report the a-priori geometry unless the lattice fit clearly prefers another one
        r = results[0] if results[0]["cand"].prior and best.z < 6 else max(results, key=lambda r: r["cand"].z)
        p_payload = 1.0
    p = min(1.0, 2 * min(p_payload, p_presence))
    c = r["cand"]
    geometry = {"grid": c.g, "crop": c.crop, "box": tuple(round(x, 4) for x in c.box),
                "gain": round(c.gain, 4), "presence_z": round(best.z, 2), "attempts": len(results)}
    return Detection(detected=p < cfg.p_threshold, payload=r["payload"] if r["ok"] else None,
                     p_value=p, bit_confidence=float(np.mean(np.abs(r["soft"]))), bits=r["soft"],
                     p_payload=p_payload, p_presence=p_presence, geometry=geometry)
