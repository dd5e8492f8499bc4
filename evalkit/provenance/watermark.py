"""A keyed, weight-free, invisible video watermark with an error-correcting code and a p-value.

    key = make_key(b"my secret")                       # SHA-256 of the secret seeds everything
    marked = embed(frames, payload=b"8+bytes!", key=key)   # uint8 [T, H, W, 3] in and out
    d = detect(marked_then_attacked, key)              # Detection(detected, payload, p_value, ...)

This module embeds and runs the detector's reads in order; the parts live beside it:
`wm_scheme` (configuration, keys, the keyed plan), `wm_grid` (colour channels, chip grid, Haar,
views and turns), `wm_ecc` (the convolutional code), `wm_read` (one read of a frame: lattice
search, soft decode, p-values), `wm_pvalue` (the Chernoff bounds), `wm_search` (crops off centre,
rotations, excerpt offsets), `wm_bars` (cuts near measured bars), `wm_fill` (a picture over a
blurred fill), `wm_crops` (the crop scan) and `wm_time` (segments of long clips).

Scheme (why each choice)
------------------------
*One colour channel per clip, picked by a profile.* The mark is a change of one BT.601 channel
(`wm_grid.CHANNELS`): luma (since session 19 along the least-squares RGB direction, the smallest
RGB change with that luma: `wm_grid.LUMA_DIRECTIONS`) or Cr (a red-difference change that
leaves luma exactly unchanged). A profile (`WatermarkConfig.profiles`) says which channel
and which Haar levels carry bits, and with which relative lattice steps; `choose_profile` picks
one per clip by its size and the detector tries them all. Frames of at least `chroma_min_px`
(160) on the short side take the Cr profile: x264 quantises chroma more finely than luma at high
CRF, so there a Cr mark comes back after CRF 50 where a luma mark at the same PSNR does not
(measured over two benchmark runs, bit accuracy after CRF 50: 256 px world clips 0.77 against
0.54, 640x272 and 720p footage 0.89 against 0.61, payloads from 7 of 16 clips against none; CRF
23-40 unchanged). Smaller frames keep the luma profile, on scheme 1's plan: 4:2:0 halves
chroma's resolution, and on the 176x144 carphone and on 64 px clips a Cr mark loses payloads at CRF 30; on 128 px
clips the two came out even. Splitting the power between the two channels (measured: both with
all levels, or luma fine levels plus Cr coarse ones) lost payloads at CRF 30 on 64 px clips and
gained nothing clear at CRF 40-50: x264's dead zone rewards a concentrated mark. The PSNR of the
video is that of the channel change times its RGB cost (0.746 for luma, 0.83 for Cr).

*A luma companion beside the Cr mark (session 36).* A greyscale copy (ffmpeg's `format=gray` or
`hue=s=0`, PIL's `convert("L")`, OpenCV's RGB2GRAY: BT.601 luma in every channel) keeps no Cr,
so every such copy of a clip of 160 px or more lost its mark, and no read can bring it back:
the copy holds luma only, and the Cr lattice points need the original Cr, which is gone. So a
Cr clip also carries the code on the luma profile's plan at `grey_companion` (0.2) of its step,
4% of the PSNR budget taken from Cr (`wm_scheme.embed_plan`); each part reads alone as its own
profile's mark, the Cr part at gain 0.98, the companion at gain 0.2 (`prior_gains`; in a frame
without colour, `wm_read.colourless`, the colour profiles are skipped and the luma profile is
searched over a second gain range about 0.2, so a grey copy whose contrast changed is read too).
Why so weak: the companion costs the Cr mark after x264 CRF 40 about 2% of the bits that reach
the decoder at 4% of the budget, 9% at 6-10% and 12% at 15% (session 35, 12 clips), while 4%
already carries the payload through a lossless grey copy and, on footage and textured clips,
through a grey copy re-encoded at CRF 23. Flat 160-224 px renders lose the weak companion to
that re-encode (x264's dead zone); a copy made with other weights (BT.709, the RGB average, HSL
lightness) adds each pixel's own colour to the luma and is read only where the colour has little
detail. Reading both parts together lowered the bits after CRF 40-50 (the companion's LLRs are
mostly noise there), so they are decoded apart.
Measured against the Cr mark alone (session 36; the same clips, keys and payloads; clips of 160
px and more: 256 px world clips and 640x272, 640x360, 1280x720 and 192x192 footage): a greyscale
copy kept the payload in 35 of 35 clips against 0; a grey copy then H.264 CRF 23 in 18 of 19
against 0 (a dark 256 px render lost it), then CRF 30 in 9 of 19; colour turned down to 0.3 in
19 of 19 against 1. Every other row of the grid kept its payloads clip for clip (N = 35) but
H.264 CRF 40 and 50, where payloads near the code's cliff flip both ways: over 95 clips CRF 40
81 -> 80 (6 lost, 5 gained), CRF 50 22 -> 24 (4 lost, 6 gained); bit accuracy after CRF 40
0.976 -> 0.971 over 60 of them. HEVC CRF 28, VP9 CRF 40, hue +20 degrees, saturation x1.5,
JPEG 50, blur and a screen recording kept theirs (N = 19), AV1 CRF 40 16 -> 18, a white balance
change 15 -> 19. PSNR unchanged (mean 42.2 dB, min 42.02); clips under 160 px are marked as
before and read the same (N = 18, every row equal). False detections: none at p < 1e-6 and no
payload read over 1,120 unmarked reads (the benchmark's study, 420 of them greyscale copies of
160-256 px world clips, 192x192 crops of footage and clips marked with another key; min p
0.067), nor from a payload never embedded (1,120 known-payload tests).

*Luma along the least-squares direction.* Schemes 1-2 added a luma change to R, G and B alike
(cost 1). Spread in proportion to the BT.601 weights it costs 0.746, so at the same PSNR the
lattice step is 1.16x larger (1.27 dB). Measured on the grid (session 19): payloads after CRF
30 0.88 -> 1.00, after resize 0.75 then CRF 30 0.85 -> 0.96, bit accuracy after CRF 40 0.74 ->
0.78. A mark made flat before reads at gain sqrt(0.746) = 0.864 against the new steps, a gain
the detector also fits a priori (`wm_scheme.prior_gains`) and decodes right after gain 1 where
it fits better, so old marks are still found without the blind gain search (the crop search and
the excerpt scan excepted); `WatermarkConfig(luma="flat")` still makes them. Fitting both gains
as one candidate instead let noise pick the wrong one after heavy compression (CRF 40 bit
accuracy 0.762 against 0.777). On saturated content a change towards 0 or 255 is clipped away
in either direction; the least-squares one puts more of it in green (on a synthetic clip with
green and blue at 0: lattice fit z 7.6 against 8.8 flat, payloads after CRF 18 27 of 30 keys
either way; README).

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
with the bars cut off (and, as one more read, at the best of the cuts within 4 px of the
measured edges, which a codec's ringing moves: `wm_bars.read_bars`; and, where a picture sits
centred over a blurred copy of itself, the short-video reformat, one read of its box:
`wm_fill.read_fill`), and when a picture sits
inside a frame whose borders persist while the content moves (picture-in-picture, a split
screen: `wm_inset`), both again cut to each of up to two such boxes, stopping at the first
read whose payload verifies and whose p-value passes (a payload read weakly is kept while the
later reads look for a stronger one). Each view is a full search; its p-value is multiplied
by the number of views (union bound). Then the six other
ways to lay the picture on its axes (`wm_grid.TURNS`: a quarter turn either way, a half turn,
upside down, and the two transposes: what a transcoder applying a phone's rotation flag
leaves), each one read of the whole frame without the centre crops. Then rotations by a few
degrees about the centre, as given and mirrored (`read_rotation`, up to `rotation_search`
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
the README): at PSNR 42 the payload survives CRF 23 and CRF 30 on everything from 64x64 up
(64 px at CRF 30: 8 of 8 grid clips since the least-squares luma direction, 5 of 8 before);
CRF 40 on 256 px world clips and 640x272 / 720p footage but on few 64-128 px clips or 176x144 footage (bit accuracy 0.5-0.7 there); CRF 50 on
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

import math

import numpy as np

from evalkit.provenance import wm_grid as geo
from evalkit.provenance import wm_time
from evalkit.provenance.wm_ecc import DEFAULT_CODE
from evalkit.provenance.wm_read import Detection, a_priori_mark, decode_segments, read_mean, segment_tables
from evalkit.provenance.wm_scheme import (
    DEFAULT_P_THRESHOLD, PRESETS, Plan, WatermarkConfig, WatermarkInputError, WatermarkKey, as_key, check_frames,
    choose_profile, embed_plan, frame_coeffs, get_config, make_key, make_plan, payload_to_bits,
)
from evalkit.provenance.wm_bars import read_bars
from evalkit.provenance.wm_fill import fill_box, read_fill
from evalkit.provenance.wm_search import read_crop, read_rotation, scan_offsets

__all__ = [
    "DEFAULT_P_THRESHOLD", "PRESETS", "Detection", "WatermarkConfig", "WatermarkInputError",
    "WatermarkKey", "choose_profile", "detect", "embed", "get_config", "make_key",
]


def embed(frames: np.ndarray, payload: bytes, key, config: WatermarkConfig | str | None = None) -> np.ndarray:
    """Mark uint8 RGB frames [T, H, W, 3] with `payload` (8 to 32 bytes) under `key`.

    Returns new frames of the same shape; the same inputs always give the same output. A clip of
    at least two `segment_frames` is marked segment by segment (`wm_time`), so excerpts keep it."""
    frames = check_frames(frames)
    cfg = get_config(config)
    plan, code = marking_plan(geo.mean_frame(frames), payload, key, cfg)
    out = np.empty_like(frames)
    disp = None
    for a, b in wm_time.segments(frames.shape[0], cfg.segment_frames):
        delta, disp = segment_pattern(geo.mean_frame(frames[a:b]), plan, code, cfg, disp)
        add_pattern(frames[a:b], delta, out[a:b])
    return out


def marking_plan(mean: np.ndarray, payload: bytes, key, cfg: WatermarkConfig) -> tuple[Plan, np.ndarray]:
    """(plan, code bits) for a clip whose temporal mean is `mean` [H, W, 3]: one profile and plan
    for the whole clip, whatever its segments, so that every excerpt reads alike."""
    key = as_key(key)
    bits = payload_to_bits(payload)
    info = np.concatenate([bits, key.mac(bytes(payload), cfg.mac_bits)])
    h, w, _ = mean.shape
    plan = embed_plan(key, cfg.grid_for(h, w), cfg, info.size, DEFAULT_CODE, choose_profile(mean, cfg))
    return plan, DEFAULT_CODE.encode(info)


def add_pattern(frames: np.ndarray, delta: np.ndarray, out: np.ndarray) -> None:
    """out = clip(frames + delta) for uint8 frames [n, H, W, 3] and an int16 pattern [H, W, 3]."""
    h, w = frames.shape[1:3]
    step = max(1, (1 << 24) // max(1, h * w * 3))  # bounded int16 temporaries on large frames
    for i in range(0, frames.shape[0], step):
        chunk = frames[i:i + step].astype(np.int16)
        chunk += delta[None]
        np.clip(chunk, 0, 255, out=chunk)
        out[i:i + step] = chunk


def segment_pattern(mean: np.ndarray, plan: Plan, code: np.ndarray, cfg: WatermarkConfig,
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
    dvs = [geo.direction(c, cfg.luma)[0] for c in names]
    sel = np.concatenate([np.arange(i * n1, (i + 1) * n1) for i in used])
    v, _ = frame_coeffs(geo.planes(mean, names), g, cfg.levels)
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


def _pattern(dcs: list[np.ndarray], dvs: list[np.ndarray], h: int, w: int, blur: float) -> np.ndarray:
    """float32 [h, w, 3]: the RGB change that puts chip values `dcs` into their channels."""
    out = np.zeros((h, w, 3), np.float32)
    for dc, dv in zip(dcs, dvs):
        out += geo.synth(dc, h, w, blur)[..., None] * dv.astype(np.float32)
    return out


def detect(frames: np.ndarray, key, config: WatermarkConfig | str | None = None,
           payload_bits: int = 64) -> Detection:
    """Look for the mark of `key` in uint8 RGB frames [T, H, W, 3] (any size, any length)."""
    frames = check_frames(frames)
    cfg = get_config(config)
    key = as_key(key)
    if isinstance(payload_bits, bool) or not isinstance(payload_bits, (int, np.integer)) \
            or payload_bits % 8 or not 64 <= payload_bits <= 256:
        raise WatermarkInputError(f"payload_bits must be a multiple of 8 in 64..256, got {payload_bits!r}")
    payload_bits = int(payload_bits)
    # Every read (a view of the whole clip, or of a window of it: `wm_time`) is a separate test:
    # each one's p-value is multiplied by the number of reads that could be made (union bound),
    # so the false-detection rate stays under the threshold whichever read reports.
    t = frames.shape[0]
    mean = geo.mean_frame(frames)
    cut = geo.bars(frames, mean)
    views = geo.views(frames, mean, cut)
    wins = wm_time.windows(t, cfg.segment_frames)
    # each (window, view) the scan could pick gives three reads: the window alone, and the
    # segments in step with it decoded together at two geometries
    # the crop search reads the whole frame as given and mirrored, and the bars-removed views too:
    # bars measured a line or two off (codec ringing at an odd-width bar) leave the picture a
    # little cropped or a little padded, which only a search of the box finds (session 32)
    crop_views = [v for v in views if v[0] in ("as-is", "mirrored", "bars-removed", "bars-removed-mirrored")] \
        if cfg.crop_search else []
    # bars measured a few lines off by a codec's blur or ringing: one read of the cuts near them
    bar_search = any(cut)
    # a picture over a blurred copy of itself (the short-video reformat: `wm_fill`), one read
    fill = fill_box(frames, cut)
    n_reads = (len(views) + len(geo.TURNS) + (2 if cfg.rotation_search else 0) + 3 * 2 * len(wins)
               + len(crop_views) + int(bar_search) + int(fill is not None))
    best = None

    def scaled(d: Detection, view: str, span) -> Detection:
        d.p_value, d.p_payload, d.p_presence = (min(1.0, n_reads * x) for x in (d.p_value, d.p_payload,
                                                                                d.p_presence))
        d.detected = d.p_value < cfg.p_threshold
        d.geometry["view"] = view
        if span is not None:  # (a combined read states its own frames)
            d.geometry["frames"] = span
        return d

    def found(d: Detection) -> bool:
        return d.payload is not None and d.detected

    def stronger(d: Detection, best: Detection | None) -> Detection:
        """The read to report if no later one is `found`: detected first, then one that decoded a
        payload (a weak payload's bits are the best evidence of which mark it is), then the
        smallest p-value."""
        def rank(x: Detection) -> tuple:
            return not x.detected, x.payload is None, x.p_value
        return d if best is None or rank(d) < rank(best) else best

    # A read returns at once only when it both decodes a payload and beats the threshold: a
    # payload read weakly (its MAC verifies, but the p-value times n_reads does not pass) is kept
    # as the best so far while the later reads look for a stronger one (before session 38 it
    # ended `detect`, never trying the bar search, the turns or the windows).
    for name, view in views:
        d = scaled(read_mean(view, cfg, key, payload_bits)[0], name, (0, t))
        if found(d):
            return d
        best = stronger(d, best)
    # Bars whose edges a codec blurred or rang are measured a line or two off; a picture padded
    # by them is found by no other read (session 37: both carphone segments under letterbox then
    # CRF 23). Only clips with bars pay for it.
    d = read_bars(mean, cut, cfg, key, payload_bits) if bar_search else None
    if d is not None:
        d = scaled(d, d.geometry["view"], (0, t))
        if found(d):
            return d
        best = stronger(d, best)
    d = read_fill(mean, fill, cfg, key, payload_bits) if fill is not None else None
    if d is not None:
        d = scaled(d, d.geometry["view"], (0, t))
        if found(d):
            return d
        best = stronger(d, best)
    # A clip turned by a quarter or a half, or flipped upside down: one read for each turn, of
    # the whole frame only (a turn and a crop together are not searched; each read then costs
    # about half of a view's)
    for name, view in geo.turned(mean):
        d = scaled(read_mean(view, cfg, key, payload_bits, crops=(1.0,))[0], name, (0, t))
        if found(d):
            return d
        best = stronger(d, best)
    # A clip rotated by a few degrees about its centre, as given or mirrored
    for name, view in (views[:2] if cfg.rotation_search else []):
        d = scaled(read_rotation(view, cfg, key, payload_bits), name, (0, t))
        if found(d):
            return d
        best = stronger(d, best) if d.detected or d.payload is not None else best
    # An excerpt's segment borders fall anywhere: a cheap scan ranks the windows' offsets, the
    # best ones are read in full, then with every segment in step with them.
    h, w = frames.shape[1:3]
    prof, gain0 = a_priori_mark(np.ascontiguousarray(frames[0], np.float32), cfg)
    prior = make_plan(key, cfg.grid_for(h, w), cfg, payload_bits + cfg.mac_bits, DEFAULT_CODE, prof)
    for n, off, name in scan_offsets(frames, wins, cfg, key, payload_bits + cfg.mac_bits):
        mean = geo.mean_frame(frames[off:off + n])
        d, cand = read_mean(np.ascontiguousarray(mean if name == "as-is" else mean[:, ::-1]), cfg, key,
                               payload_bits)
        reads = [scaled(d, name, (off, off + n))]
        # the a-priori geometry (the clip's grid and profile, no crop, gain 1: what a re-encoding
        # leaves), then the window's own best fit
        segs = None  # summed-area tables of every segment's mean, made once for both geometries
        for geom in [(prior, (0.0, 1.0, 0.0, 1.0), gain0)] + ([(cand.plan, cand.box, cand.gain)] if cand else []):
            if not found(reads[-1]):
                segs = segs or segment_tables(frames, name, off, n, cfg)
                reads.append(scaled(decode_segments(segs, *geom, cfg, key, payload_bits), name, None))
        for d in reads:
            if found(d):
                return d
            best = stronger(d, best)
    # last, as it is the dearest: a crop off centre of the whole clip, as given or mirrored
    for name, view in crop_views:
        d = read_crop(view, cfg, key, payload_bits)
        if d is None:
            continue
        d = scaled(d, name, (0, t))
        if found(d):
            return d
        # a failed crop (or rotation, above) read decoded a box of its own choosing: its bits
        # replace the whole clip's only when it found a mark or a payload the other reads did not
        best = stronger(d, best) if d.detected or d.payload is not None else best
    return best
