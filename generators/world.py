"""The world as a generator (the real-data ceiling of a benchmark) and the control generators
whose scores every metric must get right: frozen frames, shuffled frames and pure noise."""

from __future__ import annotations

import numpy as np

from evalkit.clip import Clip
from evalkit.errors import BadInputError
from evalkit.world import WorldConfig, make_clip_for_prompt
from evalkit.world.captions import caption_problem, read_caption


class WorldGenerator:
    """Renders world-grammar prompts exactly (`evalkit.world.make_clip_for_prompt`)."""

    spec = "world"

    def __init__(self, config: WorldConfig = WorldConfig()):
        self.config = config

    def protocol(self) -> dict:
        return {"model": self.spec, "weights_sha256": None, "sampler": "render", "steps": 0,
                "guidance": 0.0, "guidance_convention": None}

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Clip]:
        out = []
        for p, s in zip(prompts, seeds):
            try:
                out.append(make_clip_for_prompt(p, s, self.config))
            except ValueError:
                read = read_caption(p)
                why = caption_problem(read) if read else None
                raise BadInputError(f"model world: {p!r} is not a world prompt"
                                    + (f": {why}" if why else "; the world renders only its own grammar (see "
                                       "`evalkit world render` index prompts)")) from None
        return out


CONTROLS = ("noise", "frozen", "shuffled")


class ControlGenerator:
    """control:frozen (the world clip's first frame held), control:shuffled (its frames in a
    random order), control:noise (uniform noise frames)."""

    def __init__(self, kind: str, config: WorldConfig = WorldConfig()):
        if kind not in CONTROLS:
            raise BadInputError(f"control:{kind}: unknown control; choose one of {', '.join(CONTROLS)}")
        self.kind, self.config = kind, config
        self.spec = f"control:{kind}"
        self.world = WorldGenerator(config)

    def protocol(self) -> dict:
        return {**self.world.protocol(), "model": self.spec, "sampler": f"control-{self.kind}"}

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Clip]:
        out = []
        for p, s in zip(prompts, seeds):
            rng = np.random.default_rng([s, 11])
            c = self.config
            if self.kind == "noise":
                frames = rng.integers(0, 256, (c.frames, c.size, c.size, 3), dtype=np.uint8)
                out.append(Clip(frames, fps=c.fps, prompt=p))
                continue
            base = self.world.generate([p], [s])[0]
            if self.kind == "frozen":
                frames = np.repeat(base.frames[:1], base.num_frames, axis=0)
            else:
                frames = base.frames[rng.permutation(base.num_frames)]
            out.append(Clip(np.ascontiguousarray(frames), fps=base.fps, prompt=p))
        return out
