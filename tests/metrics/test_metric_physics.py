"""Physics probes: the colour tracker against the world's ground truth (clean, H.264, 32 to 128
px), the laws on the world's own clips (they pass) and on controls (the right law fails), the
object-presence helper, Physics-IQ's motion-mask metrics on real footage, and the shared metric
tester on `PhysicsPlausibility`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evalkit.metrics.physics import (
    LAWS, LAWS_BY_KIND, PhysicsPlausibility, control_clip, max_speed, motion_mask_metrics, motion_masks,
    object_presence, physics_iq_score, physics_probe, score_laws, size_change,
)
from evalkit.metrics.stats import Estimate
from evalkit.metrics.tracking_objects import expected_area, track_objects
from evalkit.video import read_video, write_video
from evalkit.world import WorldConfig, make_clip, make_clip_for_prompt
from evalkit.world.spec import SIZES

from .helpers import CHECKS, MetricCase, upd

torch.set_num_threads(1)


def _objects(clip):
    return [(o["shape"], o["color"], o["size_name"]) for o in clip.meta["record"]["scene"]["objects"]]


def _h264(frames, fps, crf, tmp_path):
    path = tmp_path / f"clip-crf{crf}.mp4"
    write_video(path, frames, fps=fps, crf=crf)
    return read_video(path).frames


def _errors(clip, frames):
    """(centroid errors in px of every object-frame, area / expected, found flags)."""
    tracks = track_objects(frames, _objects(clip))
    err, ratio, found = [], [], []
    for obj, tr in zip(clip.meta["record"]["scene"]["objects"], tracks):
        gt = np.array(obj["track"])[:, :2]
        err.append(np.hypot(*(tr.centroid - gt).T))
        ratio.append(tr.area / tr.expected_area)
        found.append(tr.found)
    return np.concatenate(err), np.concatenate(ratio), np.concatenate(found)


# ------------------------------------------------------------------------------------------------
# tracker


@pytest.mark.parametrize("size,n", [(32, 30), (64, 10), (128, 4)])
def test_tracker_is_subpixel_exact_on_clean_world_clips(size, n):
    """Measured over 40-300 clips: mean error 0.021 / 0.010 / 0.005 px, max 0.049 / 0.037 / 0.014."""
    errs, ratios, found = zip(*[_errors(c, c.frames) for c in
                                (make_clip("test", i, 0, WorldConfig(size=size)) for i in range(n))])
    errs, ratios, found = np.concatenate(errs), np.concatenate(ratios), np.concatenate(found)
    assert found.all()
    assert errs.max() < 0.1 and errs.mean() < 0.03, (errs.max(), errs.mean())
    assert np.abs(ratios - 1).max() < 0.08


@pytest.mark.parametrize("crf,max_err,mean_err", [(18, 1.0, 0.15), (30, 4.0, 0.4)])
def test_tracker_survives_h264(tmp_path, crf, max_err, mean_err):
    """32 px clips through H.264 (yuv420p: chroma at 16 x 16, a small object is 4 px). Measured over
    40 clips: CRF 18 mean 0.09 px (max 0.45), CRF 30 mean 0.27 px (max 1.6 to 3.0: x264 here is
    not bit-reproducible from one process to the next), < 1% of the frames missed."""
    errs, found = [], []
    for i in range(16):
        c = make_clip("test", i, 0)
        e, _, f = _errors(c, _h264(c.frames, c.fps, crf, tmp_path))
        errs.append(e[f])
        found.append(f)
    errs, found = np.concatenate(errs), np.concatenate(found)
    assert found.mean() >= 0.97
    assert errs.mean() < mean_err and errs.max() < max_err, (errs.mean(), errs.max())


def test_tracker_with_sensor_noise_and_large_frames():
    c = make_clip("test", 3, 0, WorldConfig(size=96, noise=3.0))
    errs, ratios, found = _errors(c, c.frames)
    assert found.all() and errs.max() < 0.2 and np.abs(ratios - 1).max() < 0.1


def test_scattered_colour_noise_is_not_an_object():
    """Red pixels scattered over grey (5% of the pixels, and a denser 15%) are never a red ball,
    whatever their count; a real red ball beside a little salt is still found."""
    rng = np.random.default_rng(0)
    for density in (0.05, 0.15):
        frames = np.full((8, 32, 32, 3), 30, np.uint8)
        frames[rng.random((8, 32, 32)) < density] = (220, 40, 40)
        (tr,) = track_objects(frames, [("ball", "red", "small")])
        assert not tr.found.any()
    # A blank clip: nothing.
    (tr,) = track_objects(np.full((4, 32, 32, 3), 128, np.uint8), [("square", "blue", "large")])
    assert not tr.found.any() and np.isnan(tr.centroid).all()
    clip = make_clip_for_prompt("a medium red ball rests still, on a dark background", seed=1)
    salted = clip.frames.copy()
    salted[:, rng.integers(0, 32, 3), rng.integers(0, 32, 3)] = (220, 40, 40)  # 3 lone pixels
    (tr,) = track_objects(salted, [("ball", "red", "medium")])
    assert tr.found.all()


def test_tracker_says_why_an_object_is_missed():
    """`ObjectTrack.misses` names each frame's outcome: a square of the right size is found; a
    blank frame is absent; one of a quarter or four times the area is too small / too large; red
    salt is scattered; a thin red line is not compact."""
    frames = np.full((6, 32, 32, 3), 30, np.uint8)
    red = (220, 40, 40)
    d = round(SIZES["medium"] * 32)  # the side of a medium square, about 6 px
    frames[0, 10:10 + d, 10:10 + d] = red
    frames[2, 10:10 + d // 2, 10:10 + d // 2] = red
    frames[3, 4:4 + 2 * d, 4:4 + 2 * d] = red
    frames[4][np.random.default_rng(0).random((32, 32)) < 0.15] = red
    frames[5, 16:18, 2:30] = red
    (tr,) = track_objects(frames, [("square", "red", "medium")])
    assert list(tr.misses()) == ["found", "absent", "too small", "too large", "scattered", "not compact"]
    assert (tr.misses() == "found").tolist() == tr.found.tolist()


def test_tracker_keeps_touching_objects_apart():
    """Collisions put two colours side by side; each centroid stays on its own body (unmixing)."""
    worst = 0.0
    for i in range(60):
        c = make_clip("test", i, 0)
        if c.meta["record"]["scene"]["kind"] == "collide":
            worst = max(worst, _errors(c, c.frames)[0].max())
    assert worst < 0.1


def test_objects_sharing_a_colour_are_told_apart():
    """The grammar allows two objects of one colour: each gets its own blob (by expected size, then
    by nearest position frame to frame), and the laws hold."""
    prompt = "a small red ball and a large red square fall and bounce on the floor, on a dark background"
    for seed in range(3):
        clip = make_clip_for_prompt(prompt, seed=seed, config=WorldConfig(size=64))
        r = physics_probe(clip.frames, prompt, clip.fps, details=True)
        assert r["physics_pass"], r["physics_laws"]
        for obj, tr in zip(clip.meta["record"]["scene"]["objects"], r["tracks"]):
            assert tr.found.all() and np.hypot(*(tr.centroid - np.array(obj["track"])[:, :2]).T).max() < 0.1


def test_scenes_the_world_never_draws_have_no_probe():
    """A one-body "collision" passed the probe as a still picture (its momentum law was not
    applicable); two thrown objects were read as a probe though the world draws one."""
    from evalkit.metrics.physics_laws import probe_spec

    for prompt in ("a medium red ball collide, on a dark background",
                   "a small red ball and a small blue ball are thrown and bounce across the floor, on a dark background"):
        with pytest.raises(ValueError, match="not a world prompt"):
            probe_spec(prompt)
    with pytest.raises(ValueError, match="a collide scene holds 2 objects, the prompt names 1"):
        probe_spec({"kind": "collide", "objects": [["ball", "red", "medium"]]})


def test_expected_area_and_bad_objects():
    assert expected_area("square", "large", (32, 32)) == pytest.approx((0.24 * 32) ** 2)
    assert expected_area("ball", "small", (64, 48)) == pytest.approx(np.pi / 4 * (0.12 * 48) ** 2)
    with pytest.raises(ValueError, match="unknown object"):
        track_objects(np.zeros((2, 8, 8, 3), np.uint8), [("ball", "magenta", "small")])


# ------------------------------------------------------------------------------------------------
# laws on the world's own clips


def _rates(clips_frames) -> dict[str, float]:
    passed, decided = _tally(clips_frames)
    return {law: passed[law] / decided[law] for law in decided}


def _tally(clips_frames) -> tuple[dict[str, int], dict[str, int]]:
    passed, decided = {}, {}
    for frames, prompt, fps in clips_frames:
        for law, v in physics_probe(frames, prompt, fps)["physics_laws"].items():
            if v is not None:
                passed[law] = passed.get(law, 0) + v
                decided[law] = decided.get(law, 0) + 1
    return passed, decided


def test_world_clips_pass_their_laws():
    """A modest sample; the calibration study (300 clips per split x condition) gives 100% on clean
    clips, >= 99.7% at CRF 18 and with sensor noise 3 (all splits, 32 and 64 px)."""
    clips = [make_clip(split, i, 0) for split in ("test", "ood") for i in range(40)]
    rates = _rates([(c.frames, c.prompt, c.fps) for c in clips])
    assert set(rates) == set(LAWS)  # every law was decided on some clip
    assert all(r == 1.0 for r in rates.values()), rates
    noisy = [make_clip("train", i, 0, WorldConfig(noise=3.0)) for i in range(20)]
    assert all(r == 1.0 for r in _rates([(c.frames, c.prompt, c.fps) for c in noisy]).values())


def test_world_clips_pass_after_h264(tmp_path):
    """CRF 30 at 32 px is the stress case: a 4-pixel object's chroma is a couple of quantised
    coefficients. Study (300 clips a split): 93% of clips pass every law, each law >= 92%."""
    clips = [make_clip("test", i, 0) for i in range(24)]
    for crf, allowed in ((18, 0.01), (30, 0.06)):
        passed, decided = _tally([(_h264(c.frames, c.fps, crf, tmp_path), c.prompt, c.fps) for c in clips])
        failures = sum(decided.values()) - sum(passed.values())
        assert failures <= allowed * sum(decided.values()), (crf, passed, decided)


def test_probe_output_contract():
    c = make_clip("test", 0, 0)
    r = physics_probe(c.frames, c.prompt, c.fps)
    assert set(r) == {"physics_score", "physics_pass", "physics_laws", "kind"}
    assert set(r["physics_laws"]) == {"permanence", "constant_size", "constant_colour", "no_teleport",
                                      *LAWS_BY_KIND[r["kind"]]}
    assert r["physics_score"] == 1.0 and r["physics_pass"] is True
    # A probe spec works as well as the prompt.
    spec = {"kind": r["kind"], "objects": _objects(c)}
    assert physics_probe(c.frames, spec, c.fps)["physics_laws"] == r["physics_laws"]
    with pytest.raises(ValueError, match="not a world prompt"):
        physics_probe(c.frames, "a cat playing the piano", 8.0)
    with pytest.raises(ValueError, match="fps"):
        physics_probe(c.frames, c.prompt, 0.0)
    assert score_laws({"a": True, "b": False, "c": None}) == (0.5, False)
    assert score_laws({"a": None}) == (0.0, False)


# ------------------------------------------------------------------------------------------------
# controls: the right law fails


def _kind_clips(kinds, n=60, split="test"):
    clips = (make_clip(split, i, 0) for i in range(n))
    return [c for c in clips if c.meta["record"]["scene"]["kind"] in kinds]


def _control_laws(clips, how):
    return [physics_probe(cc.frames, cc.prompt, cc.fps)["physics_laws"]
            for cc in (control_clip(c, how, seed=i) for i, c in enumerate(clips))]


def _fail_rate(laws, law):
    decided = [r[law] for r in laws if r.get(law) is not None]
    assert decided, f"{law} never decided"
    return 1 - sum(decided) / len(decided)


@pytest.mark.parametrize("how,kinds,law", [
    ("freeze", ("fall", "throw"), "constant_downward_acceleration"),
    ("freeze", ("slide",), "friction_slows"),
    ("freeze", ("collide",), "momentum_conserved"),
    ("flip", ("fall", "throw"), "constant_downward_acceleration"),  # upside down: upward acceleration
    ("reverse", ("fall", "throw"), "bounce_heights_non_increasing"),  # bounces grow back in time
    ("reverse", ("slide",), "friction_slows"),  # it speeds up from rest
    ("shuffle", ("fall", "throw", "slide", "collide"), "no_teleport"),
    ("teleport", ("fall", "throw", "slide", "collide", "static"), "no_teleport"),
    ("vanish", ("fall", "throw", "slide", "collide", "static"), "permanence"),
    ("recolour", ("fall", "throw", "slide", "collide", "static"), "constant_colour"),
    ("resize", ("fall", "throw", "slide", "collide", "static"), "constant_size"),
])
def test_controls_fail_the_law_they_break(how, kinds, law):
    """Study (200 test clips, 32 px, clean): every one of these is caught in 100% of the clips
    but shuffle/acceleration (~85%) and momentum (96%, below)."""
    laws = _control_laws(_kind_clips(kinds), how)
    assert _fail_rate(laws, law) == 1.0, (how, law)


def test_momentum_control_and_what_survives_reversal():
    clips = _kind_clips(("collide",), n=120)
    assert len(clips) >= 15
    kicked = _control_laws(clips, "momentum")
    assert _fail_rate(kicked, "momentum_conserved") >= 0.9
    # The kick leaves every contact lawful (each body pushed away, a world restitution): only
    # the centre of mass betrays it, so no_teleport has nothing to see.
    assert _fail_rate(kicked, "no_teleport") == 0.0
    # Time reversal keeps momentum conserved (p_before and p_after swap and change sign): only the
    # restitution, > 1 backwards, betrays it, and no law here tests energy in collisions.
    assert _fail_rate(_control_laws(clips, "reverse"), "momentum_conserved") == 0.0


def _false_alarms(how, n=60):
    """(other laws failing on the control though they pass on the clean clip, such laws decided)."""
    fa = decided = 0
    for i, c in enumerate(_kind_clips(("fall", "throw", "slide", "collide", "static"), n=n)):
        base = physics_probe(c.frames, c.prompt, c.fps)["physics_laws"]
        res = physics_probe(control_clip(c, how, seed=i).frames, c.prompt, c.fps)["physics_laws"]
        own = {"teleport": "no_teleport", "recolour": "constant_colour", "resize": "constant_size"}[how]
        assert res[own] is False
        for law, ok in res.items():
            if law != own and ok is not None and base[law] is True:
                decided += 1
                fa += ok is False
    return fa, decided


@pytest.mark.parametrize("how", ["teleport", "recolour", "resize"])
def test_a_violation_fails_its_own_law_only(how):
    """A jump is no_teleport's: the motion laws look past one jump (a teleported fall is still a
    parabola, a teleported static object still at rest on either side). A recoloured or resized
    object is still the same object: permanence holds, and the kinematic laws follow it. Study
    (200 test clips, 64 px): false alarms on the other laws 0.2%, 0% and 0% (were 14%, 26% and 16%)."""
    fa, decided = _false_alarms(how)
    assert decided >= 200 and fa <= 0.02 * decided, (fa, decided)


def _static_jumps(clip, there: int, back: int | None):
    """A static world clip with object 0 moved an eighth of the frame at frame `there` (and back
    at frame `back`), re-rendered exactly."""
    from evalkit.world.physics import trajectories
    from evalkit.world.render import render

    rec, scene = clip.meta["record"], clip.meta["scene"]
    pos = trajectories(scene, clip.num_frames, clip.fps).pos.copy()
    half = scene.objects[0].size / 2
    d = 0.125 if pos[0, 0, 0] + 0.125 <= 1 - half else -0.125
    pos[0, there:back, 0] += d
    rng = np.random.default_rng([rec["seed"], 1])
    frames = render(scene, pos, rec["size"][0], rng, float(rec.get("noise", 0.0)))
    return clip.with_frames(frames)


def test_one_jump_is_taken_out_and_two_are_not():
    """The motion laws look past a single jump only: one that leaves a track no_teleport passes
    once it is taken out. An object that jumps away and back is not at rest."""
    clips = _kind_clips(("static",))[:8]
    assert clips
    for c in clips:
        one = physics_probe(_static_jumps(c, 8, None).frames, c.prompt, c.fps)["physics_laws"]
        assert one["no_teleport"] is False and one["at_rest"] is True, one
        two = physics_probe(_static_jumps(c, 5, 11).frames, c.prompt, c.fps)["physics_laws"]
        assert two["no_teleport"] is False and two["at_rest"] is False, two


@pytest.mark.parametrize("how", ["recolour", "resize"])
def test_a_changed_object_is_followed_exactly(how):
    """From mid-clip on the object is not found as itself but followed: its centroid there is
    measured as well as where it is found (the coverage of its new colour, or of its own)."""
    errs = []
    for i, c in enumerate(_kind_clips(("fall", "slide", "collide"), n=20)):
        cc = control_clip(c, how, seed=i)
        r = physics_probe(cc.frames, c.prompt, c.fps, details=True)
        assert r["physics_laws"]["permanence"] is True
        changed = [tr for tr in r["tracks"] if not tr.found.all()]
        assert len(changed) <= 1  # the one object the control changed ...
        if not changed:
            continue  # ... unless it is still about its size (medium to large: 1.8 x the area)
        tr = changed[0]
        t = cc.num_frames
        assert tr.found[: t // 2].all() and not tr.followed[: t // 2].any()
        assert tr.seen.all() and tr.followed[t // 2:].any()  # (a resized one may be found at times)
        k = [o["color"] for o in c.meta["record"]["scene"]["objects"]].index(tr.color)
        gt = np.array(c.meta["record"]["scene"]["objects"][k]["track"])[:, :2]
        # A resized object can reach past the frame's edge where the original touched it: not there.
        clear = (gt > 0.12 * 32 + 1).all(1) & (gt < 32 - 0.12 * 32 - 1).all(1) if how == "resize" else True
        errs.append(np.hypot(*(tr.centroid - gt).T)[tr.followed & clear])
    errs = np.concatenate(errs)
    assert len(errs) >= 20 and errs.max() < 0.1, errs


def test_an_object_never_seen_as_itself_is_not_followed():
    """Following needs an anchor: a blue ball where a red one is prompted is never the red ball,
    however well it moves (permanence fails), and scattered colour noise is never followed."""
    prompt = "a medium blue ball falls and bounces on the floor, on a dark background"
    clip = make_clip_for_prompt(prompt, seed=3)
    r = physics_probe(clip.frames, prompt.replace("blue", "red"), clip.fps, details=True)
    assert r["physics_laws"]["permanence"] is False and not r["tracks"][0].followed.any()
    import dataclasses

    from evalkit.world.render import render

    rec, scene = clip.meta["record"], clip.meta["scene"]
    empty = render(dataclasses.replace(scene, objects=()), np.zeros((0, clip.num_frames, 2)), rec["size"][0],
                   np.random.default_rng([rec["seed"], 1]))
    frames = np.concatenate([clip.frames[:8], empty[8:]])  # the ball is gone after frame 8 ...
    salt = np.random.default_rng(0).random(frames.shape[:3]) < 0.1
    salt[:8] = False
    frames[salt] = (40, 200, 210)  # ... and cyan salt is all there is
    (tr,) = track_objects(frames, [("ball", "blue", "medium")])
    assert tr.found[:8].all() and not tr.found[8:].any() and not tr.followed.any()


@pytest.mark.parametrize("fps,frames", [(16, 32), (24, 48)])
def test_falls_at_video_frame_rates_accelerate_and_steady_ones_do_not(fps, frames):
    """Gravity in px / frame^2 shrinks with fps^2: at 16 and 24 fps every correct fall failed a
    fixed 0.6 px / frame^2 floor (session 30). The floor is now half the weakest gravity at the
    clip's size and rate; a fall at constant speed still fails."""
    from evalkit.world.physics import trajectories
    from evalkit.world.render import render

    cfg = WorldConfig(fps=fps, frames=frames)
    falls = [c for c in (make_clip("test", i, 3, cfg) for i in range(40)) if c.meta["scene"].kind == "fall"][:6]
    assert len(falls) >= 4
    for c in falls:
        laws = physics_probe(c.frames, c.prompt, fps)["physics_laws"]
        assert laws["constant_downward_acceleration"] is True, laws
        scene, rec = c.meta["scene"], c.meta["record"]
        pos = trajectories(scene, frames, fps).pos.copy()  # [objects, T, 2]
        t = np.linspace(0, 1, frames)[None, :]
        drop = min(0.5, float(pos[:, -1, 1].min() - pos[:, 0, 1].min()))
        pos[..., 1] = pos[:, :1, 1] + drop * 0.6 * t  # every object down at one steady speed
        steady = render(scene, pos, rec["size"][0], np.random.default_rng([rec["seed"], 1]))
        laws = physics_probe(steady, c.prompt, fps)["physics_laws"]
        assert laws["constant_downward_acceleration"] is not True, laws


