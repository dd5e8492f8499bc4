"""Exact, event-driven physics for the world's scenes.

Motion between events is integrated in closed form (constant acceleration), and events
(floor and wall contacts, collisions, coming to rest) are solved analytically, so the ground
truth is exact at every frame time: constant downward acceleration between bounces, rebound
speed scaled by the restitution, friction that only slows, momentum conserved in collisions.
Each object's motion is a list of `Segment`s; `trajectories` samples them at the frame times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evalkit.world.spec import REST_SPEED, Scene

_EPS = 1e-12
_MAX_EVENTS = 10_000  # a guard against a pathological loop; real scenes have a few dozen


@dataclass
class Segment:
    """Motion from time `t0` on: p(t) = p0 + v0 (t - t0) + a (t - t0)^2 / 2."""

    t0: float
    x: float
    y: float
    vx: float
    vy: float
    ax: float = 0.0
    ay: float = 0.0

    def at(self, t: float) -> tuple[float, float, float, float]:
        tau = t - self.t0
        return (
            self.x + self.vx * tau + 0.5 * self.ax * tau * tau,
            self.y + self.vy * tau + 0.5 * self.ay * tau * tau,
            self.vx + self.ax * tau,
            self.vy + self.ay * tau,
        )


@dataclass
class Trajectories:
    pos: np.ndarray  # float64 [N, T, 2], centre (x, y) in frame fractions
    vel: np.ndarray  # float64 [N, T, 2], per second
    times: np.ndarray  # float64 [T], seconds
    segments: list[list[Segment]]  # per object, for tests and probes


def _first_root(a: float, b: float, c: float) -> float:
    """Smallest tau > 0 with a tau^2/2 + b tau + c = 0 (inf if none)."""
    if abs(a) < _EPS:
        return -c / b if b * -c > 0 and abs(b) > _EPS else math.inf
    disc = b * b - 2.0 * a * c
    if disc < 0:
        return math.inf
    s = math.sqrt(disc)
    roots = sorted(((-b - s) / a, (-b + s) / a))
    for r in roots:
        if r > 1e-9:
            return r
    return math.inf


def _wall_time(x: float, vx: float, ax: float, half: float) -> tuple[float, float]:
    """Time to touch the left or right wall with the object's edge, and the wall position."""
    best, wall = math.inf, x
    for target in (half, 1.0 - half):
        tau = _first_root(ax, vx, x - target)
        # Only count contacts where the object moves into the wall.
        if tau < best:
            v_hit = vx + ax * tau
            if (target > 0.5 and v_hit > 0) or (target < 0.5 and v_hit < 0):
                best, wall = tau, target
    return best, wall


def _ground_motion(seg_t: float, x: float, y: float, vx: float, half: float, mu: float, e: float,
                   t_end: float) -> list[Segment]:
    """Horizontal sliding with deceleration `mu` (friction only slows), walls bounce."""
    out: list[Segment] = []
    t = seg_t
    for _ in range(_MAX_EVENTS):
        if abs(vx) < _EPS or t >= t_end:
            out.append(Segment(t, x, y, 0.0, 0.0))
            return out
        ax = -math.copysign(mu, vx)
        tau_stop = abs(vx) / mu if mu > 0 else math.inf
        tau_wall, wall = _wall_time(x, vx, 0.0 if mu == 0 else ax, half)
        out.append(Segment(t, x, y, vx, 0.0, ax, 0.0))
        if tau_stop <= tau_wall:
            x, _, _, _ = out[-1].at(t + tau_stop)
            t, vx = t + tau_stop, 0.0
        else:
            _, _, v_hit, _ = out[-1].at(t + tau_wall)
            t, x, vx = t + tau_wall, wall, -e * v_hit
    raise RuntimeError("ground motion did not settle")


def _ballistic_motion(x: float, y: float, vx: float, vy: float, half: float, g: float, e: float,
                      mu: float, t_end: float) -> list[Segment]:
    """Flight under gravity with floor and wall bounces; then rest or slide on the floor."""
    out: list[Segment] = []
    t, floor = 0.0, 1.0 - half
    for _ in range(_MAX_EVENTS):
        if t >= t_end:
            out.append(Segment(t, x, y, vx, vy, 0.0, g))
            return out
        tau_floor = _first_root(g, vy, y - floor)
        tau_wall, wall = _wall_time(x, vx, 0.0, half)
        seg = Segment(t, x, y, vx, vy, 0.0, g)
        out.append(seg)
        if tau_floor <= tau_wall:
            x, _, vx, vy_hit = seg.at(t + tau_floor)
            t, y, vy = t + tau_floor, floor, -e * vy_hit
            if abs(vy) < REST_SPEED:  # too slow to leave the floor again: roll to rest
                return out + _ground_motion(t, x, floor, vx, half, mu, e, t_end)
        else:
            _, y, _, vy = seg.at(t + tau_wall)
            t, x, vx = t + tau_wall, wall, -e * vx
    raise RuntimeError("ballistic motion did not settle")


