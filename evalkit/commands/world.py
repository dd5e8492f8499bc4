"""`evalkit world render`: the embedded default data."""

from __future__ import annotations

from pathlib import Path

import click

from evalkit.safe_text import printable

from evalkit.commands.options import SEED, SPLIT, frame_rate, positive
from evalkit.errors import BadInputError


@click.group()
def world():
    """The procedural physics world: the embedded reference data."""


@world.command("render")
@click.argument("out", type=click.Path(readable=False, path_type=Path))
@click.option("--split", type=SPLIT, default="test", show_default=True)
@click.option("--n", type=int, default=32, show_default=True, callback=positive, help="Number of clips.")
@click.option("--frames", type=int, default=16, show_default=True, callback=positive)
@click.option("--size", type=int, default=32, show_default=True, callback=positive, help="Frame side in pixels.")
@click.option("--fps", type=float, default=8.0, show_default=True, callback=frame_rate)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--noise", type=float, default=0.0, show_default=True, help="Sensor noise std (8-bit levels).")
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True, help="H.264 quality.")
def world_render(out, split, n, frames, size, fps, seed, noise, crf):
    """Render N world clips of a split to OUT (clips/*.mp4 + index.jsonl)."""
    from evalkit.world import WorldConfig
    from evalkit.world.export import render_folder

    from evalkit.video import VideoLimits

    most = VideoLimits.from_env().max_frames
    if frames > most:  # written, it could not be read by any command
        raise BadInputError(f"--frames {frames}: over the {most} frames evalkit reads (EVALKIT_MAX_FRAMES)")
    if not 0 <= noise < float("inf"):
        raise BadInputError(f"--noise {noise}: give a finite sensor noise std of 0 or more (8-bit levels)")
    if out.exists() and not out.is_dir():
        raise BadInputError(f"{out}: is a file; OUT is the folder the clips go into")
    if size % 2:
        raise BadInputError(f"--size {size}: H.264 (yuv420p) needs an even frame size; use {size + 1}")
    try:
        config = WorldConfig(frames=frames, size=size, fps=fps, noise=noise)
    except ValueError as e:
        raise BadInputError(f"evalkit world render: {e}")
    records = render_folder(out, split=split, n=n, seed=seed, config=config, crf=crf)
    click.echo(f"wrote {len(records)} {split} clips ({frames} frames, {size}x{size}, {fps:g} fps) to {printable(out)}")


COMMANDS = [world]  # what `evalkit.cli` adds to the `evalkit` group