@pytest.mark.parametrize("fps,frames,size", [(16, 32, 32), (24, 48, 64), (8, 16, 256)])
def test_a_slide_at_constant_speed_fails_at_any_rate_and_size(fps, frames, size):
    """At 16 fps a slide's speed in px/frame halves, and "at rest under 0.3 px/frame" passed 8 of
    14 slides moving at one constant speed (1 of 14 at 8 fps); the floors now scale."""
    from evalkit.world.physics import trajectories
    from evalkit.world.render import render

    cfg = WorldConfig(fps=fps, frames=frames, size=size)
    slides = [c for c in (make_clip("test", i, 3, cfg) for i in range(80)) if c.meta["scene"].kind == "slide"]
    steady_passes = 0
    for c in slides:
        assert physics_probe(c.frames, c.prompt, fps)["physics_laws"]["friction_slows"] is True
        scene, rec = c.meta["scene"], c.meta["record"]
        pos = trajectories(scene, frames, fps).pos.copy()
        pos[..., 0] = pos[:, :1, 0] + (pos[:, -1, 0] - pos[:, 0, 0])[:, None] * np.linspace(0, 1, frames)[None, :]
        steady = render(scene, pos, rec["size"][0], np.random.default_rng([rec["seed"], 1]))
        steady_passes += physics_probe(steady, c.prompt, fps)["physics_laws"]["friction_slows"] is True
    assert len(slides) >= 10 and steady_passes <= 2


