"""Physics probes: do the objects a world prompt names obey the laws of its scene?

Track each named object (`tracking_objects.track_objects`: colour segmentation, components,
sub-pixel centroids and areas), then test the laws of the prompt's scene kind, each True, False or
None (not applicable, or not enough evidence: the object is found in too few frames):

| law | kinds | passes when |
| --- | --- | --- |
| `permanence` | all | every named object is seen in >= 90% of the frames it is in view (found as itself, or followed through a change of its colour or size; frames where it entered or left through a frame edge do not count), and never vanishes mid-clip for 2+ frames in a row |
| `constant_size` | all | no run of frames has a median area off the rest's (`size_change`), beyond codec noise, in both its chroma mass and its extent (light changes the mass only) |
| `constant_colour` | all | the blob at each object's place keeps the prompted colour in every frame |
| `no_teleport` | all | no step exceeds the kind's top speed, and no velocity change exceeds gravity and friction unless a surface pushing that way can have been touched (floor up, walls in, the other body away) with a world restitution |
| `constant_downward_acceleration` | fall, throw | the flight segments (split where a bounce can hide, ground contact and rests on a drawn support dropped; the floor is the bottom edge, or the track's lowest point where a surface is drawn under its bounces: `physics_floor`) are parabolas of one positive (downward) acceleration |
| `bounce_heights_non_increasing` | fall, throw | the apex heights of successive arcs never grow |
| `friction_slows` | slide | each object slides, along a path whose speed never rises, and ends slower or at rest |
| `momentum_conserved` | collide | the bodies meet, and the centre of mass (mass = measured area) moves at one velocity before and after the contact |
| `at_rest` | static | no object moves beyond sub-pixel noise, relative to the camera's motion where objects move more (`physics_camera`) |

The probe reads the picture as well as the tracks (`physics_picture.Picture`): a bounce above
the frame's bottom edge needs a surface drawn under it (a floor line or a change of colour),
else it is a kick in mid-air; no_teleport and the fits allow a shaking camera's jitter, the
position noise every object's track shares with the others and with a textured background
(`physics_limits.camera_jitter_px`, from 23+ frames); at_rest takes out a zoom, measured on the
background or from the objects' sizes together (`physics_camera`).

Each violation is charged to its own law. An object that turns another colour or size is still
the same object (the tracker follows it by the continuity of its motion, from frames where it is
itself): permanence holds and the kinematic laws keep their evidence, while constant_colour or
constant_size fails. A single jump is no_teleport's: when taking one jump out of each object's
track leaves a track no_teleport passes, the motion laws (acceleration, bounces, friction,
momentum, rest) judge the track with it taken out, so that a teleported fall is still a
parabola on either side; a second jump, a shuffle or a bounce that gains energy is not one jump,
and they see the track as it is (`physics_jumps.without_one_jump`).

A clip's `physics_score` is the fraction of its applicable (non-None) laws that pass, and
`physics_pass` whether all of them do. `permanence` is always applicable, so a clip in which the
objects cannot be found (pure noise, a blank frame) scores 0 and fails: the kinematic laws are
then None, never a vacuous True. A scene's own motion law is False (not None) when the prompted
motion is absent although the objects are there: a frozen fall has no flight, a frozen slide does
not slide, a frozen collision has no contact.

What the laws cannot see, by design (see the tests): time reversal preserves the parabola's
curvature (a reversed fall still accelerates downward: it is caught by its *growing* bounce
heights), and preserves momentum (a reversed collision conserves it; only its restitution > 1
betrays it, which no law here tests); a frozen or shuffled *static* clip is a valid static scene.

Tolerances (`PhysicsTolerances`) are in pixels and were calibrated on the world's own clips
(train, test and ood splits; clean, H.264 at CRF 18 and 30, sensor noise 3; 32 and 64 px) and on
the controls of `control_clip`: clean, CRF 18 and noisy world clips pass every law in >= 99.7%
of clips, the controls fail the law they break (tests/metrics/test_metric_physics.py). H.264 at
CRF 30 on 32-pixel frames is the stress case: a small object there is 4 pixels wide and its
chroma a couple of quantised coefficients; each law still passes in >= 92% of world clips.

Also here: `object_presence` (the generator's quality target: the prompted object as one compact
blob of its colour and size, and falling objects moving down). The controls that break each law
are in `physics_controls`, the Physics-IQ motion-mask metrics in `physics_iq` (both re-exported).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Sequence

import numpy as np
import torch

from evalkit.metrics.base import PerClipMetric, as_frames, synced, videos_to_uint8
from evalkit.metrics.stats import Estimate, proportion_ci
from evalkit.metrics.tracking_objects import DEFAULT_TRACKER, TrackerConfig, track_objects
from evalkit.metrics.physics_laws import (  # noqa: F401  (re-exported)
    COMMON_LAWS, LAWS, LAWS_BY_KIND, physics_laws, probe_spec, score_laws, size_change,
)
from evalkit.metrics.physics_picture import Picture
from evalkit.metrics.physics_limits import (  # noqa: F401  (re-exported)
    DEFAULT_TOLERANCES, PhysicsTolerances, max_speed,
)


def physics_probe(frames, prompt, fps: float = 8.0, *, tolerances: PhysicsTolerances = DEFAULT_TOLERANCES,
                  tracker: TrackerConfig = DEFAULT_TRACKER, details: bool = False) -> dict:
    """Test the laws of a world prompt's scene on uint8 frames [T, H, W, 3] played at `fps`.

    `prompt`: a world prompt, or a probe spec {"kind", "objects": [(shape, colour, size_name)]}.
    Returns {"physics_score": float in [0, 1], "physics_pass": bool, "physics_laws": {law: bool|None},
    "kind": str} (+ "tracks" and "diagnostics" with details=True). Not a world prompt: ValueError.
    """
    f = as_frames(frames, min_frames=3)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    spec = probe_spec(prompt)
    tracks = track_objects(f, spec["objects"], tracker)
    laws, diag = physics_laws(tracks, spec["kind"], float(fps), f.shape[1:3], f.shape[0], tolerances,
                              Picture(f, tracks))
    score, passed = score_laws(laws)
    out = {"physics_score": float(score), "physics_pass": bool(passed), "physics_laws": laws,
           "kind": spec["kind"]}
    if details:
        out["tracks"], out["diagnostics"] = tracks, diag
    return out


# ------------------------------------------------------------------------------------------------
# object presence: the generator's quality target


def object_presence(frames, prompt, *, tracker: TrackerConfig = DEFAULT_TRACKER,
                    min_drop_px: float | None = None) -> dict:
    """Per named object, the fraction of frames in which it is one compact blob of its colour and
    about its size (`tracking_objects`: compact, holding most of that colour, area within
    [0.5, 2] of the expected), and for fall prompts whether each falling object moves down.

    Returns {"kind", "objects": [{"shape", "color", "size_name", "presence", "found": [bool]*T,
    "misses": [str]*T (`ObjectTrack.misses`)}],
    "min_presence": the smallest presence, "moves_down": bool | None}. `moves_down` (fall only; None
    for other kinds or when an object is found in fewer than 3 frames) is True when every object's
    first clear move (half of `min_drop_px` away from where it is first seen) is downward and it
    gets at least `min_drop_px` lower than that (default: a tenth of the frame height; world falls
    drop at least a third of it, and high-restitution ones bounce back almost as high).
    """
    f = as_frames(frames, min_frames=1)
    spec = probe_spec(prompt)
    tracks = track_objects(f, spec["objects"], tracker)
    t, h = f.shape[0], f.shape[1]
    drop = 0.1 * h if min_drop_px is None else float(min_drop_px)
    moves_down = None
    if spec["kind"] == "fall" and t >= 3:
        verdicts = []
        for tr in tracks:
            y = tr.centroid[tr.found, 1]
            if len(y) < 3:
                verdicts = None
                break
            start = float(np.median(y[:2]))
            away = np.nonzero(np.abs(y - start) >= drop / 2)[0]  # its first clear move ...
            verdicts.append(bool(len(away) and y[away[0]] > start and y.max() - start >= drop))  # ... is down
        moves_down = None if verdicts is None else all(verdicts)
    objects = [{"shape": tr.shape, "color": tr.color, "size_name": tr.size_name, "presence": tr.presence,
                "found": tr.found.tolist(), "misses": tr.misses(tracker).tolist()} for tr in tracks]
    return {"kind": spec["kind"], "objects": objects,
            "min_presence": min(o["presence"] for o in objects), "moves_down": moves_down}


# ------------------------------------------------------------------------------------------------
# torchmetrics class


def _as_list(x, n: int, name: str, one_for_all: bool = True) -> list:
    """One value for all n videos (where `one_for_all`), or one per video: a sequence, or a 1-D
    tensor or array (what a DataLoader's collate makes of per-sample values)."""
    if isinstance(x, (torch.Tensor, np.ndarray)):
        if x.ndim > 1:
            raise ValueError(f"{name}: expected one value or a 1-D sequence, got shape {tuple(x.shape)}")
        x = x.tolist()
    if isinstance(x, (str, dict)) or not isinstance(x, Sequence):
        x = [x] * n if one_for_all else [x]
    if len(x) != n:
        raise ValueError(f"got {len(x)} {name} for {n} videos; give one per video"
                         + (" (or one for all)" if one_for_all else ""))
    return list(x)


class PhysicsPlausibility(PerClipMetric):
    """Mean `physics_score` over clips, with per-law pass rates; `update(videos, prompts, fps=8.0)`.

    videos: float [B, T, 3, H, W] in [0, 1] (or uint8 of that layout); prompts: one world prompt or
    probe spec per video (a count mismatch is a ValueError); fps: one number or one per video. States (float64): the base class's
    `total`/`count`/`values` (per-clip scores), `law_pass`/`law_n` [L] (passes and decided clips
    per law, in `LAWS` order) and `n_pass` (clips passing every law), all DDP "sum" but `values`.
    A prompt outside the world's grammar is a ValueError at `update`.
    """

    higher_is_better = True
    value_bounds = (0.0, 1.0)

    def __init__(self, tolerances: PhysicsTolerances = DEFAULT_TOLERANCES,
                 tracker: TrackerConfig = DEFAULT_TRACKER, **kwargs: Any) -> None:
        super().__init__(group_config=dict(tolerances=tolerances, tracker=tracker), **kwargs)
        self.tolerances, self.tracker = tolerances, tracker
        self.add_state("law_pass", default=torch.zeros(len(LAWS), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("law_n", default=torch.zeros(len(LAWS), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n_pass", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, videos, prompts, fps=8.0) -> None:  # type: ignore[override]
        clips = videos_to_uint8(videos)  # [B, T, H, W, 3]
        # one per video, as CLIPAlignment takes them: a lone prompt for a batch of several was
        # applied to each (a prompt list cut short would have tested clips against another's prompt)
        prompts = _as_list(prompts, len(clips), "prompts", one_for_all=False)
        rates = _as_list(fps, len(clips), "fps values")
        scores, law_pass, law_n, n_pass = [], torch.zeros_like(self.law_pass), torch.zeros_like(self.law_n), 0
        for i, (clip, prompt, rate) in enumerate(zip(clips, prompts, rates)):
            try:
                r = physics_probe(clip, prompt, float(rate), tolerances=self.tolerances, tracker=self.tracker)
            except ValueError as e:
                raise ValueError(f"PhysicsPlausibility: clip {i} of the batch: {e}") from None
            scores.append(r["physics_score"])
            n_pass += r["physics_pass"]
            for law, v in r["physics_laws"].items():
                if v is not None:
                    k = LAWS.index(law)
                    law_n[k] += 1
                    law_pass[k] += float(v)
        v = torch.tensor(scores, dtype=torch.float64)
        self.total += v.sum()
        self.count += v.numel()
        self.values.append(v)
        self.law_pass += law_pass
        self.law_n += law_n
        self.n_pass += n_pass

    def score_clip(self, frames: np.ndarray) -> float:  # pragma: no cover - needs the prompt
        raise TypeError("PhysicsPlausibility needs the prompt: call update(videos, prompts, fps=...)")

    @synced
    def compute_laws(self, confidence: float = 0.95) -> dict[str, Estimate]:
        """{law: Wilson interval of its pass rate over the clips where it was decided}."""
        out = {}
        for k, law in enumerate(LAWS):
            n = int(self.law_n[k])
            if n:
                out[law] = proportion_ci(int(self.law_pass[k]), n, confidence)
        return out

    @synced
    def compute_pass_rate(self, confidence: float = 0.95) -> Estimate:
        """Wilson interval of the fraction of clips that pass every applicable law."""
        if self.count == 0:
            raise self._no_data("compute_pass_rate")
        return proportion_ci(int(self.n_pass), int(self.count), confidence)

    @synced
    def protocol(self) -> dict:
        return {"metric": "physics", "definition": "mean over clips of the fraction of the scene's laws "
                "passed (physics_score); per-law pass rates with Wilson intervals", "laws": list(LAWS),
                "tolerances": asdict(self.tolerances), "tracker": asdict(self.tracker),
                **self._base_protocol()}


from evalkit.metrics.physics_controls import CONTROLS, control_clip  # noqa: E402,F401  (re-exported)
from evalkit.metrics.physics_iq import (  # noqa: E402,F401  (re-exported)
    motion_mask_metrics, motion_masks, physics_iq_score,
)
