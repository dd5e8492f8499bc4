"""A keyed, weight-free, invisible video watermark with an error-correcting code and a p-value.

    key = make_key(b"my secret")                       # SHA-256 of the secret seeds everything
    marked = embed(frames, payload=b"8+bytes!", key=key)   # uint8 [T, H, W, 3] in and out
    d = detect(marked_then_attacked, key)              # Detection(detected, payload, p_value, ...)

Scheme (why each choice)
------------------------
*One colour channel per clip, picked by a profile.* The mark is a change of one BT.601 channel
(`wm_grid.CHANNELS`): luma (the same change added to R, G and B) or Cr (a red-difference change
that leaves luma exactly unchanged). A profile (`WatermarkConfig.profiles`) says which channel
and which Haar levels carry bits, and with which relative lattice steps; `choose_profile` picks
one per clip by its size and the detector tries them all. Frames of at least `chroma_min_px`
(160) on the short side take the Cr profile: x264 quantises chroma more finely than luma at high
CRF, so there a Cr mark comes back after CRF 50 where a luma mark at the same PSNR does not
(measured over two benchmark runs, bit accuracy after CRF 50: 256 px world clips 0.77 against
0.54, 640x272 and 720p footage 0.89 against 0.61, payloads from 7 of 16 clips against none; CRF
23-40 unchanged). Smaller frames keep the luma profile, which is scheme 1's mark exactly (same
plan, same pixels, so clips marked before are still found): 4:2:0 halves chroma's resolution,
and on the 176x144 carphone and on 64 px clips a Cr mark loses payloads at CRF 30; on 128 px
clips the two came out even. Splitting the power between the two channels (measured: both with
all levels, or luma fine levels plus Cr coarse ones) lost payloads at CRF 30 on 64 px clips and
gained nothing clear at CRF 40-50: x264's dead zone rewards a concentrated mark. The PSNR of the
video is that of the channel change times its RGB cost (1 for luma, 0.83 for Cr).

*One static mark, on the temporal mean.* The same pattern is added to every frame: H.264 codes
a static pattern once (in the reference frames) and then carries it through P/B-frames for free,
while per-frame noise would be thrown away by the motion-compensated residual quantiser at high
CRF. The bits are read from the temporal mean of the clip, which averages the codec's
frame-to-frame errors and the moving content away (measured: its coefficient noise is half that
of the I-frame alone; a temporal median is worse).

*Segments, for excerpts.* A clip of at least two `segment_frames` (32) is marked segment by
segment, each on its own mean (`wm_time`), because an excerpt of moving footage has another
mean than the whole clip and, marked in one piece, lost its mark (the first half of 64 frames
of the carphone footage: not even detected). Each segment keeps the previous one's lattice
point wherever that is within 0.75 of a step, so where the picture does not move the pattern
stays one static pattern and the whole clip's mean stays on the lattice. The detector reads the
whole clip first; then a cheap scan ranks every window offset by the sign-blind lattice fit
summed over the windows in step with it, and the best offsets are read as one window and as all
their segments decoded together (LLRs summed). Any excerpt that holds one whole segment (63
frames are always enough), at the original or at half the frame rate, keeps a complete mark.
The price, measured on 96-250-frame clips: after CRF 50 of a whole long clip, bit accuracy 0.66
against 0.73 marked in one piece (payloads equal; README); clips under 64 frames (every clip of
the benchmark grid and of the generators) are marked exactly as before, and a long clip marked
in one piece before segments existed is still read (the whole clip is read first).

*Scale-invariant geometry.* Bits live on a G x G grid of "chips" laid over the frame's unit
square (G = 16/32/64, the largest whose chips are >= `min_chip_px` pixels on the short side), so
a resize changes nothing in normalised coordinates. The detector measures chip means exactly
(a summed-area table with fractional boxes) and tries: every profile and grid size, no crop, and
centre crops of the listed fractions at every sub-pixel placement that whole-pixel rounding
allows. A crop off centre needs its box to within about a quarter of a chip: the host's own
chip coefficients are 5-20 times the lattice step, so a box off by a sixty-fourth of the frame
moves them by more than a step (measured on a 128 px world clip cropped from a corner: lattice
fit z 16 at the exact box, 3-4 half a pixel from it). When no other read finds the mark,
`wm_crops` therefore searches them exhaustively and cheaply, in the clip as given and mirrored:
for every original size the crop may have come from (both sides cut by one fraction, or one
side only, down to `crop_search` of a side), the lattice phases of every Haar coefficient at
every whole-pixel place its tile can take, summed against the key's dithers for every origin of
the grid at once; the best three hypotheses are refined over every whole-pixel box near them (a
crop not resized after has one) and then sub-pixel, and decoded (a frame of 640 px or more on
its short side is searched shrunk to about 320 px: the coordinates are frame-relative). Each
view's search is one read, its decodes counted in the payload bound and every box looked at in
the presence bound. A crop by two different fractions, or losing more
than about half of the coefficients (they carry a code with little repetition on small grids),
still loses the payload; a crop resized after is found when the resize leaves the grid size.

*Views.* The detector reads the clip as given, mirrored left-right, and, when flat
unchanging bars surround the picture (letterbox, pillarbox, padding: `wm_grid.bars`), both again
with the bars cut off, stopping at the first view whose payload verifies. Each view is a full
search; its p-value is multiplied by the number of views (union bound). Then the six other
ways to lay the picture on its axes (`wm_grid.TURNS`: a quarter turn either way, a half turn,
upside down, and the two transposes: what a transcoder applying a phone's rotation flag
leaves), each one read of the whole frame without the centre crops. Then rotations by a few
degrees about the centre, as given and mirrored (`_detect_rotation`, up to `rotation_search`
either way): the whole
frame's lattice fit shows only within about a quarter of a chip at the frame's edge, so angles
16/G degrees apart are screened on a frame shrunk to about 320 px, refined, and the best read
at full size, as one read whose presence bound counts every angle tried. A rotation combined
with a crop or a resize is not searched.

*Quantisation, not spread spectrum.* Measured on the world clips and the real footage, the
host image's own energy at the chip scale is 5 to 20 times the mark's at PSNR 42, so blind
spread-spectrum correlation is host-limited (its SNR was too low to carry 64 bits even before
compression). Instead each orthonormal 2-D Haar detail coefficient of the chip grid (the luma
profile: levels 1 and 2, chip scale and twice that; the Cr profile: levels 1 to 3 with steps
0.7 : 1.4 : 2.0, most of the power on the coarse levels) is moved to the nearest point of a
keyed, dithered lattice (dither modulation, QIM) whose coset encodes one code bit. The host then
causes no interference at all; only the attack does. The step is fixed by the PSNR target
(uniform displacement, MSE = step^2 / 12 per coefficient), the pattern is the chip changes drawn
as blocks lightly smoothed (`blur`) with the smoothing and the 8-bit rounding pre-compensated,
and a guard shrinks the change (distortion-compensated QIM) on the rare clip that would fall
under `min_psnr`. Haar details have zero mean, so brightness offsets cancel; gain changes
(contrast, brightness as a factor: both scale luma details and colour differences alike) are
found by a search over the gain, scored by the sign-blind lattice fit sum(cos(4 pi e)) that needs
no knowledge of the bits.

*Error correction and a keyed check.* The 64-bit payload (8 to 32 bytes allowed) plus a 24-bit
keyed MAC (BLAKE2b under the key) is encoded with a constraint-length-9, rate-1/3 recursive
systematic convolutional code (`wm_ecc`) whose bits come in rate-compatible order. Coefficients
take the code bits centre-out (sorted by how far their tile reaches from the frame centre, then
coarser levels first in the Cr profile, then in keyed random order, repeating the code when
there are more coefficients than code bits), so a clip with fewer coefficients than code bits
carries a punctured code and a centre crop keeps a prefix of the code rather than random holes
(taking the coarse levels first outright put the payload bits on the tiles a crop cuts:
measured: no 256 px clip survived the crop). Decoding is max-log BCJR from soft values cos(2 pi
e), each Haar level weighted by its reliability estimated from its own lattice fit; the decoded
payload counts only if the MAC verifies.

*p-value under "no mark of this key".* With the key's dithers uniform and independent of the
video, the phase e of every coefficient is uniform, so (i) the lattice fit F = sum cos(4 pi e)
has log-MGF n log I0(lambda): a Chernoff bound gives p_presence, multiplied by the number of
(profile, grid, crop box, gain) points searched (Bonferroni); (ii) given all magnitudes, the
code-bit signs are fair coins, so the correlation S of the soft values with the re-encoded
decoded codeword obeys P(S >= s) <= min_lambda prod cosh(lambda m_i) exp(-lambda s), times the
2^64 payloads (union bound over MAC-valid codewords), and a wrong decode passes the MAC with
probability 2^-24; both are multiplied by the number of decoding attempts (the a-priori geometry
of each profile, then the best lattice fits, at most `max_attempts` = 4 in all). p_value =
min(1, 2 min(p_presence, p_payload)); detected means p_value < 1e-6. A mark whose payload does
not verify but whose lattice fit is overwhelming is still "detected", with payload None. The
bound is checked empirically by `benchmarks/robustness/watermark.py` (zero detections over
>= 1,000 unmarked clip/key pairs, and clips marked with another key in either profile) and by
the tests.

Presets differ only in `psnr`, and a step ratio looks to the detector like a gain: a clip
marked with one preset is usually also found with another within the gain range (about 3 dB).

Limits (measured with `benchmarks/robustness/watermark.py`; the numbers are in its report and
the README): at PSNR 42 the payload survives CRF 23 on everything from 64x64 up and CRF 30 on
128 px and larger (64 px: 5 to 8 clips of 8); CRF 40 on 256 px world clips and 640x272 / 720p
footage but on few 64-128 px clips or 176x144 footage (bit accuracy 0.5-0.7 there); CRF 50 on
flat large clips and on 720p footage, not on small ones. The targets of bit accuracy >= 0.95
at CRF 40 and >= 0.75 at CRF 50 over the whole grid are not met: the small world clips hold too
little. Measured on 64-128 px world clips through x264 CRF 40, the codec's error on the host
alone, projected on the mark's carriers, is 0.1-0.2 of a grey level (of the mean over the
frame) and the mark comes back at 0.3-0.8 of its amplitude; that leaves roughly 40-100 usable
carriers at PSNR 42, and even an oracle-weighted soft decoder could not recover 88 information
bits (64 payload + 24 check) from them. Alternatives measured and dropped (no better, or worse
on CRF 30 or crop): smooth whole-frame sine carriers (DCT/DST bands, +0.05-0.1 bit accuracy at
CRF 40 but fewer payloads at CRF 30), spread-transform dither modulation over many carriers,
luma and chroma together, three or four luma levels weighted towards coarse ones, and
closed-loop embedding through the codec (x264's decisions are discontinuous: it did not
converge and cost 6-8 dB). The "strong" preset (PSNR 40 dB) moves each limit down by about one
size class.

The built-in generator's 16-frame 32x32 clips (issue 5) are below every limit: after CRF 18 then
CRF 30 the payload comes back from none (0 of 30 generator clips, 0 of 8 world clips; CRF 23:
97% of the generator's clips, 12% of the sharper world clips). At 32x32 x264 keeps 32% of the
amplitude of 4-pixel-period Haar details, 39% at 8 px, 60% at 16 px, 95% at 32 px, and
block-aligned steps fare worse (16 px block means come back at 23%, 8 px at 6%); smooth carriers
fare better (80-90% of their amplitude at 16-32 px periods) but the host's own coding error on
them is ~0.2 grey levels, which leaves roughly 10-20 bits of capacity at PSNR 42 and 60-90 at
PSNR 36-38, against the 88 information bits to carry. Meeting it needs a lower PSNR for tiny
clips or a shorter payload, which the targets do not allow.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
from scipy.special import i0e, i1e

from evalkit.errors import BadInputError
from evalkit.provenance import wm_crops
from evalkit.provenance import wm_grid as geo
from evalkit.provenance import wm_time
from evalkit.provenance.wm_ecc import DEFAULT_CODE, ConvCode

__all__ = [
    "DEFAULT_P_THRESHOLD", "PRESETS", "Detection", "WatermarkConfig", "WatermarkInputError",
    "WatermarkKey", "detect", "embed", "get_config", "make_key",
]

DEFAULT_P_THRESHOLD = 1e-6
_VERSION = b"evalkit.watermark.v1"  # key derivation (keys made by `keys init` stay valid)
_PLAN_LABEL = b"plan2"  # the embedding plan of scheme 2 (colour channels, three Haar levels)


class WatermarkInputError(BadInputError, ValueError):
    """Bad frames, payload, key or config given to `embed`/`detect` (a ValueError too)."""


@dataclass(frozen=True)
class WatermarkConfig:
    """How the mark is made and searched for; embedder and detector must use the same one (name
    a preset from `PRESETS`). Strength is set by `psnr`: the lattice step follows from it."""

    psnr: float = 42.3  # nominal PSNR of the mark; sets the lattice step
    min_psnr: float = 42.02  # guard: a clip that would come out below is marked more softly
    channels: tuple[str, ...] = ("y", "cr")  # colour channels that carry bits (wm_grid.CHANNELS)
    # Profiles: the lattice step of each (channel, Haar level), relative (0: unused). The embedder
    # picks one per clip (`choose_profile`); the detector tries them all.
    profiles: tuple[tuple[tuple[float, ...], ...], ...] = (
        ((1.0, 1.0, 0.0), (0.0, 0.0, 0.0)),  # luma, two finest levels (scheme 1): small frames
        ((0.0, 0.0, 0.0), (0.7, 1.4, 2.0)),  # Cr, three levels weighted coarse: large frames
    )
    chroma_min_px: int = 160  # frames this large (short side) take the second (chroma) profile
    grid_sizes: tuple[int, ...] = (16, 32, 64)  # chip grids (cells per side), by frame size
    min_chip_px: float = 16.0  # the largest grid whose chips are >= this many pixels (short side)
    levels: int = 3  # Haar levels of the chip grid that carry bits
    blur: float = 0.2  # smoothing of the chip pattern, in chips (std of a Gaussian)
    mac_bits: int = 24  # keyed check on the payload
    crops: tuple[float, ...] = (1.0, 0.8)  # centre-crop fractions the detector tries
    # Crops off centre (`wm_crops`) keeping at least this fraction of a side are searched when
    # nothing else finds the mark; 0: never.
    crop_search: float = 0.5
    # Rotations about the centre up to this many degrees either way (`_detect_rotation`) are
    # searched when no read of the clip as given finds the mark; 0: never.
    rotation_search: float = 10.0
    gain_range: tuple[float, float] = (0.7, 1.43)  # gains (contrast, brightness) searched
    gain_steps: int = 73
    # Clips of at least twice this many frames are marked in segments of this many (`wm_time`),
    # so that an excerpt holding one whole segment keeps a complete mark; 0: always one piece.
    segment_frames: int = 32
    max_attempts: int = 4  # decodes tried (a priori geometries, best lattice fits); Bonferroni-counted
    p_threshold: float = DEFAULT_P_THRESHOLD

    def __post_init__(self):
        if not 20.0 <= self.psnr <= 80.0 or self.min_psnr > self.psnr:
            raise WatermarkInputError(f"psnr must be in 20..80 dB and >= min_psnr, got "
                                      f"{self.psnr}/{self.min_psnr}")
        if not self.channels or len(set(self.channels)) != len(self.channels) \
                or any(c not in geo.CHANNELS for c in self.channels):
            raise WatermarkInputError(f"channels must be distinct names of {', '.join(geo.CHANNELS)}, "
                                      f"got {self.channels}")
        if not self.profiles or any(len(st) != len(self.channels) or max(max(r) for r in st) <= 0
                                    or any(len(r) != self.levels or min(r) < 0 for r in st)
                                    for st in self.profiles):
            raise WatermarkInputError("every profile must give each channel a row of `levels` non-negative "
                                      f"steps, some positive; got {self.profiles}")
        if not self.grid_sizes or any(g < 4 or g % 2 ** self.levels for g in self.grid_sizes):
            raise WatermarkInputError(f"grid sizes must be multiples of 2**levels, got {self.grid_sizes}")
        if not 1 <= self.levels <= 4:
            raise WatermarkInputError(f"levels must be 1..4, got {self.levels}")
        if not 8 <= self.mac_bits <= 64:
            raise WatermarkInputError(f"mac_bits must be 8..64, got {self.mac_bits}")
        if self.crop_search != 0 and not 0.3 <= self.crop_search <= 0.95:
            raise WatermarkInputError(f"crop_search must be 0 or in 0.3..0.95, got {self.crop_search}")
        if not 0 <= self.rotation_search <= 30:
            raise WatermarkInputError(f"rotation_search must be 0..30 degrees, got {self.rotation_search}")
        if not self.crops or any(not 0.3 <= c <= 1.0 for c in self.crops):
            raise WatermarkInputError(f"crops must be fractions in 0.3..1, got {self.crops}")
        lo, hi = self.gain_range
        if not (0 < lo <= 1 <= hi) or self.gain_steps < 3 or self.max_attempts < 1:
            raise WatermarkInputError("gain_range must bracket 1, gain_steps >= 3, max_attempts >= 1")
        if not 0 <= self.blur <= 2 or self.min_chip_px <= 0:
            raise WatermarkInputError("min_chip_px must be positive and blur in 0..2")
        if self.chroma_min_px < 0:
            raise WatermarkInputError(f"chroma_min_px must be >= 0, got {self.chroma_min_px}")
        if self.segment_frames != 0 and not 8 <= self.segment_frames <= 100_000:
            raise WatermarkInputError(f"segment_frames must be 0 or >= 8, got {self.segment_frames}")
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
# The keyed plan: which coefficient carries which code bit, with which dither and step


@dataclass(frozen=True)
class _Plan:
    g: int
    chan: np.ndarray  # colour channel index (into cfg.channels) of each coefficient
    level: np.ndarray  # Haar level index (0 = finest) of each coefficient
    step: np.ndarray  # lattice step in channel levels
    dither: np.ndarray  # in [0, 1) of a step
    codebit: np.ndarray  # index into the rate-compatible code-bit array
    n_code: int


def _is_v1(cfg: WatermarkConfig, profile: int) -> bool:
    """Whether a profile is scheme 1's mark: luma levels 1 and 2 at equal steps, nothing else."""
    v1 = (1.0, 1.0) + (0.0,) * (cfg.levels - 2)
    return cfg.levels >= 2 and "y" in cfg.channels and all(
        tuple(r) == v1 if c == "y" else not any(r) for c, r in zip(cfg.channels, cfg.profiles[profile]))


