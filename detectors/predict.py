"""`evalkit detect`: files in, one verdict a file out.

Each row: {"file", "p_generated", "threshold", "decision", "detector", "protocol"} (DESIGN.md),
plus "error" (null, or the one-line reason a file could not be read). The protocol says what
was done to the clip to bring it to the detector's input (frames taken, padding, source size,
and `codec`: the H.264 round trip given to a lossless or uncompressed input, else null), and
`video_frames`, the frames the file holds (the header's count; counted from the packets where a
Matroska/WebM header lists none; null where neither can say): the verdict is on the first `frames`.
"""

from __future__ import annotations

from pathlib import Path

from detectors.data import codec_normalised
from detectors.features import to_protocol
from detectors.registry import load_detector
from evalkit.errors import EvalkitError


def detect_clip(det, clip) -> dict:
    clip, codec_note = codec_normalised(clip, det.protocol.frames)
    x, done = to_protocol(clip, det.protocol)
    done["codec"] = codec_note
    p = float(det.predict_batch(x[None])[0])
    done["out_of_domain"] = det.domain_note(clip)
    return {"p_generated": p, "threshold": det.threshold, "decision": det.decide(p, done["out_of_domain"]),
            "detector": {"name": det.name, "weights_sha256": getattr(det, "weights_sha256", None),
                         "families": [f.name for f in det.families], "combine": det.combine,
                         "calibration": det.calibration, "threshold_rule": det.threshold_rule,
                         "target_fpr": det.target_fpr, "real_below": det.real_below,
                         "expected_fpr_new_real": (det.info.get("calibration_set") or {}).get("expected_fpr_new_real"),
                         "calibration_warnings": det.info.get("calibration_warnings", [])},
            "protocol": {**det.protocol.describe(), **done}}


def scan_windows(det, path: Path, n_windows: int) -> list[dict]:
    """p(generated) of `n_windows` evenly spaced windows of the protocol's length across the whole
    video (the first among them), each judged as `detect` judges the first. The verdict stays the
    first window's (the threshold was calibrated on one window a clip: the largest of several
    would call more real videos generated); these say where else the video reads generated, e.g.
    generated footage spliced after a real lead-in. The video is read whole (up to the frame
    limit), reduced by a whole factor where it is over the decode budget."""
    import numpy as np

    from evalkit.video import VideoLimits, read_video, shrink_to_fit

    k = det.protocol.frames
    most = VideoLimits.from_env().max_frames  # a longer video: windows across its first `most` frames
    clip = read_video(path, max_frames=most, shrink=shrink_to_fit(path, max_frames=most))
    t = clip.num_frames
    starts = sorted({int(round(s)) for s in np.linspace(0, max(0, t - k), max(1, n_windows))})
    out = []
    for s in starts:
        r = detect_clip(det, clip.with_frames(clip.frames[s:s + k]))
        out.append({"frames": [s, min(t, s + k) - 1], "p_generated": r["p_generated"], "decision": r["decision"]})
    return out


def detect_files(files, name: str | None = None, windows: int = 1) -> list[dict]:
    """One row a file; `windows` > 1 adds `windows` (see `scan_windows`) to each row."""
    from evalkit.video import probe_video, read_video

    det = load_detector(name)  # a missing detector is one error for the whole command
    rows = []
    for f in files:
        row = {"file": str(f), "p_generated": None, "threshold": det.threshold, "decision": None,
               "detector": {"name": det.name}, "protocol": None, "error": None}
        try:
            # Only the frames the protocol uses are decoded: long videos stay cheap, and the row
            # says how much of the video that was (a verdict is on those frames, not the rest).
            clip = read_video(Path(f), max_frames=det.protocol.frames)
            row.update(detect_clip(det, clip))
            # the video's whole length, from its headers and packets, unchecked (a video over the
            # decode budget or the frame limit is judged on its first frames all the same): the
            # frames a player shows (Matroska/WebM hold no count, an edit list may cut some)
            from dataclasses import asdict

            from evalkit.video_facts import frame_timing, frames_shown

            head = asdict(probe_video(Path(f), check=False))
            row["protocol"]["video_frames"] = frames_shown({**head, **frame_timing(Path(f))})[0] or None
            if windows > 1:
                row["windows"] = scan_windows(det, Path(f), windows)
                # a video over the frame limit is scanned across its first frames only: said so
                row["windows_cover"] = [0, max(w["frames"][1] for w in row["windows"])]
        except EvalkitError as e:
            row["error"] = str(e)
            if not Path(f).exists():  # a path that is not there (or a link to nothing): exit 3, as in every command
                row["missing"] = True
        rows.append(row)
    return rows