def test_collisions_meet_between_frames_at_any_size():
    """At 256 px the bodies close several px a frame, so the frames around a contact show a gap
    over the fixed 3 px "they met" once allowed: 4 of the world's own collisions failed. The gap
    allowed now grows with a frame's closing; bodies held apart still never meet."""
    cfg = WorldConfig(size=256)
    collides = [c for c in (make_clip("test", i, 3, cfg) for i in range(80)) if c.meta["scene"].kind == "collide"]
    assert len(collides) >= 10
    for c in collides:
        laws = physics_probe(c.frames, c.prompt, c.fps)["physics_laws"]
        assert laws["momentum_conserved"] is True, laws
    for c in collides[:4]:
        held = np.repeat(c.frames[:1], c.num_frames, axis=0)
        assert physics_probe(held, c.prompt, c.fps)["physics_laws"]["momentum_conserved"] is False


def test_reversed_fall_still_accelerates_downward():
    """y(T - t) has the same second derivative as y(t): curvature cannot tell the direction of
    time. What betrays a reversed fall is its bounces growing."""
    laws = _control_laws(_kind_clips(("fall",)), "reverse")
    assert _fail_rate(laws, "constant_downward_acceleration") == 0.0
    assert _fail_rate(laws, "bounce_heights_non_increasing") == 1.0


