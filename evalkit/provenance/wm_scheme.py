"""The watermark's scheme: its configuration (`WatermarkConfig`, `PRESETS`), the keys, and the
keyed plan that says which Haar coefficient of the chip grid carries which code bit, with which
lattice step and dither (`make_plan`); shared by the embedder (`watermark.embed`) and the
readers (`wm_read`, `wm_search`). Why the scheme is built this way: `watermark`'s docstring."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from evalkit.errors import BadInputError
from evalkit.provenance import wm_grid as geo
from evalkit.provenance.wm_ecc import ConvCode

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
    # The RGB direction of a luma mark (wm_grid.LUMA_DIRECTIONS): "least-squares" since session
    # 19, "flat" before. Either way the detector also looks for the other at its a-priori gain.
    luma: str = "least-squares"
    # Profiles: the lattice step of each (channel, Haar level), relative (0: unused). The embedder
    # picks one per clip (`choose_profile`); the detector tries them all.
    profiles: tuple[tuple[tuple[float, ...], ...], ...] = (
        ((1.0, 1.0, 0.0), (0.0, 0.0, 0.0)),  # luma, two finest levels (scheme 1): small frames
        ((0.0, 0.0, 0.0), (0.7, 1.4, 2.0)),  # Cr, three levels weighted coarse: large frames
    )
    chroma_min_px: int = 160  # frames this large (short side) take the second (chroma) profile
    # A clip marked in a profile without luma (Cr) also carries the code on the first (luma)
    # profile's plan at this fraction of its lattice step, so that a greyscale copy, which keeps
    # luma alone, keeps a mark (`companion_gain`); it takes this squared share of the PSNR budget
    # from the Cr mark. 0: none (every mark made before session 36).
    grey_companion: float = 0.2
    grid_sizes: tuple[int, ...] = (16, 32, 64)  # chip grids (cells per side), by frame size
    min_chip_px: float = 16.0  # the largest grid whose chips are >= this many pixels (short side)
    levels: int = 3  # Haar levels of the chip grid that carry bits
    blur: float = 0.2  # smoothing of the chip pattern, in chips (std of a Gaussian)
    mac_bits: int = 24  # keyed check on the payload
    crops: tuple[float, ...] = (1.0, 0.8)  # centre-crop fractions the detector tries
    # Crops off centre (`wm_crops`) keeping at least this fraction of a side are searched when
    # nothing else finds the mark; 0: never.
    crop_search: float = 0.5
    # With the crop search, the picture moved within its frame by up to this fraction of a side
    # (a re-framing or stabilising shift, the edge smeared or padded); 0: not searched.
    shift_search: float = 0.05
    # Rotations about the centre up to this many degrees either way (`read_rotation`) are
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
        if self.luma not in geo.LUMA_DIRECTIONS:
            raise WatermarkInputError(f"luma must be one of {', '.join(geo.LUMA_DIRECTIONS)}, got {self.luma!r}")
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
        if not 0 <= self.shift_search <= 0.2:
            raise WatermarkInputError(f"shift_search must be 0..0.2 of a side, got {self.shift_search}")
        if not 0 <= self.rotation_search <= 30:
            raise WatermarkInputError(f"rotation_search must be 0..30 degrees, got {self.rotation_search}")
        if not self.crops or any(not 0.3 <= c <= 1.0 for c in self.crops):
            raise WatermarkInputError(f"crops must be fractions in 0.3..1, got {self.crops}")
        lo, hi = self.gain_range
        if not (0 < lo <= 1 <= hi) or self.gain_steps < 3 or self.max_attempts < 1:
            raise WatermarkInputError("gain_range must bracket 1, gain_steps >= 3, max_attempts >= 1")
        if not 0 <= self.blur <= 2 or self.min_chip_px <= 0:
            raise WatermarkInputError("min_chip_px must be positive and blur in 0..2")
        if not 0 <= self.grey_companion <= 0.5:
            raise WatermarkInputError(f"grey_companion must be 0..0.5 of the luma step, got {self.grey_companion}")
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


def as_key(key) -> WatermarkKey:
    return key if isinstance(key, WatermarkKey) else make_key(key)


# ----------------------------------------------------------------------------------------------
# The keyed plan: which coefficient carries which code bit, with which dither and step


@dataclass(frozen=True)
class Plan:
    g: int
    chan: np.ndarray  # colour channel index (into cfg.channels) of each coefficient
    level: np.ndarray  # Haar level index (0 = finest) of each coefficient
    step: np.ndarray  # lattice step in channel levels
    dither: np.ndarray  # in [0, 1) of a step
    codebit: np.ndarray  # index into the rate-compatible code-bit array
    n_code: int


def _is_v1(cfg: WatermarkConfig, profile: int) -> bool:
    """Whether a profile is on scheme 1's plan: luma levels 1 and 2 at equal steps, nothing else."""
    v1 = (1.0, 1.0) + (0.0,) * (cfg.levels - 2)
    return cfg.levels >= 2 and "y" in cfg.channels and all(
        tuple(r) == v1 if c == "y" else not any(r) for c, r in zip(cfg.channels, cfg.profiles[profile]))


