"""`evalkit demo`, `info` and `probe`: the end-to-end run, the install, and what a video file holds."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evalkit import __version__
from evalkit.commands.options import SEED, positive
from evalkit.errors import EvalkitError


@click.command()
@click.option("--out", type=click.Path(readable=False, path_type=Path), default=Path("evalkit-demo"), show_default=True,
              help="Folder for the demo's clips and pictures (replaced on each run).")
@click.option("--n", type=int, default=32, show_default=True, callback=positive, help="Reference clips.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--n-generate", type=int, default=4, show_default=True, callback=positive,
              help="Clips the default generator makes, signs and watermarks (at least 2).")
@click.option("--max-prompts", type=int, default=8, show_default=True, callback=positive,
              help="Prompts of world-v1 the suite run takes (the first N, both parts in turn).")
def demo(out, n, seed, n_generate, max_prompts):
    """End-to-end on the embedded default: world, generator, scores, detector, verify, suite,
    leaderboard and HTML report; prints where the results are."""
    from evalkit.demo import run_demo

    result = run_demo(out, n=n, seed=seed, n_generate=n_generate, max_prompts=max_prompts, echo=click.echo)
    click.echo(result.summary())


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(as_json):
    """Version, machine, tracking store and home folder."""
    from evalkit.home import evalkit_home, git_commit, machine_info
    from evalkit.tracking import tracking_uri

    import os

    home = evalkit_home(create=False)  # a diagnosis: says where the home is, makes nothing
    above = next((a for a in home.parents if a.exists()), None)  # what a first write would make it in
    if home.is_dir():
        state = "exists" if os.access(home, os.W_OK) else "exists, not writable"
    elif home.exists() or home.is_symlink():
        state = "not a folder"
    elif above is None or not above.is_dir() or not os.access(above, os.W_OK):
        state = f"cannot be made ({above} is {'not a folder' if above and not above.is_dir() else 'not writable'})"
    else:
        state = "not made yet (made by the first command that writes)"
    data = {"version": __version__, "git_commit": git_commit(), "tracking_uri": tracking_uri(),
            "evalkit_home": str(home), "evalkit_home_state": state, "machine": machine_info()}
    click.echo(json.dumps(data, indent=2) if as_json else "\n".join(f"{k}: {v}" for k, v in data.items()))


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(readable=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file.")
def probe(files, as_json):
    """Read video headers: container, codec, size, fps, frames. Exit 2 if any file is bad."""
    from dataclasses import asdict, replace

    from evalkit.safe_text import printable  # a file name with a newline printed a forged line
    from evalkit.video import VideoLimits, probe_video
    from evalkit.video_facts import display_turn, frame_timing, frames_shown, picture_tags, video_stream_count

    failed = None
    limits = VideoLimits.from_env()
    for f in files:
        try:
            # Headers only: a video too big or too long to decode whole is still described (the
            # commands that decode read it reduced, or say why not), so the decode budget and the
            # frame limit are reported, not enforced.
            info = asdict(probe_video(f, limits=replace(limits.without_decode_budget(), max_frames=1 << 62)))
            info["path"] = str(info["path"])
            info["display_turn"] = display_turn(f)  # frames are read as shown: turned by this
            sar = picture_tags(f)["sample_aspect"]  # non-square pixels: players stretch the picture
            info["sample_aspect"] = f"{sar.numerator}:{sar.denominator}" if sar and sar != 1 else None
            info["display_width"] = round(info["width"] * sar) if sar and sar != 1 else info["width"]
            info.update(frame_timing(f))
            info["frames"], info["frames_from"] = frames_shown(info)
            info["over_decode_budget"] = info["frames"] * info["width"] * info["height"] * 3 > limits.max_decoded_bytes
            info["over_frame_limit"] = info["frames"] > limits.max_frames
            info["video_streams"] = video_stream_count(f)  # a second track is never read: said (session 33)
            row = {"file": str(f), "readable": True, "error": None, **info}
        except EvalkitError as e:
            row, failed = {"file": str(f), "readable": False, "error": str(e)}, e
        if as_json:
            click.echo(json.dumps(row))
        elif row["readable"]:
            frames = (f"{row['frames']} frames{_FRAMES_FROM_SAID[row['frames_from']]}" if row["frames"] else
                      "frame count not in the header")
            turn = f" (stored; shown {row['display_turn']})" if row["display_turn"] else ""
            if row["sample_aspect"]:
                turn += f" (pixels {row['sample_aspect']}: shown {row['display_width']}x{row['height']})"
            fps = row["fps"]
            ts = row["fps_from_timestamps"]
            rate = (f"{ts:.3f} fps (the header says {fps:.3f}; the frames' timestamps are used)"
                    if ts and fps and abs(ts - fps) > 0.1 * fps and not row["variable_frame_rate"]
                    else f"{fps:.3f} fps")
            timing = (f", variable frame rate (frames {row['interval_min'] * 1000:.0f}-"
                      f"{row['interval_max'] * 1000:.0f} ms apart)" if row["variable_frame_rate"] else "")
            if row["start_time"] and abs(row["start_time"]) >= 0.0005:
                timing += f", first frame at {row['start_time']:.3f} s"
            if row["over_decode_budget"]:
                timing += ", over the decode budget (read reduced: EVALKIT_MAX_DECODED_BYTES)"
            if row["over_frame_limit"]:
                timing += f", over the frame limit of {limits.max_frames} (EVALKIT_MAX_FRAMES)"
            if row["video_streams"] > 1:
                timing += f"; {row['video_streams']} video streams; using #0"
            click.echo(f"{printable(str(f))}: {printable(str(row['container']))} {printable(str(row['codec']))} "
                       f"{row['width']}x{row['height']}{turn} {rate} {frames}{timing}")
        else:
            click.echo(f"evalkit: error: {printable(row['error'])}", err=True)
    if failed is not None:
        raise click.exceptions.Exit(failed.exit_code)  # each error is already printed


_FRAMES_FROM_SAID = {"header": "", "header less cut": " (the edit list cuts some of the stored frames)",
                     "packets": " (counted; the header holds no count)", "duration": " (about; from the duration)",
                     None: ""}


COMMANDS = [demo, info, probe]  # what `evalkit.cli` adds to the `evalkit` group
