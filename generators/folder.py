"""`folder:DIR`: pre-made videos as a generator, matched to prompts by index.jsonl or file name.

With an index.jsonl, the k-th clip whose prompt equals the asked prompt answers sample k (equal
as `exact` folds them; else as `normalise` does, where that names one prompt only). Without
one, files are matched by name: "a red ball falls.mp4", "a_red_ball_falls-3.mp4" (sample 3). A
name's trailing number is ambiguous ("a_clock_showing_12.mp4": sample 12 of "a clock showing", or
the prompt "a clock showing 12"), so such a file also answers the whole name as a prompt, where no
video is named after that prompt otherwise.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from pathlib import Path

from evalkit.clip import Clip
from evalkit.clipset import INDEX, read_index, sample_number
from evalkit.errors import BadInputError, MissingResourceError
from evalkit.video import read_video, shrink_to_fit
from evalkit.video_facts import picture_tags


def normalise(text: str) -> str:
    """A prompt as matched loosely: Unicode-folded (NFKC, casefold), every run of what is not a
    letter or a digit, in any script, one space. ("A red-ball, falls!" and "a red ball falls" match;
    "一只蓝色方块" keeps its characters: it once became "" and shared one pool with every other
    prompt in a script outside a-z.)"""
    t = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", t).split())


def exact(text: str) -> str:
    """A prompt as matched first: folded (NFKC, casefold) with _ as a space and runs of spaces as
    one, every symbol kept, so that "a C++ programmer" and "a C# programmer", or "🐱 plays" and
    "🐶 plays", stay two prompts (the loose fold made them one pool: each got the other's clip)."""
    t = unicodedata.normalize("NFKC", text).casefold().replace("_", " ")
    return " ".join(t.split())


class _Pools:
    """Videos by exact prompt, found by the exact key first and by the loose one (`normalise`)
    when no exact key matches, only where that loose key names a single prompt."""

    def __init__(self):
        self.exact: dict[str, list[tuple[Path, dict]]] = defaultdict(list)
        self.loose: dict[str, set[str]] = defaultdict(set)

    def add(self, prompt: str, item: tuple[Path, dict]) -> None:
        self.exact[exact(prompt)].append(item)
        self.loose[normalise(prompt)].add(exact(prompt))

    def find(self, prompt: str, folder: Path) -> tuple[str | None, list]:
        key = exact(prompt)
        if key in self.exact:
            return key, self.exact[key]
        keys = sorted(self.loose.get(normalise(prompt), ()))
        if len(keys) > 1:
            names = " and ".join(repr(self.exact[k][0][1]["prompt"]) for k in keys[:2])
            raise BadInputError(f"{folder}: the prompt {prompt!r} matches the videos of {names} once symbols "
                                f"are ignored, and none exactly; name the prompt as one of them, or list the "
                                f"videos with their exact prompts in an {INDEX}")
        return (keys[0], self.exact[keys[0]]) if keys else (None, [])


class FolderGenerator:
    uses_seeds = False  # its videos are made: a record's seed would claim a choice nobody made

    def __init__(self, folder):
        self.folder = Path(folder)
        self.spec = f"folder:{folder}"
        if self.folder.exists() and not self.folder.is_dir():
            raise BadInputError(f"{self.folder}: is a file; folder: takes a folder of videos")
        if not self.folder.is_dir():
            raise MissingResourceError(f"{self.folder}: no such folder of videos; check the path")
        self.by_prompt = _Pools()
        self.by_whole_name = _Pools()  # number kept: "a clock showing 12"
        # with an index, its records; without, the folder's videos prompted by their names
        indexed = self.indexed = (self.folder / INDEX).is_file()
        taken: dict[tuple[str, int], str] = {}
        for rec in read_index(self.folder):
            key = exact(rec["prompt"])
            k = None if indexed or not key else sample_number(Path(rec["file"]).stem)
            if k is not None and (key, k) in taken:  # "x-0.mp4" and "x-0.webm": which is sample 0?
                raise BadInputError(f"{self.folder}: {taken[key, k]} and {rec['file']} are both sample {k} of "
                                    f"{rec['prompt']!r}; remove one, or list the samples in {INDEX}")
            if k is not None:
                taken[key, k] = rec["file"]
                whole = " ".join(Path(rec["file"]).stem.replace("_", " ").split())
                self.by_whole_name.add(whole, (self.folder / rec["file"], {**rec, "prompt": whole}))
            self.by_prompt.add(rec["prompt"], (self.folder / rec["file"], rec))
        self._served: dict[str, int] = defaultdict(int)  # videos handed out per prompt

    def protocol(self) -> dict:
        """The folder as the model; with an index whose records all name one model and setting (a
        folder `evalkit generate` or `generate_folder` wrote from a user's own model), those too,
        the model as `source_model`: benching such a folder kept none of it (session 32)."""
        proto = {"model": self.spec, "weights_sha256": None, "sampler": None, "steps": None,
                 "guidance": None, "guidance_convention": None}
        recs = [rec for pool in self.by_prompt.exact.values() for _, rec in pool] if self.indexed else []
        for key in ("model", "weights_sha256", "sampler", "steps", "guidance", "guidance_convention"):
            values = {repr(r.get(key)) for r in recs}
            if recs and len(values) == 1 and recs[0].get(key) is not None:
                proto["source_model" if key == "model" else key] = recs[0][key]
        return proto

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Clip]:
        """Seeds do not choose among pre-made videos; the k-th request for a prompt in this
        generator's life gets its k-th video."""
        out = []
        for p in prompts:
            key, have = self.by_prompt.find(p, self.folder)
            if not have:
                key, have = self.by_whole_name.find(p, self.folder)
                key = f"whole:{key}"
            if not have and set(self.by_prompt.exact) == {""}:  # 0000.mp4, ...: numbered after a prompt list
                raise BadInputError(f"{self.folder}: its videos are named by number, not by prompt; match them "
                                    f"to the prompt list they were made from: evalkit index {self.folder} --prompts LIST")
            if not have:
                raise BadInputError(f"{self.folder}: no video for prompt {p!r}; "
                                    + (f"list one in its {INDEX}" if self.indexed else
                                       f"add one named after it, or list the videos in an {INDEX}"))
            k = self._served[key]
            if k >= len(have):
                raise BadInputError(f"{self.folder}: only {len(have)} videos for prompt {p!r}, "
                                    f"asked for sample {k + 1}; add more, or ask for fewer samples a prompt "
                                    "(generate --n-per-prompt; a suite's samples_per_prompt)")
            self._served[key] += 1
            # a video over the decode budget (4K) is read reduced by a whole factor, all frames kept
            k_shrink = shrink_to_fit(have[k][0])
            times: list = []
            clip = read_video(have[k][0], prompt=p, shrink=k_shrink, times=times)
            if k_shrink > 1:
                clip.meta["read_reduced"] = k_shrink
            # written back as `sign --watermark` writes its copy (session 33): when each frame
            # shows (a variable frame rate), the pixel aspect and the colour/HDR and field tags,
            # which `write_video` takes from here; before, a phone clip came out at a steady rate,
            # anamorphic pixels square and HDR tagged BT.709
            clip.meta["picture"] = {**picture_tags(have[k][0]), "times": times}
            out.append(clip)
        return out