def test_a_frozen_or_shuffled_static_scene_is_a_valid_static_scene():
    clips = _kind_clips(("static",))
    for how in ("freeze", "shuffle"):
        assert all(all(v is not False for v in r.values()) for r in _control_laws(clips, how))


def test_noise_finds_nothing_and_scores_zero():
    """Pure noise: the objects are not there, so permanence fails and every other law is None
    (no evidence): the score is 0, never a vacuous pass."""
    for c in _kind_clips(("fall", "throw", "slide", "collide", "static"), n=10):
        r = physics_probe(control_clip(c, "noise", seed=1).frames, c.prompt, c.fps)
        assert r["physics_laws"]["permanence"] is False
        assert all(v is None for k, v in r["physics_laws"].items() if k != "permanence")
        assert r["physics_score"] == 0.0 and r["physics_pass"] is False


def test_control_clip_rejects_unknown_controls():
    with pytest.raises(ValueError, match="unknown control"):
        control_clip(make_clip("test", 0, 0), "melt")
    static = _kind_clips(("static",))[0]
    with pytest.raises(ValueError, match="collide"):
        control_clip(static, "momentum")


def test_world_limits_and_size_statistic():
    assert max_speed("static", 2.0) == 0.0
    assert max_speed("slide", 2.0) == pytest.approx(0.6)
    assert max_speed("fall", 2.0) == pytest.approx(np.sqrt(13.0))
    assert max_speed("collide", 1.0) == 2 * max_speed("collide", 2.0)  # collisions are timed in the clip
    with pytest.raises(ValueError):
        max_speed("melt", 1.0)
    assert size_change(np.full(16, 20.0)) == 0.0
    step = np.r_[np.full(8, 20.0), np.full(8, 30.0)]
    assert size_change(step) == pytest.approx(np.log(1.5))
    spiky = np.full(16, 20.0)
    spiky[[3, 11]] = 40.0  # two codec glitches do not move a median
    assert size_change(spiky) == 0.0


