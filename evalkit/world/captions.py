"""One caption per scene, from its attributes: what CLIP alignment and the generator read."""

from __future__ import annotations

import re

from evalkit.world.spec import Scene

_BACKGROUND = {
    "dark": "on a dark background",
    "light": "on a light background",
    "gradient": "on a gradient background",
    "noise": "on a textured background",
}
# (singular, plural) verb phrases per scene kind
_MOTION = {
    "fall": ("falls and bounces on the floor", "fall and bounce on the floor"),
    "throw": ("is thrown and bounces across the floor", "are thrown and bounce across the floor"),
    "slide": ("slides and slows down", "slide and slow down"),
    "collide": ("collide", "collide"),
    "static": ("rests still", "rest still"),
}


def describe_object(shape: str, color: str, size_name: str) -> str:
    return f"a {size_name} {color} {shape}"


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def caption(scene: Scene) -> str:
    """'a small red ball and a large blue square fall and bounce on the floor, on a dark background'."""
    names = [describe_object(o.shape, o.color, o.size_name) for o in scene.objects]
    singular, plural = _MOTION[scene.kind]
    verb = singular if len(names) == 1 else plural
    return f"{_join(names)} {verb}, {_BACKGROUND[scene.background]}"


_BACKGROUND_BY_PHRASE = {v: k for k, v in _BACKGROUND.items()}
_OBJECT = re.compile(r"a (small|medium|large) (\w+) (ball|square)")


def parse_caption(text: str) -> dict | None:
    """The inverse of `caption` for world prompts: {"kind", "background", "objects": [(shape,
    colour, size_name), ...]}, or None when `text` is not in the world's grammar. The grammar
    holds what the world can draw: a kind's number of objects (one thrown, two colliding; a
    "collision" of one body once passed the physics probe as a still picture)."""
    parsed = read_caption(text)
    return parsed if parsed is not None and caption_problem(parsed) is None else None


def caption_problem(parsed: dict) -> str | None:
    """Why a prompt read by `read_caption` is no scene the world draws, or None."""
    from evalkit.world.scenes import object_count_range

    kind, objects = parsed["kind"], parsed["objects"]
    low, high = object_count_range(kind)
    if not low <= len(objects) <= high:
        holds = f"{low} object" if low == high == 1 else f"{low} objects" if low == high else f"{low} to {high} objects"
        return f"a {kind} scene holds {holds}, the prompt names {len(objects)}"
    return None


def read_caption(text: str) -> dict | None:
    """`parse_caption` without the world's rule on object counts: what the words
    say, or None when they are not the grammar's words."""
    from evalkit.world.spec import COLORS

    # as other tools' prompt lists write it: a sentence's full stop, quotes around it
    text = " ".join(text.strip().strip("\"'“”").strip().rstrip(".!").lower().split())
    body, sep, bg_phrase = text.rpartition(", ")
    if not sep or bg_phrase not in _BACKGROUND_BY_PHRASE:
        return None
    for kind, (singular, plural) in _MOTION.items():
        for verb in (singular, plural):
            if body.endswith(" " + verb):
                names = body[: -len(verb) - 1]
                objects = [m.groups() for m in _OBJECT.finditer(names)]
                rebuilt = _join([f"a {s} {c} {sh}" for s, c, sh in objects]) if objects else ""
                if rebuilt != names or any(c not in COLORS for _, c, _ in objects):
                    return None
                return {"kind": kind, "background": _BACKGROUND_BY_PHRASE[bg_phrase],
                        "objects": [(sh, c, s) for s, c, sh in objects]}
    return None
