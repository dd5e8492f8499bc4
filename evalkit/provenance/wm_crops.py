"""Search for crops off centre (`evalkit.provenance.watermark`): where in the marked frame a
cropped clip came from.

The mark's lattice fit only shows at the crop's box to within about a quarter of a chip, so a
crop from a corner or an edge cannot be found by trying a few boxes. Instead, for each size the
original frame may have had (in received pixels; three families: both sides cropped by the same
fraction, only the width, only the height, down to `min_crop`), every Haar detail coefficient
of the chip grid is measured at every integer pixel position its tile can take (box means from
a summed-area table), turned into its lattice phase exp(4 pi i v / step), and the fit of every
integer origin of the grid is the sum of those phases against the key's dithers (one gather and
one contraction: the tiles of a level form a regular lattice). The frame is first shrunk by a
whole factor so the finest block scanned is about 6 pixels (4 on the fine grids of large
frames), which keeps tile positions within a twelfth of a block and the search cheap (measured,
one thread, per view: the scan 0.1-0.4 s for 64-256 px frames and 640x272 footage, about 2 s
for 720p, which the caller searches shrunk to 360 px).

Sizes are stepped so that any crop in range is within `scale_chips` of a chip, at the far edge
of the grid, of a size tried (with the best origin, within half that at either edge). The best
hypotheses are then refined on exact fractional boxes and decoded by the caller. Selection uses only the sign-blind fit, so each decode is one test for the payload
bound; the presence bound counts every (size, origin) point looked at.

Not searched: crops of under `min_crop` of a side, crops by two different fractions (0.9 of
the height and 0.7 of the width: each would need its own size, 6x the search), and crops
combined with rotation. A crop resized afterwards (a zoom) is found when the resize leaves the
grid the embedder chose (the grid is inferred from the original size each hypothesis implies),
but only by the sub-pixel refinement, not on whole-pixel boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evalkit.provenance import wm_grid as geo


@dataclass(frozen=True)
class CropHypothesis:
    z: float      # lattice fit / sqrt(n / 2) at the best integer origin (n coefficients measured)
    g: int        # chip grid
    profile: int
    box: tuple    # (y0, y1, x0, x1): the part of the original's unit square this frame shows


def sizes(h: int, w: int, cfg, min_crop: float, scale_chips: float, px: float = 1.0,
          shift: bool = False) -> list[tuple[float, float]]:
    """Original frame sizes (rows, columns, in received pixels) to try, largest crop first; the
    uncropped size (1, 1) only with `shift` (a picture moved within its frame: the ordinary
    search covers it in place)."""
    out = [(float(h), float(w))] if shift else []
    for fam in ("both", "width", "height"):
        f = 1.0
        while True:
            g = cfg.grid_for(int(round(px * h / (f if fam != "width" else 1.0))),
                             int(round(px * w / (f if fam != "height" else 1.0))))
            f /= 1 + 2 * scale_chips / g  # half the grid on either side of the best origin
            if f < min_crop:
                break
            fy = f if fam in ("both", "height") else 1.0
            fx = f if fam in ("both", "width") else 1.0
            out.append((h / fy, w / fx))
    return out


def marked_channel(cfg, profile: int) -> int:
    """The index (into cfg.channels) of the colour channel a profile marks."""
    return next(i for i, r in enumerate(cfg.profiles[profile]) if max(r) > 0)


def _shrink(plane: np.ndarray, k: int) -> np.ndarray:
    if k <= 1:
        return plane
    h, w = (plane.shape[0] // k) * k, (plane.shape[1] // k) * k
    return plane[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def _fit_origins(integ: geo.Integral, hc: float, wc: float, plan, ci: int, n_chan: int, levels: int,
                 scan: tuple[int, ...], slack: tuple[int, int] = (1, 1)):
    """Fit and count [origins_y, origins_x] of the grid of `plan` laid over an original frame of
    hc x wc pixels whose top-left sits at each integer (oy, ox) with oy in [h - hc - sy, sy]
    (`slack` (sy, sx): 1 for a crop; a shift's reach for a picture moved within its frame)."""
    h, w = integ.h, integ.w
    g = plan.g
    ch, cw = hc / g, wc / g
    oy = np.arange(int(math.floor(h - hc)) - slack[0], slack[0] + 1)
    ox = np.arange(int(math.floor(w - wc)) - slack[1], slack[1] + 1)
    fit = np.zeros((oy.size, ox.size))
    cnt = np.zeros((oy.size, ox.size))
    n1 = plan.codebit.size // n_chan
    i0 = ci * n1
    for lev in range(levels):
        s = g >> (lev + 1)
        block = slice(i0, i0 + 3 * s * s)
        i0 += 3 * s * s
        act = plan.codebit[block] >= 0
        if lev not in scan or not act.any():
            continue
        bh, bw = (1 << lev) * ch, (1 << lev) * cw           # a tile is 2 x 2 blocks
        ys = np.arange(0, int(math.floor(h - 2 * bh)) + 1)  # tile top-left rows that fit
        xs = np.arange(0, int(math.floor(w - 2 * bw)) + 1)
        if ys.size == 0 or xs.size == 0:
            continue
        r = np.concatenate([ys, ys + bh, ys + 2 * bh]).astype(np.float64)
        c = np.concatenate([xs, xs + bw, xs + 2 * bw]).astype(np.float64)
        s_at = integ.table(r, c).reshape(3, ys.size, 3, xs.size)

        def mean(a, b):  # [ys, xs]: mean of block (a, b) of each tile
            return (s_at[a + 1, :, b + 1] - s_at[a, :, b + 1] - s_at[a + 1, :, b] + s_at[a, :, b]) / (bh * bw)

        tl, tr, bl, br = mean(0, 0), mean(0, 1), mean(1, 0), mean(1, 1)
        k = 2.0 ** (lev - 1)  # orthonormal Haar of chip means: level l's details are 2^(l-1) x block sums
        details = (k * (tl - tr + bl - br), k * (tl + tr - bl - br), k * (tl - tr - bl + br))
        py = np.rint(np.arange(s) * 2 * bh).astype(np.int64)
        px = np.rint(np.arange(s) * 2 * bw).astype(np.int64)
        yy, xx = oy[:, None] + py[None, :], ox[:, None] + px[None, :]   # [origins, s]
        # a tile outside the frame reads the zero row / column appended at index -1
        yy = np.where((yy >= 0) & (yy < ys.size), yy, ys.size)
        xx = np.where((xx >= 0) & (xx < xs.size), xx, xs.size)
        # which tiles of each origin fall inside: separable, so their count is a small product
        in_y = (yy < ys.size).astype(np.float64)                        # [oy, s]
        in_x = (xx < xs.size).astype(np.float64)                        # [ox, s]
        for sub in range(3):
            sl = slice(block.start + sub * s * s, block.start + (sub + 1) * s * s)
            a = (plan.codebit[sl] >= 0).reshape(s, s)
            if not a.any():
                continue
            step = float(plan.step[sl][a.ravel()][0])
            phase = np.zeros((ys.size + 1, xs.size + 1), np.complex64)
            phase[:-1, :-1] = np.exp((4j * np.pi / step) * details[sub])
            key = np.where(a, np.exp(-4j * np.pi * plan.dither[sl].reshape(s, s)), 0).astype(np.complex64)
            # [oy, ox]: the tiles' phases at each origin against the key's (tensordot runs
            # the complex contraction in BLAS, 2.7x faster than einsum's loop)
            fit += np.tensordot(phase[yy][:, :, xx], key, axes=([1, 3], [0, 1])).real
            cnt += in_y @ a.astype(np.float64) @ in_x.T
    return oy, ox, fit, cnt


def scan_levels(cfg, profile: int, g: int, min_coeffs: int = 200) -> tuple[int, ...]:
    """The Haar levels the scan measures: the coarsest first, until at least `min_coeffs`
    coefficients. On a fine grid that leaves out the finest level (three quarters of the
    coefficients, and 4x the origins to try at the same precision); on a coarse one the fit
    needs them all to stand out of the noise."""
    used = [lev for lev in range(cfg.levels) if any(r[lev] > 0 for r in cfg.profiles[profile])]
    out, n = [], 0
    for lev in reversed(used):
        out.append(lev)
        n += 3 * (g >> (lev + 1)) ** 2
        if n >= min_coeffs:
            break
    return tuple(sorted(out))


def search(planes_by_profile, cfg, plan_for, min_crop: float = 0.5, scale_chips: float = 0.3,
           keep: int = 4, block_px: float = 6.0, px: float = 1.0,
           shift: float = 0.0) -> tuple[list[CropHypothesis], int]:
    """The `keep` best crop hypotheses (each the best origin of its size, on different sizes),
    and the number of (size, origin) points looked at. `planes_by_profile[p]` is the channel
    plane [H, W] that profile p marks (`choose_profile`: by the original's short side), and
    `plan_for(g, profile)` the key's plan. `px`: pixels of the video per pixel of the planes
    (a large frame is searched shrunk), for the grid and profile the embedder chose by size.
    `shift`: also the picture at its own size moved by up to this fraction of a side either way
    (the frame's edge then shows what the mover filled it with)."""
    h, w = next(iter(planes_by_profile.values())).shape
    hyps, n_points = [], 0
    shrunk = {}
    for hc, wc in sizes(h, w, cfg, min_crop, scale_chips, px, shift=shift > 0):
        g = cfg.grid_for(int(round(hc * px)), int(round(wc * px)))
        # the profile the embedder chose for a frame of that size (`watermark.choose_profile`)
        prof = 0 if len(cfg.profiles) == 1 or min(hc, wc) * px < cfg.chroma_min_px else 1
        if prof not in planes_by_profile:
            continue
        scan = scan_levels(cfg, prof, g)
        # shrink so the finest scanned block is about `block_px` pixels: tile positions then
        # round to within a twelfth of a block
        # (a fine grid, on large frames, at two thirds of that: a third of the origins, and its
        # many coefficients keep the fit standing out)
        k = max(1, int(min(hc, wc) / g * 2 ** min(scan) / (block_px if g < 32 else block_px * 2 / 3)))
        if (prof, k) not in shrunk:
            shrunk[(prof, k)] = geo.Integral(_shrink(planes_by_profile[prof], k))
        integ = shrunk[(prof, k)]
        plan = plan_for(g, prof)
        ci = marked_channel(cfg, prof)
        # in shrunk pixels (y / k): a shrunk pixel is the mean of a k x k block
        moved = hc == h and wc == w  # the shift hypothesis: its origins reach `shift` either way
        slack = (max(1, math.ceil(shift * h / k)), max(1, math.ceil(shift * w / k))) if moved else (1, 1)
        oy, ox, fit, cnt = _fit_origins(integ, hc / k, wc / k, plan, ci, len(cfg.channels), cfg.levels, scan,
                                        slack)
        n_points += fit.size
        z = np.where(cnt >= 24, fit / np.sqrt(np.maximum(cnt, 1) / 2), -np.inf)
        a, b = np.unravel_index(int(np.argmax(z)), z.shape)
        if not np.isfinite(z[a, b]):
            continue
        # the box of the original's unit square this frame shows, back in received pixels
        top, left = oy[a] * k, ox[b] * k
        box = (-top / hc, (h - top) / hc, -left / wc, (w - left) / wc)
        hyps.append(CropHypothesis(float(z[a, b]), g, prof, box))
    hyps.sort(key=lambda c: -c.z)
    return hyps[:keep], n_points