# ------------------------------------------------------------------------------------------------
# object presence (the generator's quality target)


def test_object_presence_on_world_and_controls():
    prompt = "a medium blue ball falls and bounces on the floor, on a dark background"
    clip = make_clip_for_prompt(prompt, seed=3)
    p = object_presence(clip.frames, prompt)
    assert p["kind"] == "fall" and p["min_presence"] == 1.0 and p["moves_down"] is True
    assert p["objects"][0]["found"] == [True] * clip.num_frames
    frozen = object_presence(control_clip(clip, "freeze").frames, prompt)
    assert frozen["min_presence"] == 1.0 and frozen["moves_down"] is False
    flipped = object_presence(control_clip(clip, "flip").frames, prompt)
    assert flipped["moves_down"] is False
    noise = object_presence(control_clip(clip, "noise").frames, prompt)
    assert noise["min_presence"] == 0.0 and noise["moves_down"] is None
    # Another colour of the right shape and size is not the prompted object; wrong size neither.
    assert object_presence(clip.frames, prompt.replace("blue", "red"))["min_presence"] == 0.0
    static = "a large green square rests still, on a light background"
    s = object_presence(make_clip_for_prompt(static, seed=0).frames, static)
    assert s["min_presence"] == 1.0 and s["moves_down"] is None


