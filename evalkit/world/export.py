"""Render a world split to a folder of MP4 clips with its index.jsonl."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from evalkit.clipset import ClipFolderWriter
from evalkit.world.clips import WorldConfig, make_clip


def render_folder(out, *, split: str = "test", n: int = 32, seed: int = 0,
                  config: WorldConfig = WorldConfig(), crf: int = 18, progress: bool = True,
                  replace: bool = False) -> list[dict]:
    """Write clips 0..n-1 of `split` (base `seed`) to `out`; returns the index records."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    with ClipFolderWriter(Path(out), crf=crf, replace=replace) as writer:
        bar = tqdm(range(n), desc=f"world {split}", unit="clip", disable=None if progress else True)
        for i in bar:
            clip = make_clip(split, i, seed, config)
            record = clip.meta["record"]
            if crf != 18:  # the encode decides the pixels too: a clip's line must re-derive it (session 33)
                record = {**record, "crf": crf}
            writer.add(clip, record)
    return writer.records
