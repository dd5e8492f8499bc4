"""One caption per scene, from its attributes: what CLIP alignment and the generator read."""

from __future__ import annotations

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