def test_object_presence_wants_about_the_right_size():
    """A large square where a small one is prompted is 4x too big: not the prompted object."""
    prompt = "a large red square rests still, on a dark background"
    big = make_clip_for_prompt(prompt, seed=0)
    assert object_presence(big.frames, prompt.replace("large", "small"))["min_presence"] == 0.0
    assert object_presence(big.frames, prompt)["min_presence"] == 1.0


# ------------------------------------------------------------------------------------------------
# the torchmetrics class


def _batch(clips):
    """uint8 [B, T, 3, H, W] (no float rounding), prompts, fps."""
    video = torch.from_numpy(np.stack([c.frames for c in clips])).permute(0, 1, 4, 2, 3).contiguous()
    return video, [c.prompt for c in clips]


def _metric_batches():
    clips = [make_clip("test", i, 0) for i in range(8)]
    mixed = [clips[0], control_clip(clips[1], "freeze"), clips[2], control_clip(clips[3], "noise"),
             control_clip(clips[4], "vanish", seed=2), clips[5], control_clip(clips[6], "shuffle"), clips[7]]
    return [upd(*_batch(mixed[i:i + 2]), fps=8.0) for i in range(0, 8, 2)]


def _reference(batches):
    scores = []
    for b in batches:
        video, prompts = b.args
        frames = video.permute(0, 1, 3, 4, 2).numpy()
        scores += [physics_probe(f, p, b.kwargs["fps"])["physics_score"] for f, p in zip(frames, prompts)]
    return torch.tensor(np.mean(scores), dtype=torch.float64)


