"""Does the soft-binding registry's picture check tell a marked video's copies from forgeries?

    python benchmarks/robustness/soft_binding.py [--sizes 64,128,256]

Genuine: world clips (the robustness grid's) and two footage clips, marked, each thumbnail
registered (`evalkit.provenance.registry`), then attacked as a viewer's copy would be; each copy
is read by `detect`, and compared with its registration in the view and crop its mark was read
in (as `verify` does). Forged: the exact mark of each world clip (marked - original) laid on a
grey card and a gradient of its size (`watermark_forgery.targets`); those that read with the
source's payload are compared with the source's registration. Counts of match / uncertain /
different per attack, and the forged list, on stdout.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from benchmarks.robustness import attacks  # noqa: E402
from benchmarks.robustness import watermark as grid  # noqa: E402
from benchmarks.robustness import watermark_forgery as forgery  # noqa: E402
from evalkit.provenance import registry  # noqa: E402
from evalkit.provenance import watermark as wm  # noqa: E402
from evalkit.provenance import wm_grid as geo  # noqa: E402

ATTACKS = {**{k: attacks.ATTACKS[k] for k in ("h264_crf30", "h264_crf40", "resize_0.5", "crop_0.8", "brightness_0.8",
                                           "contrast_1.2", "mirror", "letterbox+h264_crf23", "greyscale")},
           **{k: attacks.EXTRA_ATTACKS[k] for k in ("rotate_90+h264_crf23", "jpeg50", "caption+logo+h264_crf23",
                                                 "noise_sigma25", "gaussian_blur_sigma1.5")},
           **{k: attacks.CROP_ATTACKS[k] for k in ("corner_crop_0.8+h264_crf23", "side_crop_0.7")}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,128,256")
    a = ap.parse_args(argv)
    key, wd = wm.make_key(b"soft-binding study"), tempfile.mkdtemp()
    atexit.register(shutil.rmtree, wd, True)  # (it was left behind)
    genuine, forged = collections.defaultdict(list), []
    for size in (int(s) for s in a.sizes.split(",")):
        clips = grid.world_clips(6 if size < 256 else 4, size, 0)
        if size == 256:
            clips += grid.real_clips({"bikes.mp4": (0,), "carphone_pristine.mp4": (0,)})
        targets = {k: v for k, v in forgery.targets(size).items() if k in ("grey still", "gradient")}
        for _, name, f, fps in clips:
            marked = wm.embed(f, b"\x11" * 8, key)
            ref = registry.thumbnail(geo.mean_frame(marked))
            for att, fn in ATTACKS.items():
                x = fn(marked, fps, wd)
                d = wm.detect(x, key)
                c = registry.compare(ref, *registry.picture_as_read(x, d.geometry if d.detected else None))
                genuine[att].append((c["content"], name))
            if name.startswith("world"):
                pattern = marked.astype(np.int16) - f.astype(np.int16)
                for tname, t in targets.items():
                    n = min(len(t), len(pattern))
                    fake = np.clip(t[:n].astype(np.int16) + pattern[:n], 0, 255).astype(np.uint8)
                    d = wm.detect(fake, key)
                    if d.payload == b"\x11" * 8:
                        c = registry.compare(ref, *registry.picture_as_read(fake, d.geometry))
                        forged.append((name, tname, c["content"], c["why"]))
            print(f"  {name} done", file=sys.stderr, flush=True)
    print("| attack (genuine copies) | match | uncertain | different |\n| --- | --- | --- | --- |")
    for att, rows in genuine.items():
        n = collections.Counter(r[0] for r in rows)
        print(f"| {att} | {n['match']} | {n['uncertain']} | {n['different']} |")
    n = collections.Counter(r[2] for r in forged)
    print(f"\nForged copies read with the source's payload: {len(forged)}; match {n['match']}, "
          f"uncertain {n['uncertain']}, different {n['different']}")
    for r in forged:
        print("  " + " | ".join(r))
    return 0


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
