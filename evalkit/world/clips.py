"""World clips: from (split, index, seed) to a `Clip` with its index record, in memory.

Every clip is a pure function of its per-clip seed and split, so a dataset of any size needs
no storage, and any clip in an `index.jsonl` can be re-rendered from its `seed` field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalkit.clip import Clip, index_fps
from evalkit.world.captions import caption, caption_problem, parse_caption, read_caption
from evalkit.world.physics import trajectories
from evalkit.world.render import render
from evalkit.world.scenes import sample_scene, scene_for
from evalkit.world.spec import SPLITS, Scene


@dataclass(frozen=True)
class WorldConfig:
    frames: int = 16
    size: int = 32
    fps: float = 8.0
    noise: float = 0.0  # sensor noise std in 8-bit levels

    def __post_init__(self):
        if self.frames < 2:
            raise ValueError(f"frames must be at least 2, got {self.frames}")
        if self.size < 8:
            raise ValueError(f"size must be at least 8 pixels, got {self.size}")
        if not 0 < self.fps < float("inf"):
            raise ValueError(f"fps must be a positive finite number, got {self.fps}")
        if not 0 <= self.noise < float("inf"):  # nan passed as 0 and was written to the index as NaN
            raise ValueError(f"noise must be a finite number >= 0, got {self.noise}")


def clip_seed(seed: int, split: str, index: int) -> int:
    """The per-clip seed of clip `index` of `split` in a set drawn with base `seed`."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return int(np.random.SeedSequence([seed, SPLITS.index(split), index]).generate_state(1)[0])


def scene_record(scene: Scene, pos: np.ndarray, vel: np.ndarray, size: int) -> dict:
    """The `scene` object of an index.jsonl line: tracks in pixels, (0, 0) the centre of the
    top-left pixel (so a track equals the mean pixel index of the object), velocities in px/s."""
    objects = []
    for o, p, v in zip(scene.objects, pos, vel):
        track = [[round(x * size - 0.5, 3), round(y * size - 0.5, 3), 1] for x, y in p]
        objects.append({
            "shape": o.shape, "color": o.color, "rgb": list(o.rgb), "size": round(o.size * size, 3),
            "size_name": o.size_name, "track": track,
            "velocity": [[round(vx * size, 3), round(vy * size, 3)] for vx, vy in v],
        })
    return {
        "kind": scene.kind, "background": scene.background, "objects": objects,
        "physics": {"gravity": round(scene.gravity * size, 4), "restitution": round(scene.restitution, 4),
                    "friction": round(scene.friction * size, 4)},
        "ood": list(scene.ood),
    }


def make_clip_from_seed(seed: int, split: str, config: WorldConfig = WorldConfig(),
                        clip_id: str | None = None) -> Clip:
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, split, duration=config.frames / config.fps)
    return _render_scene(scene, seed, config, clip_id or f"{split}-{seed}")


def make_clip_for_prompt(prompt: str, seed: int, config: WorldConfig = WorldConfig(),
                         clip_id: str | None = None) -> Clip:
    """The world's own rendering of a world-grammar prompt (the real-data ceiling for a
    benchmark): a scene with exactly the prompted objects, kind and background."""
    parsed = parse_caption(prompt)
    if parsed is None:
        read = read_caption(prompt)
        raise ValueError(f"not a world prompt: {prompt!r}" + (f" ({caption_problem(read)})" if read else ""))
    rng = np.random.default_rng([seed, 7])
    scene = scene_for(rng, parsed["kind"], parsed["background"], parsed["objects"],
                      duration=config.frames / config.fps)
    return _render_scene(scene, seed, config, clip_id or f"prompt-{seed}")


def _render_scene(scene: Scene, seed: int, config: WorldConfig, clip_id: str) -> Clip:
    traj = trajectories(scene, config.frames, config.fps)
    frames = render(scene, traj.pos, config.size, np.random.default_rng([seed, 1]), config.noise)
    prompt = caption(scene)
    record = {
        "id": clip_id, "prompt": prompt, "seed": seed, "fps": index_fps(config.fps),
        "frames": config.frames, "size": [config.size, config.size], "split": scene.split,
        "scene": scene_record(scene, traj.pos, traj.vel, config.size),
    }
    if config.noise:
        record["noise"] = config.noise
    return Clip(frames=frames, fps=config.fps, prompt=prompt, meta={"record": record, "scene": scene})


def make_clip(split: str, index: int, seed: int = 0, config: WorldConfig = WorldConfig()) -> Clip:
    """Clip `index` of the `split` set drawn with base `seed`."""
    return make_clip_from_seed(clip_seed(seed, split, index), split, config,
                               clip_id=f"{split}-s{seed}-{index:05d}")