@lru_cache(maxsize=64)
def make_plan(key: WatermarkKey, g: int, cfg: WatermarkConfig, n_info: int, code: ConvCode,
          profile: int = 0) -> Plan:
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
    cost = np.array([geo.direction(c, cfg.luma)[1] for c in cfg.channels])[chan]
    target_mse = 255.0 ** 2 / 10 ** (cfg.psnr / 10) - 1 / 12  # rounding adds ~1/12
    # orthonormal Haar on the chip grid: pixel MSE = sum over coefficients of E[d^2] / g^2 (times
    # the channel's RGB cost), and a displacement uniform over a step has E[d^2] = step^2 / 12
    delta0 = math.sqrt(12 * g * g * target_mse / float(np.sum(w ** 2 * cost)))
    codebit = np.full(nc * n1, -1, np.int64)
    if _is_v1(cfg, profile):
        # Scheme 1's plan, exactly (its seeds, centre-out order and dithers on luma levels 1-2):
        # clips marked before the colour profiles existed are still found. (Its step is scheme
        # 1's with `luma="flat"`; the least-squares direction's is 1/sqrt(0.746) of it.)
        ent1 = int.from_bytes(hashlib.sha256(b"plan\0" + key.seed).digest(), "big")
        rng1 = np.random.default_rng(np.random.SeedSequence(ent1, spawn_key=(g, 2, n_code)))
        n2, y0 = counts[0] + counts[1], cfg.channels.index("y") * n1
        rank = np.lexsort((rng1.random(n2), reach[:n2]))
        codebit[y0 + rank] = np.arange(n2) % n_code
        dither = np.zeros(nc * n1)
        dither[y0:y0 + n2] = rng1.random(n2)
        return Plan(g=g, chan=chan, level=level, step=delta0 * w, dither=dither, codebit=codebit,
                     n_code=n_code)
    for ci in range(nc):
        # Each channel carries the rate-compatible code from its first bit, centre-out (a centre
        # crop keeps a prefix of the code, i.e. a punctured code rather than random holes),
        # coarse levels first among tiles of equal reach.
        tie = rng.random(n1)
        act = np.flatnonzero(w[ci * n1:(ci + 1) * n1] > 0)
        rank = act[np.lexsort((tie[act], -level1[act], reach[act]))]
        codebit[ci * n1 + rank] = np.arange(rank.size) % n_code
    return Plan(g=g, chan=chan, level=level, step=delta0 * w, dither=rng.random(level.size),
                 codebit=codebit, n_code=n_code)


def marks_luma(cfg: WatermarkConfig, profile: int) -> bool:
    return "y" in cfg.channels and any(cfg.profiles[profile][cfg.channels.index("y")])


def companion_gain(cfg: WatermarkConfig, profile: int) -> float | None:
    """The gain at which the luma companion of a Cr mark (`WatermarkConfig.grey_companion`,
    `embed_plan`) reads against `profile`'s plan: the companion's relative step on the first
    (luma) profile, None on any other profile or when no profile leaves luma for it."""
    if profile != 0 or not cfg.grey_companion or not marks_luma(cfg, 0) \
            or all(marks_luma(cfg, p) for p in range(len(cfg.profiles))):
        return None
    return cfg.grey_companion


def prior_gains(cfg: WatermarkConfig, profile: int) -> tuple[float, ...]:
    """The gains at which an unattacked mark of `profile` reads against its plan's steps: 1,
    and, for a profile that marks luma, the gain of a mark made along the other luma direction
    (its step scales as 1/sqrt(cost)): a clip marked "flat" before session 19 reads at
    sqrt(0.746) = 0.864 against the least-squares plan; last, for the luma profile, the gain of
    a Cr mark's luma companion (`companion_gain`). The detector fits them all a priori, so none
    of these kinds needs the blind gain search."""
    out = [1.0]
    if marks_luma(cfg, profile):
        own = geo.direction("y", cfg.luma)[1]
        out += [math.sqrt(own / geo.direction("y", d)[1]) for d in geo.LUMA_DIRECTIONS if d != cfg.luma]
    comp = companion_gain(cfg, profile)
    return tuple(out + ([comp] if comp else []))


