"""The generator families' config registries share two checks: a config read back from a
checkpoint has only known fields (tuples stored as JSON lists come back as tuples), and a preset
is looked up by name with validated overrides. Each family keeps its own dataclass and PRESETS.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from evalkit.errors import BadInputError

C = TypeVar("C")


def config_from_dict(cls: type[C], d: dict, family: str) -> C:
    """`cls(**d)` after refusing unknown fields by name; fields whose default is a tuple get
    their stored list back as a tuple (JSON has no tuples; frozen configs must stay hashable)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise BadInputError(f"{family} config: unknown fields {unknown} (checkpoint from a newer version?)")
    d = dict(d)
    for k, v in d.items():
        if isinstance(v, list) and isinstance(fields[k].default, tuple):
            d[k] = tuple(v)
    return cls(**d)


def lookup_preset(presets: dict[str, C], name: str, family: str, overrides: dict, prefix: str = "") -> C:
    """The preset `name` (also accepted as `prefix + name`) with `overrides` replaced; an unknown
    preset lists the known ones, an unknown field lists the known fields."""
    key = name.removeprefix(prefix) if prefix else name
    if key not in presets:
        raise BadInputError(f"unknown {family} preset {name!r}; choose one of "
                            f"{sorted(prefix + k for k in presets)}")
    base = presets[key]
    known = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise BadInputError(f"unknown {family} config fields {unknown}; known: {sorted(known)}")
    return dataclasses.replace(base, **overrides)