@lru_cache(maxsize=64)
def _plan(key: WatermarkKey, g: int, cfg: WatermarkConfig, n_info: int, code: ConvCode,
          profile: int = 0) -> _Plan:
    """Coefficients are laid out channel by channel, each in `wm_grid.haar` order; those of an
    unused (channel, level) have step 0 and take no code bit (codebit -1)."""
    n_code = code.n_code_bits(n_info)
    ent = int.from_bytes(hashlib.sha256(_PLAN_LABEL + b"\0" + key.seed).digest(), "big")
    rng = np.random.default_rng(np.random.SeedSequence(ent, spawn_key=(g, cfg.levels, n_code, profile)))
    counts = [3 * (g >> (l + 1)) ** 2 for l in range(cfg.levels)]
    level1 = np.concatenate([np.full(n, l) for l, n in enumerate(counts)])
    reach = geo.tile_reach(g, cfg.levels)
    nc, n1 = len(cfg.channels), level1.size
    chan = np.repeat(np.arange(nc), n1)
    level = np.tile(level1, nc)
    w = np.asarray(cfg.profiles[profile], np.float64)[chan, level]
    cost = np.array([geo.CHANNELS[c][2] for c in cfg.channels])[chan]
    target_mse = 255.0 ** 2 / 10 ** (cfg.psnr / 10) - 1 / 12  # rounding adds ~1/12
    # orthonormal Haar on the chip grid: pixel MSE = sum over coefficients of E[d^2] / g^2 (times
    # the channel's RGB cost), and a displacement uniform over a step has E[d^2] = step^2 / 12
    delta0 = math.sqrt(12 * g * g * target_mse / float(np.sum(w ** 2 * cost)))
    codebit = np.full(nc * n1, -1, np.int64)
    if _is_v1(cfg, profile):
        # Scheme 1's plan, exactly (its seeds, centre-out order and dithers on luma levels 1-2):
        # clips marked before the colour profiles existed are still found, and marked the same.
        ent1 = int.from_bytes(hashlib.sha256(b"plan\0" + key.seed).digest(), "big")
        rng1 = np.random.default_rng(np.random.SeedSequence(ent1, spawn_key=(g, 2, n_code)))
        n2, y0 = counts[0] + counts[1], cfg.channels.index("y") * n1
        rank = np.lexsort((rng1.random(n2), reach[:n2]))
        codebit[y0 + rank] = np.arange(n2) % n_code
        dither = np.zeros(nc * n1)
        dither[y0:y0 + n2] = rng1.random(n2)
        return _Plan(g=g, chan=chan, level=level, step=delta0 * w, dither=dither, codebit=codebit,
                     n_code=n_code)
    for ci in range(nc):
        # Each channel carries the rate-compatible code from its first bit, centre-out (a centre
        # crop keeps a prefix of the code, i.e. a punctured code rather than random holes),
        # coarse levels first among tiles of equal reach.
        tie = rng.random(n1)
        act = np.flatnonzero(w[ci * n1:(ci + 1) * n1] > 0)
        rank = act[np.lexsort((tie[act], -level1[act], reach[act]))]
        codebit[ci * n1 + rank] = np.arange(rank.size) % n_code
    return _Plan(g=g, chan=chan, level=level, step=delta0 * w, dither=rng.random(level.size),
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


def _coeffs(pl: list[np.ndarray], g: int, levels: int, box=(0.0, 1.0, 0.0, 1.0)):
    """Haar coefficients of every channel plane (plan layout) and their validity."""
    return _haar_of([geo.Integral(p).chips(g, box) for p in pl], levels)


def _haar_of(chips: list[tuple[np.ndarray, np.ndarray]], levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients, validity) in plan layout from each channel's (chip means, chip validity)."""
    return (np.concatenate([geo.haar(c, levels) for c, _ in chips]),
            np.concatenate([geo.haar_valid(ok, levels) for _, ok in chips]))


def _plan_coeffs(integs: list, plan: _Plan, cfg: WatermarkConfig, boxes: np.ndarray):
    """Coefficients and validity [B, n] in plan layout of chip grids laid over boxes [B, 4] of
    the channel planes' summed-area tables `integs`; the channels the plan leaves unmarked are
    not measured (zero, invalid), nor are coefficients that carry no code bit."""
    n1 = plan.codebit.size // len(cfg.channels)
    v = np.zeros((len(boxes), plan.codebit.size))
    valid = np.zeros((len(boxes), plan.codebit.size), bool)
    for ci, integ in enumerate(integs):
        if np.any(plan.codebit[ci * n1:(ci + 1) * n1] >= 0):
            c, ok = integ.chips_many(plan.g, boxes)
            v[:, ci * n1:(ci + 1) * n1] = geo.haar(c, cfg.levels)
            valid[:, ci * n1:(ci + 1) * n1] = geo.haar_valid(ok, cfg.levels)
    return v, valid & (plan.codebit >= 0)


def _pattern(dcs: list[np.ndarray], dvs: list[np.ndarray], h: int, w: int, blur: float) -> np.ndarray:
    """float32 [h, w, 3]: the RGB change that puts chip values `dcs` into their channels."""
    out = np.zeros((h, w, 3), np.float32)
    for dc, dv in zip(dcs, dvs):
        out += geo.synth(dc, h, w, blur)[..., None] * dv.astype(np.float32)
    return out


def choose_profile(mean: np.ndarray, cfg: WatermarkConfig) -> int:
    """Which profile marks a clip, from its mean frame [H, W, 3]: the first (luma) below
    `chroma_min_px` on the short side, else the second (Cr). Measured with
    `benchmarks/robustness/watermark.py`: on 256 px world clips and 640x272 / 720p footage the Cr
    mark survives CRF 50 far more often and CRF 23-40 as well; on the 176x144 carphone and on
    64 px clips it loses payloads at CRF 30 (4:2:0 halves its resolution); on 128 px clips the
    two came out even, so they keep the luma mark, which is scheme 1's mark exactly."""
    if len(cfg.profiles) == 1 or min(mean.shape[:2]) < cfg.chroma_min_px:
        return 0
    return 1


def embed(frames: np.ndarray, payload: bytes, key, config: WatermarkConfig | str | None = None) -> np.ndarray:
    """Mark uint8 RGB frames [T, H, W, 3] with `payload` (8 to 32 bytes) under `key`.

    Returns new frames of the same shape; the same inputs always give the same output. A clip of
    at least two `segment_frames` is marked segment by segment (`wm_time`), so excerpts keep it."""
    frames = _check_frames(frames)
    cfg = get_config(config)
    key = _as_key(key)
    bits = _payload_bits(payload)
    info = np.concatenate([bits, key.mac(bytes(payload), cfg.mac_bits)])
    code = DEFAULT_CODE.encode(info)
    _, h, w, _ = frames.shape
    g = cfg.grid_for(h, w)
    # one profile and plan for the whole clip, whatever its segments, so every excerpt reads alike
    plan = _plan(key, g, cfg, info.size, DEFAULT_CODE, choose_profile(geo.mean_frame(frames), cfg))
    out = np.empty_like(frames)
    disp = None
    for a, b in wm_time.segments(frames.shape[0], cfg.segment_frames):
        delta, disp = _segment_pattern(geo.mean_frame(frames[a:b]), plan, code, cfg, disp)
        delta = delta[None]  # [1, H, W, 3]
        step = max(1, (1 << 24) // max(1, h * w * 3))  # bounded int16 temporaries on large frames
        for i in range(a, b, step):
            chunk = frames[i:min(i + step, b)].astype(np.int16)
            chunk += delta
            np.clip(chunk, 0, 255, out=chunk)
            out[i:min(i + step, b)] = chunk
    return out


def _segment_pattern(mean: np.ndarray, plan: _Plan, code: np.ndarray, cfg: WatermarkConfig,
                     prev: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """int16 [H, W, 3]: the change that puts the chip coefficients of `mean` [H, W, 3] (the frames
    it will be added to, averaged) onto the lattice points of their code bits; and the
    coefficients' displacements. Given the previous segment's displacements `prev`, each
    coefficient keeps that segment's lattice point while it is within 0.75 of a step: where the
    picture does not move, consecutive segments then carry the same pattern (one static pattern
    for the codec) and the whole clip's mean stays on the lattice (whole-clip reads still work),
    instead of sensor noise flipping coefficients near a decision border from point to point."""
    h, w, _ = mean.shape
    g = plan.g
    n1 = plan.codebit.size // len(cfg.channels)
    used = [i for i in range(len(cfg.channels)) if np.any(plan.codebit[i * n1:(i + 1) * n1] >= 0)]
    names = [cfg.channels[i] for i in used]
    pvs = [geo.CHANNELS[c][0].astype(np.float32) for c in names]
    dvs = [geo.CHANNELS[c][1] for c in names]
    sel = np.concatenate([np.arange(i * n1, (i + 1) * n1) for i in used])
    v, _ = _coeffs(geo.planes(mean, names), g, cfg.levels)
    st, cb = plan.step[sel], plan.codebit[sel]
    act = cb >= 0
    st = np.where(act, st, 1.0)
    off = st * (plan.dither[sel] + 0.5 * code[np.maximum(cb, 0)])
    disp = np.where(act, st * np.round((v - off) / st) + off - v, 0.0)
    if prev is not None:
        keep = st * np.round((v + prev - off) / st) + off - v
        disp = np.where(act & (np.abs(keep) <= 0.75 * st), keep, disp)
    targets = [geo.ihaar(disp[k * n1:(k + 1) * n1], g, cfg.levels) for k in range(len(used))]
    dcs = [t.copy() for t in targets]
    for _ in range(3):  # pre-compensate smoothing and rounding so that chip means hit the target
        p = np.rint(_pattern(dcs, dvs, h, w, cfg.blur))
        for k, pv in enumerate(pvs):
            dcs[k] += targets[k] - geo.Integral(p @ pv).chips(g)[0]
    p = np.rint(_pattern(dcs, dvs, h, w, cfg.blur))
    mse = float(np.mean(p * p)) + 1e-12
    floor = 255.0 ** 2 / 10 ** (cfg.min_psnr / 10)
    if mse > floor:  # rare: distortion-compensated QIM with alpha < 1 keeps the PSNR promise
        p = np.rint(_pattern([d * (math.sqrt(floor / mse) * 0.98) for d in dcs], dvs, h, w, cfg.blur))
    return p.astype(np.int16), disp


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
    symmetric terms with log-MGFs logmgf(lambda * mags). Any lambda gives a valid bound; the
    best solves sum(mags * psi(lambda * mags)) = t, psi the log-MGF's slope (tanh, or I1/I0 for
    log I0: increasing, concave, psi(x) <= x), so Newton's method from lambda = t / sum(mags^2),
    left of the root, climbs to it monotonically (measured: the ternary search it replaced to
    within 1e-12 relative, 7-25x faster, a tenth of an unmarked clip's detection)."""
    if t <= 0 or mags.size == 0:
        return 0.0
    psi, dpsi = _SLOPES[logmgf]
    lam = t / float(np.sum(mags ** 2))
    for _ in range(50):
        x = lam * mags
        g = float(np.sum(mags * psi(x))) - t
        if g >= 0:
            break
        slope = float(np.sum(mags * mags * dpsi(x)))
        # a flat slope with t still above: t is past what S can reach, the bound falls with lambda
        nxt = min(lam - g / slope, 1e6) if slope > 0 else 1e6
        if nxt <= lam * (1 + 1e-9):
            break
        lam = nxt
    return min(0.0, float(np.sum(logmgf(lam * mags))) - lam * t)


def _log_cosh(x):
    x = np.abs(x)
    return x + np.log1p(np.exp(-2 * x)) - math.log(2)


def _log_i0(x):
    x = np.abs(x)
    return np.log(i0e(x)) + x


def _i1_over_i0(x):
    return i1e(x) / i0e(x)


def _i1_over_i0_slope(x):
    a = _i1_over_i0(x)
    return np.where(x > 1e-6, 1 - a / np.maximum(x, 1e-6) - a * a, 0.5)


# each log-MGF's slope and the slope's derivative, for `_chernoff_log`
_SLOPES = {_log_cosh: (np.tanh, lambda x: 1 - np.tanh(x) ** 2), _log_i0: (_i1_over_i0, _i1_over_i0_slope)}


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
    prof: int = 0
    prior: bool = False


def _fit(v, st, di, gains):
    """Lattice fit (sign-blind: a half step apart both bits fit) at each gain."""
    e = (v / st)[None, :] / gains[:, None] - di
    return np.cos((4 * np.pi) * e.astype(np.float32)).sum(axis=1, dtype=np.float64)


def _search(pl: list[np.ndarray], cfg: WatermarkConfig, key: WatermarkKey, n_info: int,
            crops: tuple[float, ...] | None = None):
    """Every (profile, grid, crop box) hypothesis with its best gain (and its best gain near 1);
    the centre crops are `cfg.crops` unless `crops` is given. Returns the candidates and the
    number of (hypothesis, gain) points looked at."""
    h, w = pl[0].shape
    integs = [geo.Integral(p) for p in pl]
    lo, hi = math.log(cfg.gain_range[0]), math.log(cfg.gain_range[1])
    coarse = np.exp(np.linspace(lo, hi, cfg.gain_steps))
    step = (hi - lo) / max(cfg.gain_steps - 1, 1)
    near = np.exp(np.linspace(-0.03, 0.03, 13))
    native = cfg.grid_for(h, w)
    cands, n_search = [], 0
    for g, prof in ((g, p) for p in range(len(cfg.profiles)) for g in cfg.grid_sizes):
        plan = _plan(key, g, cfg, n_info, DEFAULT_CODE, prof)
        for crop in cfg.crops if crops is None else crops:
            if min(h, w) / crop / g < 2.0:
                continue
            boxes = [(0.0, 1.0, 0.0, 1.0)] if crop >= 1.0 else geo.crop_boxes(h, w, crop)
            # many candidate crop boxes: rank them on every 4th gain, refine the best two
            grid = coarse if len(boxes) == 1 else coarse[::4]
            gstep = step * (coarse.size - 1) / max(grid.size - 1, 1)
            per_box = []
            for box in boxes:
                v, valid = (a[0] for a in _plan_coeffs(integs, plan, cfg, np.asarray([box])))
                if valid.sum() < 24:
                    continue
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
                    cands.append(_Cand(z, float(fit[i]), g, box, crop, float(gs[i]), v, valid, plan, prof,
                                       prior=(k == 1 and g == native and crop >= 1.0)))
    return cands, n_search


def _decode(c: _Cand, cfg: WatermarkConfig, key: WatermarkKey, payload_bits: int) -> dict:
    return {**_evidence(_llr(c, cfg), c.plan, key, cfg, payload_bits), "cand": c}


def _llr(c: _Cand, cfg: WatermarkConfig) -> np.ndarray:
    """Per-coefficient log-likelihood ratios of the code bits (positive = 0) at geometry `c`."""
    plan, valid = c.plan, c.valid
    e = c.v / c.gain / np.where(valid, plan.step, 1.0) - plan.dither
    cos2 = np.where(valid, np.cos(4 * np.pi * e), 0.0)
    s = np.where(valid, np.cos(2 * np.pi * e), 0.0)
    # Reliability of each (channel, level) from its lattice fit alone (sign-blind, so the null
    # stays exact): for a Gaussian error, E cos(4 pi e) = m and E cos(2 pi e) = m ** (1/4).
    group = plan.chan * cfg.levels + plan.level
    kappa = np.zeros(len(cfg.channels) * cfg.levels)
    for gi in range(kappa.size):
        sel = valid & (group == gi)
        if sel.any():
            m = max(float(cos2[sel].mean()) - 2.0 / math.sqrt(2.0 * sel.sum()), 1e-3)
            mu = m ** 0.25
            kappa[gi] = 2 * mu / max((1 + m) / 2 - mu * mu, 0.05)
    return kappa[group] * s


def _evidence(llr_dim: np.ndarray, plan: _Plan, key: WatermarkKey, cfg: WatermarkConfig,
              payload_bits: int) -> dict:
    """Decode per-coefficient LLRs (positive = code bit 0); check the MAC; bound the evidence."""
    n_info = payload_bits + cfg.mac_bits
    act = plan.codebit >= 0
    llr_dim, codebit = llr_dim[act], plan.codebit[act]
    llr = np.bincount(codebit, weights=llr_dim, minlength=plan.n_code)
    hard, out_llr = DEFAULT_CODE.decode(llr, n_info)
    payload = np.packbits(hard[:payload_bits]).tobytes()
    ok = bool(np.array_equal(hard[payload_bits:], key.mac(payload, cfg.mac_bits)))
    sgn = 1.0 - 2.0 * DEFAULT_CODE.encode(hard)[codebit]
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
    # Every read (a view of the whole clip, or of a window of it: `wm_time`) is a separate test:
    # each one's p-value is multiplied by the number of reads that could be made (union bound),
    # so the false-detection rate stays under the threshold whichever read reports.
    t = frames.shape[0]
    mean = geo.mean_frame(frames)
    views = geo.views(frames, mean)
    wins = wm_time.windows(t, cfg.segment_frames)
    # each (window, view) the scan could pick gives three reads: the window alone, and the
    # segments in step with it decoded together at two geometries
    n_reads = (len(views) + len(geo.TURNS) + (2 if cfg.rotation_search else 0) + 3 * 2 * len(wins)
               + (2 if cfg.crop_search else 0))
    best = None

    def scaled(d: Detection, view: str, span) -> Detection:
        d.p_value, d.p_payload, d.p_presence = (min(1.0, n_reads * x) for x in (d.p_value, d.p_payload,
                                                                                d.p_presence))
        d.detected = d.p_value < cfg.p_threshold
        d.geometry["view"] = view
        if span is not None:  # (a combined read states its own frames)
            d.geometry["frames"] = span
        return d

    for name, view in views:
        d = scaled(_detect_mean(view, cfg, key, payload_bits)[0], name, (0, t))
        if d.payload is not None:
            return d
        best = d if best is None or d.p_value < best.p_value else best
    # A clip turned by a quarter or a half, or flipped upside down: one read for each turn, of
    # the whole frame only (a turn and a crop together are not searched; each read then costs
    # about half of a view's)
    for name, view in geo.turned(mean):
        d = scaled(_detect_mean(view, cfg, key, payload_bits, crops=(1.0,))[0], name, (0, t))
        if d.payload is not None:
            return d
        best = d if d.p_value < best.p_value else best
    # A clip rotated by a few degrees about its centre, as given or mirrored
    for name, view in (views[:2] if cfg.rotation_search else []):
        d = scaled(_detect_rotation(view, cfg, key, payload_bits), name, (0, t))
        if d.payload is not None:
            return d
        best = d if d.detected and not best.detected else best
    # An excerpt's segment borders fall anywhere: a cheap scan ranks the windows' offsets, the
    # best ones are read in full, then with every segment in step with them.
    h, w = frames.shape[1:3]
    prof = choose_profile(frames[0], cfg)
    prior = _plan(key, cfg.grid_for(h, w), cfg, payload_bits + cfg.mac_bits, DEFAULT_CODE, prof)
    for n, off, name in _scan_offsets(frames, wins, cfg, key, payload_bits + cfg.mac_bits):
        mean = geo.mean_frame(frames[off:off + n])
        d, cand = _detect_mean(np.ascontiguousarray(mean if name == "as-is" else mean[:, ::-1]), cfg, key,
                               payload_bits)
        found = [scaled(d, name, (off, off + n))]
        # the a-priori geometry (the clip's grid and profile, no crop, gain 1: what a re-encoding
        # leaves), then the window's own best fit
        segs = None  # summed-area tables of every segment's mean, made once for both geometries
        for geom in [(prior, (0.0, 1.0, 0.0, 1.0), 1.0)] + ([(cand.plan, cand.box, cand.gain)] if cand else []):
            if found[-1].payload is None:
                segs = segs or _segment_tables(frames, name, off, n, cfg)
                found.append(scaled(_decode_segments(segs, *geom, cfg, key, payload_bits), name, None))
        for d in found:
            if d.payload is not None:
                return d
            best = d if d.p_value < best.p_value else best
    # last, as it is the dearest: a crop off centre of the whole clip, as given or mirrored
    for name, view in (views[:2] if cfg.crop_search else []):
        d = _detect_crop(view, cfg, key, payload_bits)
        if d is None:
            continue
        d = scaled(d, name, (0, t))
        if d.payload is not None:
            return d
        # a failed crop read decoded a box of its own choosing: its bits replace the whole
        # clip's only when it found a mark the other reads did not
        best = d if d.detected and not best.detected else best
    return best


def _detect_crop(mean: np.ndarray, cfg: WatermarkConfig, key: WatermarkKey, payload_bits: int,
                 keep: int = 3) -> Detection | None:
    """`detect` on a crop off centre of the mean frame float32 [H, W, 3]: `wm_crops` ranks
    every (original size, integer origin) by the lattice fit; the best `keep` are refined on
    exact boxes (sub-pixel origin and size, gain near 1) and decoded. One read: its attempts are
    counted in p_payload, every box looked at in p_presence (as `_search` counts its gain
    refinement: the boxes scored, though which ones depends on the scan's winners; the payload
    bound, which decides a detection with a payload, needs only the number of decodes)."""
    n_info = payload_bits + cfg.mac_bits
    mean, px = _shrunk(mean)
    h, w = mean.shape[:2]
    planes = geo.planes(mean, cfg.channels)
    integs = [geo.Integral(p) for p in planes]
    by_profile = {prof: planes[wm_crops.marked_channel(cfg, prof)] for prof in range(len(cfg.profiles))}
    hyps, n_points = wm_crops.search(by_profile, cfg, lambda g, p: _plan(key, g, cfg, n_info, DEFAULT_CODE, p),
                                     min_crop=cfg.crop_search, keep=keep, px=px)
    if not hyps:
        return None
    near = np.exp(np.linspace(-0.03, 0.03, 13))

    def box_of(xs: np.ndarray) -> np.ndarray:  # [B, 4] (top, left, height, width) -> (y0, y1, x0, x1)
        t, lf, hh, ww = xs.T
        return np.stack([-t / hh, (h - t) / hh, -lf / ww, (w - lf) / ww], axis=1)

    def score(plan, xs: np.ndarray, gains: np.ndarray = near):
        """Lattice fit z [B] of boxes xs [B, 4] at the best of `gains`, and (fit, gain,
        coefficients, validity) of the best box."""
        v, valid = _plan_coeffs(integs, plan, cfg, box_of(xs))
        act = plan.codebit >= 0  # only the coefficients that carry code bits can fit
        e = ((v[:, act] / plan.step[act])[:, None, :] / gains[None, :, None]
             - plan.dither[act]).astype(np.float32)                                  # [B, gains, n]
        fit = (np.cos((4 * np.pi) * e) * valid[:, None, act]).sum(axis=2, dtype=np.float64)
        j = np.argmax(fit, axis=1)
        best_fit = fit[np.arange(len(xs)), j]
        n = valid.sum(axis=1)
        z = np.where(n >= 24, best_fit / np.sqrt(np.maximum(n, 1) / 2), -np.inf)
        b = int(np.argmax(z))
        return z, (float(best_fit[b]), float(gains[j[b]]), v[b], valid[b])

    cands = []
    for hyp in hyps:
        plan = _plan(key, hyp.g, cfg, n_info, DEFAULT_CODE, hyp.profile)
        y0, y1, x0, x1 = hyp.box
        hc, wc = h / (y1 - y0), w / (x1 - x0)
        x = np.array([-y0 * hc, -x0 * wc, hc, wc])  # the original's top, left, height, width here
        both = y1 - y0 < 1 and x1 - x0 < 1  # both sides cut by one fraction
        x, z, info, n = _refine_box(lambda xs, gains=near: score(plan, xs, gains), x, both, h, w, near)
        n_points += n * near.size
        if np.isfinite(z):
            fit, gain, v, valid = info
            cands.append(_Cand(z, fit, plan.g, tuple(box_of(x[None])[0]), h / x[2], gain, v, valid, plan,
                               hyp.profile))
    if not cands:
        return None
    cands.sort(key=lambda c: -c.z)
    p_presence = min(1.0, n_points * math.exp(_chernoff_log(_log_i0, np.ones(int(cands[0].valid.sum())),
                                                             cands[0].fit)))
    results = []
    for c in cands:
        results.append(_decode(c, cfg, key, payload_bits))
        if results[-1]["ok"]:
            break
    r = results[-1] if results[-1]["ok"] else results[0]
    p_payload = min(1.0, len(cands) * min(2.0 ** -cfg.mac_bits, math.exp(min(r["log_corr"], 0.0)))) \
        if r["ok"] else 1.0
    p = min(1.0, 2 * min(p_payload, p_presence))
    c = r["cand"]
    geometry = {"grid": c.g, "profile": c.prof, "crop": "off-centre", "box": tuple(round(x, 4) for x in c.box),
                "gain": round(c.gain, 4), "presence_z": round(cands[0].z, 2), "attempts": len(results),
                "boxes_searched": n_points}
    return Detection(detected=p < cfg.p_threshold, payload=r["payload"] if r["ok"] else None, p_value=p,
                     bit_confidence=float(np.mean(np.abs(r["soft"]))), bits=r["soft"], p_payload=p_payload,
                     p_presence=p_presence, geometry=geometry)


def _shrunk(mean: np.ndarray, short: int = 320) -> tuple[np.ndarray, float]:
    """A large frame shrunk by a whole factor to about `short` px on its short side, and the
    video pixels per pixel of it. The mark is read in frame-relative coordinates, so the
    searches for crops and rotations run on it: the same hypotheses for a fraction of the cost
    (720p: 5x less)."""
    k = min(mean.shape[:2]) // short
    if k < 2:
        return mean, 1.0
    size = (round(mean.shape[1] / k), round(mean.shape[0] / k))
    return cv2.resize(mean, size, interpolation=cv2.INTER_AREA), mean.shape[0] / size[1]


def _detect_rotation(mean: np.ndarray, cfg: WatermarkConfig, key: WatermarkKey, payload_bits: int) -> Detection:
    """`detect` on the mean frame float32 [H, W, 3] turned back by a small angle: a clip rotated
    about its centre and kept at its size (an editor's straightening, a tilted re-shoot of a
    screen). The whole frame's lattice fit shows only within about a quarter of a chip at the
    frame's edge (measured on a 64 px world clip rotated 5 degrees: z 14 at the angle, 7 half a
    degree off, 5 at one degree), so angles 16/G degrees apart (G the frame's own grid) are
    tried up to `cfg.rotation_search` either way on the frame shrunk to about 320 px (the grid is
    frame-relative), the best one again a quarter and half a step either side, and the winner is
    read at full size. One read: every (angle, hypothesis, gain) point tried counts in the
    presence bound, its decodes in the payload bound."""
    n_info = payload_bits + cfg.mac_bits
    h, w = mean.shape[:2]
    small, _ = _shrunk(mean)
    step = 16.0 / cfg.grid_for(h, w)
    n_points = 0

    def search(frame: np.ndarray, deg: float) -> list[_Cand]:
        nonlocal n_points
        cands, n = _search(geo.planes(geo.unrotate(frame, deg), cfg.channels), cfg, key, n_info, crops=(1.0,))
        n_points += n
        return cands

    screened: dict[float, list[_Cand]] = {}

    def z(deg: float) -> float:
        screened[deg] = search(small, deg)
        return max((c.z for c in screened[deg]), default=-math.inf)

    k = max(1, int(cfg.rotation_search / step + 1e-9))
    angles = [s * step * i for i in range(1, k + 1) for s in (1, -1)]
    zs = [z(a) for a in angles]
    a0 = angles[int(np.argmax(zs))]
    near = [a0 + f * step for f in (-0.5, -0.25, 0.25, 0.5)]
    angles, zs = angles + near, zs + [z(a) for a in near]
    deg = angles[int(np.argmax(zs))]
    cands = screened[deg] if small is mean else search(mean, deg)  # an unshrunk frame: already read
    d, _ = _read(cands, n_points, choose_profile(mean, cfg), cfg, key, payload_bits)
    d.geometry["rotation"] = round(deg, 2)
    return d


def _refine_box(score, x: np.ndarray, both: bool, h: int, w: int, near: np.ndarray):
    """The best box near x = [top, left, height, width] (the original frame's, in pixels of the
    crop) by `score(xs [B, 4], gains) -> (z [B], info of the best)` with gains from `near`;
    returns (x, z, info, boxes scored).
    A crop at whole pixels, not resized after, has a whole-pixel origin and size, and on sharp
    content only that exact box fits (measured on a 128 px world clip: z 16 at it, 3-4 half a
    pixel off), so every such box near x is tried; then ascent, coarse to fine, for a crop
    resized after (best of the 16 one-coordinate moves, twice at each scale)."""
    t0, l0, h0, w0 = (int(round(v)) for v in x)
    boxes = [x]
    for hh in range(max(h, h0 - 3), h0 + 4):
        widths = [int(round(hh * w / h)) + e for e in (-1, 0, 1)] if both else range(w0 - 3, w0 + 4)
        for ww in (ww for ww in widths if ww >= w):
            boxes += [np.array([top, left, hh, ww], np.float64)
                      for top in range(max(h - hh, t0 - 2), min(0, t0 + 2) + 1)      # the crop lies inside
                      for left in range(max(w - ww, l0 - 2), min(0, l0 + 2) + 1)]
    zs, info = score(np.stack(boxes), near[::3])  # every third gain: many boxes, a cropped copy keeps its gain
    i = int(np.argmax(zs))
    x, z, n = boxes[i], float(zs[i]), len(boxes)
    moves = np.array([[d if k == i else 0.0 for k in range(4)] for i in range(4) for d in (-2, -1, 1, 2)])
    for scale in (1.0, 0.5, 0.25, 0.25):
        for _ in range(2):
            # positions move by pixels, sizes by half a percent
            ys = x + scale * moves * np.array([1.0, 1.0, 0.005 * x[2], 0.005 * x[3]])
            zy, iy = score(ys)
            n += len(ys)
            j = int(np.argmax(zy))
            if zy[j] > z:
                x, z, info = ys[j], float(zy[j]), iy
    return x, z, info, n


def _scan_offsets(frames: np.ndarray, wins: list, cfg: WatermarkConfig, key: WatermarkKey, n_info: int,
                  keep: int = 2, max_segments: int = 8) -> list[tuple[int, int, str]]:
    """(length, offset, view) of the window offsets to read: the first frame's (an untrimmed
    clip), then for each window length in `wins` the best `keep` by the narrow score and the
    best `keep // 2` by the broad one. An offset's score is the sign-blind lattice fit summed
    over the windows in step with it (up to `max_segments` of them), as given or mirrored, no
    crop: the segments of a long clip all sit on the lattice, so their sum stands out from
    noise long before a single window does. The narrow score fits the a-priori geometry only
    (the clip's own grid and profile, gain within 3% of 1: what trimming and re-encoding
    leave), which few wrong offsets can match by chance; the broad one every profile and grid
    over a coarse gain grid (a resized or brightened excerpt)."""
    if not wins:
        return []
    t, h, w = frames.shape[:3]
    gains = np.exp(np.linspace(*np.log(cfg.gain_range), 13))
    near = np.exp(np.linspace(-0.03, 0.03, 7))
    geoms = [(g, prof) for prof in range(len(cfg.profiles)) for g in cfg.grid_sizes if min(h, w) / g >= 2.0]
    plans = [_plan(key, g, cfg, n_info, DEFAULT_CODE, prof) for g, prof in geoms]
    own = (cfg.grid_for(h, w), choose_profile(frames[0], cfg))
    small = wm_time.shrink(frames)
    picks = []
    for n in sorted({b - a for a, b in wins}, reverse=True):
        offsets = {a for a, b in wins if b - a == n}
        spans = [(a, a + n) for a in range(0, min(t - n, max_segments * n - 1) + 1) if a % n in offsets]
        acc: dict = {}  # (offset, view, plan index) -> [fits per gain, fits near gain 1, coefficients]
        for (a, _), mean in wm_time.window_means(small, spans):
            integs = [geo.Integral(p) for p in geo.planes(mean, cfg.channels)]
            chips = {p.g: [integ.chips(p.g) for integ in integs] for p in plans}
            for name in ("as-is", "mirrored"):  # a mirrored view's chips are the columns reversed
                coeffs = {}
                for pi, plan in enumerate(plans):
                    if plan.g not in coeffs:
                        cs = [(c, ok) if name == "as-is" else (c[:, ::-1], ok[:, ::-1]) for c, ok in chips[plan.g]]
                        coeffs[plan.g] = _haar_of(cs, cfg.levels)
                    v, valid = coeffs[plan.g]
                    valid = valid & (plan.codebit >= 0)
                    if valid.sum() >= 24:
                        e = acc.setdefault((a % n, name, pi), [0.0, 0.0, 0])
                        e[0] = e[0] + _fit(v[valid], plan.step[valid], plan.dither[valid], gains)
                        e[1] = e[1] + _fit(v[valid], plan.step[valid], plan.dither[valid], near)
                        e[2] += int(valid.sum())
        broad: dict = {}
        narrow: dict = {}
        for (off, name, pi), (fit, fit_near, m) in acc.items():
            broad[(off, name)] = max(broad.get((off, name), -math.inf), float(np.max(fit)) / math.sqrt(m / 2))
            if geoms[pi] == own:
                narrow[(off, name)] = float(np.max(fit_near)) / math.sqrt(m / 2)
        if not picks and (0, "as-is") in broad:  # first, segments in step with the first frame:
            picks.append((n, 0, "as-is"))         # the clip as it was marked, untrimmed
        for score, k in ((narrow, keep), (broad, max(1, keep // 2))):
            ranked = [(n, off, name) for (off, name), _ in sorted(score.items(), key=lambda kv: -kv[1])]
            picks += [r for r in ranked if r not in picks][:k]
    return picks


def _segment_tables(frames: np.ndarray, view: str, offset: int, n: int, cfg: WatermarkConfig) -> dict:
    """The windows of `n` frames starting at `offset`, `offset + n`, ... (the segments of a long
    marked clip, if the offset is right): their frame ranges and the summed-area tables of each
    one's mean, per channel, as given or mirrored."""
    starts = list(range(offset, frames.shape[0] - n + 1, n))
    tables = []
    for s0 in starts:
        mean = geo.mean_frame(frames[s0:s0 + n])
        mean = np.ascontiguousarray(mean if view == "as-is" else mean[:, ::-1])
        tables.append([geo.Integral(p) for p in geo.planes(mean, cfg.channels)])
    return {"frames": (starts[0], starts[-1] + n), "tables": tables}


def _decode_segments(segs: dict, plan: _Plan, box: tuple, gain: float, cfg: WatermarkConfig, key: WatermarkKey,
                     payload_bits: int) -> Detection:
    """Decode the sum of the code-bit LLRs of the segments `segs` (`_segment_tables`), each on
    the lattice by itself, at one geometry. The geometry was chosen a priori or by sign-blind
    fits, so the code-bit signs stay fair coins under the null and `_evidence`'s bound holds for
    the sum."""
    llr = np.zeros(plan.step.size)
    for integs in segs["tables"]:
        v, ok = _haar_of([integ.chips(plan.g, box) for integ in integs], cfg.levels)
        llr += _llr(_Cand(0.0, 0.0, plan.g, box, 1.0, gain, v, ok & (plan.codebit >= 0), plan), cfg)
    r = _evidence(llr, plan, key, cfg, payload_bits)
    p = min(1.0, 2 * min(2.0 ** -cfg.mac_bits, math.exp(min(r["log_corr"], 0.0)))) if r["ok"] else 1.0
    geometry = {"grid": plan.g, "box": tuple(round(x, 4) for x in box), "gain": round(gain, 4),
                "frames": segs["frames"], "segments": len(segs["tables"])}
    return Detection(detected=False, payload=r["payload"] if r["ok"] else None, p_value=p,
                     bit_confidence=float(np.mean(np.abs(r["soft"]))), bits=r["soft"], p_payload=p,
                     geometry=geometry)


def _detect_mean(mean: np.ndarray, cfg: WatermarkConfig, key: WatermarkKey,
                 payload_bits: int, crops: tuple[float, ...] | None = None) -> tuple[Detection, _Cand | None]:
    """`detect` on one view: the mean frame float32 [H, W, 3] of the clip as the embedder saw it
    (centre crops `crops`, default `cfg.crops`). Also returns the geometry of best lattice fit
    (None if nothing could be measured)."""
    cands, n_search = _search(geo.planes(mean, cfg.channels), cfg, key, payload_bits + cfg.mac_bits, crops)
    return _read(cands, n_search, choose_profile(mean, cfg), cfg, key, payload_bits)


def _read(cands: list[_Cand], n_search: int, guess: int, cfg: WatermarkConfig, key: WatermarkKey,
          payload_bits: int) -> tuple[Detection, _Cand | None]:
    """Decode a view's candidates (profile `guess` is the embedder's pick for its frame size);
    the presence bound counts `n_search` points."""
    if not cands:
        return Detection(False, None, 1.0, 0.0, np.zeros(payload_bits)), None
    cands.sort(key=lambda c: -c.z)
    best = cands[0]
    n_valid = int(best.valid.sum())
    p_presence = min(1.0, n_search * math.exp(_chernoff_log(_log_i0, np.ones(n_valid), best.fit)))
    # Decode the most plausible geometry a priori (native grid, no crop, gain near 1) of every
    # profile, the one the embedder would have picked for this clip first, then the best lattice
    # fits; every attempt is counted in the p-value.
    attempts = []
    for c in sorted((c for c in cands if c.prior), key=lambda c: c.prof != guess):  # stable: by z
        if not any(a.prof == c.prof for a in attempts):
            attempts.append(c)
    attempts = attempts[:cfg.max_attempts]
    for c in cands:
        if len(attempts) >= cfg.max_attempts:
            break
        if not any(c.plan is a.plan and c.box == a.box and abs(c.gain / a.gain - 1) < 0.005
                   for a in attempts):
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
    geometry = {"grid": c.g, "profile": c.prof, "crop": c.crop, "box": tuple(round(x, 4) for x in c.box),
                "gain": round(c.gain, 4), "presence_z": round(best.z, 2), "attempts": len(results)}
    return Detection(detected=p < cfg.p_threshold, payload=r["payload"] if r["ok"] else None,
                     p_value=p, bit_confidence=float(np.mean(np.abs(r["soft"]))), bits=r["soft"],
                     p_payload=p_payload, p_presence=p_presence, geometry=geometry), best
