"""The clip shape a bench run asks a model for, and the shape it got.

A diffusers pipeline makes its own default shape unless asked (Wan: 81 frames of 480x832, far off
a suite's 16 of 32x32, and slow); `bench run --frames/--size/--fps` ask it, each a value or
`suite` (the suite's `video:` format). Only diffusers models take them: the world and its controls
render in the suite's format (the reference is rendered in it), a U-ViT makes its training's
shape, a folder its files'. What was asked is in the generator's protocol, and so in the run key
and the clip store's key (a run at another size never reuses the old size's clips); where each
value came from (`suite`, the option, or the model's own) and what the clips are go in the run's
params (`shape_asked`, `shape_made`); each clip's record gives the frames, size and fps it has,
with `frames_requested` (etc.) beside where the pipeline made another; a pipeline that makes more
frames than asked (CogVideoX asked 5 makes 8) has its first frames asked kept, `frames_made` said.
"""

from __future__ import annotations

import json

from evalkit.errors import BadInputError

SHAPE_KEYS = ("frames", "size", "fps")
SUITE = "suite"  # the value that asks for the suite's own format
SHAPED_KINDS = ("diffusers:",)  # the model specs that take a clip shape in a bench run


def resolve_shape(suite, spec: str, options: dict) -> tuple[dict, dict, dict]:
    """(generator options with `suite` values replaced by the suite's format, the shape asked,
    where each part came from: "suite", "option" or "model")."""
    given = {k: options[k] for k in SHAPE_KEYS if options.get(k) is not None}
    if given and not spec.startswith(SHAPED_KINDS):
        raise BadInputError(f"--{'/--'.join(given)}: only diffusers models take a clip shape in a bench run; "
                            f"{spec} {_own_shape(spec)}")
    v = suite.video
    from_suite = {"frames": v["frames"], "size": (v["size"], v["size"]), "fps": float(v["fps"])}
    if spec == "world" or spec.startswith("control:"):  # rendered in the suite's format, always
        return dict(options), {k: from_suite[k] for k in SHAPE_KEYS}, dict.fromkeys(SHAPE_KEYS, SUITE)
    out = dict(options)
    by_suite = [k for k, value in given.items() if isinstance(value, str) and value.strip().lower() == SUITE]
    for k in by_suite:
        out[k] = from_suite[k]
    if set(by_suite) & {"size", "frames"}:  # the generator's error names the option as given
        out["asked_as"] = {k: f"--{k} suite: the suite's video.{k}" for k in by_suite if k != "fps"}
    asked = {k: out.get(k) for k in SHAPE_KEYS}
    origin = {k: SUITE if k in by_suite else "option" if k in given else "model" for k in SHAPE_KEYS}
    return out, asked, origin


def _own_shape(spec: str) -> str:
    if spec == "world" or spec.startswith("control:"):
        return "renders in the suite's video format"
    if spec.startswith("folder:"):
        return "is its files' shape"
    return "makes the shape it was trained on"


def shape_params(proto: dict, asked: dict, origin: dict) -> dict:
    """The run's `shape_asked` params: each of frames, size and fps as asked (where the model's
    own, the value its protocol names, if any) and where it came from."""
    values = {k: asked.get(k) if asked.get(k) is not None else proto.get(k) for k in SHAPE_KEYS}
    if isinstance(values["size"], tuple):
        values["size"] = list(values["size"])
    return {**values, "from": origin}


def _distinct(records: list[dict], key: str) -> list:
    return [json.loads(v) for v in dict.fromkeys(json.dumps(r.get(key)) for r in records)]


def made_shape(records: list[dict]) -> dict:
    """What the clips are: each of frames, size and fps, or the list of the values they have."""
    out = {}
    for key in SHAPE_KEYS:
        values = _distinct(records, key)
        out[key] = values[0] if len(values) == 1 else values
    return out


def bundle_generation(proto: dict, records: list[dict]) -> dict:
    """The protocol as the bundle states it: where the clips are not the shape asked (CogVideoX
    asked 5 frames makes 8), the shape they are, and what was asked as `KEY_requested`, as every
    clip's index record has it (`bench verify` compares the two). A part the clips differ in
    among themselves is left out."""
    out = dict(proto)
    for key in SHAPE_KEYS:
        if key in proto and any(f"{key}_requested" in r for r in records):
            out[f"{key}_requested"] = out.pop(key)
            values = _distinct(records, key)
            if len(values) == 1:
                out[key] = values[0]
    return out