PHYSICS_CASE = MetricCase(make=PhysicsPlausibility, batches=_metric_batches(), reference=_reference,
                          rtol=1e-12, atol=1e-12, name="PhysicsPlausibility")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_physics_metric_passes_the_tester(check):
    check(PHYSICS_CASE)


def test_physics_metric_laws_ci_and_protocol():
    m = PhysicsPlausibility()
    for b in PHYSICS_CASE.batches:
        m.update(*b.args, **b.kwargs)
    laws = m.compute_laws()
    assert isinstance(laws["permanence"], Estimate) and laws["permanence"].method == "wilson"
    assert laws["permanence"].n == 8 and laws["permanence"].value == pytest.approx(6 / 8)  # noise, vanish
    assert set(laws) <= set(LAWS)
    est = m.compute_with_ci(n_boot=200)
    assert est.n == 8 and est.ci_low <= est.value <= est.ci_high
    assert m.compute_pass_rate().value == pytest.approx(4 / 8)  # the four untouched clips
    proto = m.protocol()
    assert proto["metric"] == "physics" and proto["n"] == 8 and "tolerances" in proto and "tracker" in proto
    # Float videos in [0, 1] (the library's layout) give the same scores as uint8.
    f = PhysicsPlausibility()
    for b in PHYSICS_CASE.batches:
        f.update(b.args[0].float() / 255.0, b.args[1], fps=8.0)
    assert torch.equal(f.compute(), m.compute())


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_physics_metric_bad_input():
    m = PhysicsPlausibility()
    video, prompts = _batch([make_clip("test", 0, 0)])
    with pytest.raises(ValueError, match="clip 0 of the batch.*not a world prompt"):
        m.update(video, ["a dog"], fps=8.0)
    with pytest.raises(ValueError, match="1 videos"):
        m.update(video, prompts * 2, fps=8.0)
    with pytest.raises(RuntimeError):
        PhysicsPlausibility().compute()
    m.update(video, prompts[0], fps=[8.0])  # one prompt for the batch is fine
    assert m.compute().item() == 1.0