def _collision_motion(scene: Scene, t_end: float) -> list[list[Segment]]:
    """Two bodies on one horizontal line, no gravity or friction: contacts with restitution
    e along the line, masses proportional to area, so total momentum is conserved."""
    a, b = scene.objects[:2]
    e = scene.restitution
    m = (a.area, b.area)
    half = (a.size / 2, b.size / 2)
    x = [a.pos[0], b.pos[0]]
    y = [a.pos[1], b.pos[1]]
    v = [a.vel[0], b.vel[0]]
    segs: list[list[Segment]] = [[], []]
    t = 0.0
    for _ in range(_MAX_EVENTS):
        for i in range(2):
            segs[i].append(Segment(t, x[i], y[i], v[i], 0.0))
        if t >= t_end:
            return segs
        # Pair contact: the gap between facing edges closes at v0 - v1 (a is left of b).
        gap = (x[1] - x[0]) - (half[0] + half[1])
        closing = v[0] - v[1]
        tau_pair = gap / closing if closing > _EPS else math.inf
        walls = [_wall_time(x[i], v[i], 0.0, half[i]) for i in range(2)]
        tau = min(tau_pair, walls[0][0], walls[1][0])
        if not math.isfinite(tau):
            for i in range(2):
                segs[i].append(Segment(t_end, x[i] + v[i] * (t_end - t), y[i], v[i], 0.0))
            return segs
        t += tau
        x = [x[i] + v[i] * tau for i in range(2)]
        if tau == tau_pair:
            p = m[0] * v[0] + m[1] * v[1]
            v = [
                (p + m[1] * e * (v[1] - v[0])) / (m[0] + m[1]),
                (p + m[0] * e * (v[0] - v[1])) / (m[0] + m[1]),
            ]
        else:
            i = 0 if walls[0][0] == tau else 1
            x[i], v[i] = walls[i][1], -e * v[i]
    raise RuntimeError("collision motion did not settle")


def simulate(scene: Scene, t_end: float) -> list[list[Segment]]:
    """Piecewise-analytic motion of every object of `scene` over [0, t_end]."""
    if scene.kind == "collide":
        segs = _collision_motion(scene, t_end)
        # Bystanders (a third object) stay at rest.
        return segs + [[Segment(0.0, *o.pos, 0.0, 0.0)] for o in scene.objects[2:]]
    out = []
    for o in scene.objects:
        half = o.size / 2
        if scene.kind in ("fall", "throw"):
            out.append(_ballistic_motion(*o.pos, *o.vel, half, scene.gravity, scene.restitution,
                                         scene.friction, t_end))
        elif scene.kind == "slide":
            out.append(_ground_motion(0.0, *o.pos, o.vel[0], half, scene.friction, scene.restitution, t_end))
        else:  # static
            out.append([Segment(0.0, *o.pos, 0.0, 0.0)])
    return out


def trajectories(scene: Scene, frames: int, fps: float) -> Trajectories:
    """Sample the exact motion at the frame times k / fps, k = 0 .. frames - 1."""
    times = np.arange(frames, dtype=np.float64) / fps
    segs = simulate(scene, float(times[-1]) + 1.0 / fps)
    pos = np.empty((len(segs), frames, 2))
    vel = np.empty((len(segs), frames, 2))
    for n, obj_segs in enumerate(segs):
        tab = np.array([[s.t0, s.x, s.y, s.vx, s.vy, s.ax, s.ay] for s in obj_segs])  # [S, 7]
        idx = np.searchsorted(tab[:, 0], times, side="right") - 1
        t0, x, y, vx, vy, ax, ay = tab[idx].T
        tau = times - t0
        pos[n, :, 0] = x + vx * tau + 0.5 * ax * tau**2
        pos[n, :, 1] = y + vy * tau + 0.5 * ay * tau**2
        vel[n, :, 0] = vx + ax * tau
        vel[n, :, 1] = vy + ay * tau
    return Trajectories(pos=pos, vel=vel, times=times, segments=segs)