def embed_plan(key: WatermarkKey, g: int, cfg: WatermarkConfig, n_info: int, code: ConvCode, profile: int) -> Plan:
    """The plan the embedder marks a clip of `profile` with: `make_plan`'s, and for a profile
    that leaves luma unmarked (Cr, on clips of `chroma_min_px` and more) the luma profile's
    plan added at `grey_companion` of its step, the Cr steps shrunk so that the PSNR stays (each
    plan alone spends the whole budget; the companion takes its step's square of it). Each part
    is its own profile's plan, so each reads alone: the Cr part as a Cr mark at gain
    sqrt(1 - c^2) (0.98), the luma part as a mark of the luma profile at gain c (`prior_gains`).
    Why a luma part, and why so weak (measured): `watermark`'s docstring."""
    plan = make_plan(key, g, cfg, n_info, code, profile)
    c = cfg.grey_companion
    if not c or marks_luma(cfg, profile) or companion_gain(cfg, 0) is None:
        return plan
    luma = make_plan(key, g, cfg, n_info, code, 0)
    y = plan.chan == cfg.channels.index("y")
    return Plan(g=g, chan=plan.chan, level=plan.level,
                step=np.where(y, luma.step * c, plan.step * math.sqrt(1 - c * c)),
                dither=np.where(y, luma.dither, plan.dither), codebit=np.where(y, luma.codebit, plan.codebit),
                n_code=plan.n_code)


# ----------------------------------------------------------------------------------------------
# Frames, payloads and the plan's coefficients


def check_frames(frames) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 \
            or frames.shape[-1] != 3 or frames.shape[0] < 1:
        shape = getattr(frames, "shape", None)
        raise WatermarkInputError(f"frames must be a uint8 array [T, H, W, 3] with T >= 1, got "
                                  f"{getattr(frames, 'dtype', type(frames).__name__)} {shape}")
    if min(frames.shape[1:3]) < 32:
        raise WatermarkInputError(f"frames are {frames.shape[2]}x{frames.shape[1]}; the watermark needs "
                                  "at least 32x32 pixels")
    return frames


def payload_to_bits(payload) -> np.ndarray:
    if not isinstance(payload, (bytes, bytearray)):
        raise WatermarkInputError(f"payload must be bytes, got {type(payload).__name__}")
    if not 8 <= len(payload) <= 32:
        raise WatermarkInputError(f"payload must be 8 to 32 bytes (64 to 256 bits), got {len(payload)} bytes")
    return np.unpackbits(np.frombuffer(bytes(payload), np.uint8))


def frame_coeffs(pl: list[np.ndarray], g: int, levels: int, box=(0.0, 1.0, 0.0, 1.0)):
    """Haar coefficients of every channel plane (plan layout) and their validity."""
    return haar_of([geo.Integral(p).chips(g, box) for p in pl], levels)


def haar_of(chips: list[tuple[np.ndarray, np.ndarray]], levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients, validity) in plan layout from each channel's (chip means, chip validity)."""
    return (np.concatenate([geo.haar(c, levels) for c, _ in chips]),
            np.concatenate([geo.haar_valid(ok, levels) for _, ok in chips]))


def plan_coeffs(integs: list, plan: Plan, cfg: WatermarkConfig, boxes: np.ndarray):
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


def choose_profile(mean: np.ndarray, cfg: WatermarkConfig) -> int:
    """Which profile marks a clip, from its mean frame [H, W, 3]: the first (luma) below
    `chroma_min_px` on the short side, else the second (Cr). Measured with
    `benchmarks/robustness/watermark.py`: on 256 px world clips and 640x272 / 720p footage the Cr
    mark survives CRF 50 far more often and CRF 23-40 as well; on the 176x144 carphone and on
    64 px clips it loses payloads at CRF 30 (4:2:0 halves its resolution); on 128 px clips the
    two came out even, so they keep the luma mark, on scheme 1's plan."""
    return profile_for_size(*mean.shape[:2], cfg)


def profile_for_size(h: int, w: int, cfg: WatermarkConfig) -> int:
    """`choose_profile` for a picture of h x w pixels (the choice is the size's alone)."""
    return 0 if len(cfg.profiles) == 1 or min(h, w) < cfg.chroma_min_px else 1