# ------------------------------------------------------------------------------------------------
# Physics-IQ motion-mask metrics on real footage


@pytest.fixture(scope="module")
def carphone(real_videos_dir):
    """Two 'takes' of one event: the pristine and the heavily compressed carphone (60 frames)."""
    return (read_video(real_videos_dir / "carphone_pristine.mp4", max_frames=120).frames,
            read_video(real_videos_dir / "carphone_distorted.mp4", max_frames=120).frames)


def test_motion_masks_follow_motion(carphone):
    take1, _ = carphone
    masks = motion_masks(take1[:60])
    assert masks.shape == take1[:60].shape[:3] and not masks[0].any()
    # The talking head moves (13% of the pixels at some time), the car's interior does not.
    assert 0.002 < masks[1:].mean() and 0.05 < masks.any(0).mean() < 0.5
    assert not motion_masks(np.repeat(take1[:1], 10, axis=0)).any()


def test_physics_iq_scores_real_takes_at_the_physical_variance(carphone):
    """Measured: the second take scores 100 (it *is* the variance); a later segment of the same
    footage 39, the first frame frozen 31, the take shifted 8 px sideways 65, shuffled 40."""
    p, d = carphone
    take1, take2 = p[:60], d[:60]
    real = physics_iq_score(take2, take1, take2)
    assert real["score"] == pytest.approx(100.0)
    assert real["metrics"] == real["variance"]
    assert 0.3 < real["variance"]["spatial_iou"] < 1.0 and real["variance"]["mse"] > 0
    candidates = {"later": p[60:120], "frozen": np.repeat(take1[:1], 60, axis=0),
                  "shifted": np.roll(take1, 8, axis=2),
                  "shuffled": take1[np.random.default_rng(0).permutation(60)]}
    for name, video in candidates.items():
        assert physics_iq_score(video, take1, take2)["score"] < 80, name
    frozen = motion_mask_metrics(candidates["frozen"], take1)
    # Frames where neither moves count as IoU 1 (Physics-IQ's convention): hence ~0.45, not 0.
    assert frozen["spatial_iou"] == 0.0 and frozen["weighted_spatial_iou"] == 0.0
    assert frozen["spatiotemporal_iou"] < real["variance"]["spatiotemporal_iou"]
    with pytest.raises(ValueError, match="differ in size"):
        motion_mask_metrics(take1[:, :64], take1)


def test_laws_a_clip_cannot_show_are_not_testable_rather_than_failed():
    """The world's own renders failed the probes at sizes and lengths `world render` accepts: a
    3-frame slide cannot show its slowing (0 of 9 passed), and an object under 2 px across cannot
    be followed (permanence failed at 8 px), so the ceiling read 0.2-0.7 (session 33)."""
    from evalkit.metrics.physics import physics_probe
    from evalkit.world import WorldConfig, make_clip

    slides = [c for c in (make_clip("test", i, 3, WorldConfig(frames=3, size=32)) for i in range(40))
              if c.meta["record"]["scene"]["kind"] == "slide"]
    assert slides and all(physics_probe(c.frames, c.meta["record"]["prompt"], fps=c.fps)["physics_laws"]
                          ["friction_slows"] is None for c in slides)
    tiny = [make_clip("test", i, 3, WorldConfig(frames=16, size=8)) for i in range(12)]
    laws = [physics_probe(c.frames, c.meta["record"]["prompt"], fps=c.fps)["physics_laws"] for c in tiny]
    assert all(law["permanence"] in (None, True) for law in laws) and any(law["permanence"] is None for law in laws)
    long = [c for c in (make_clip("test", i, 3, WorldConfig(frames=16, size=32)) for i in range(40))
            if c.meta["record"]["scene"]["kind"] == "slide"]
    assert all(physics_probe(c.frames, c.meta["record"]["prompt"], fps=c.fps)["physics_laws"]["friction_slows"]
               is True for c in long)  # a full-length slide is still judged
