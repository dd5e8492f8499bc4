"""`folder:DIR`: pre-made videos as a generator, matched to prompts by index.jsonl or file name.

With an index.jsonl, the k-th clip whose prompt equals the asked prompt answers sample k. Without
one, files are matched by name: "a red ball falls.mp4", "a_red_ball_falls-3.mp4" (sample 3).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from evalkit.clip import Clip
from evalkit.clipset import INDEX, read_index
from evalkit.errors import BadInputError, MissingResourceError
from evalkit.video import read_video, shrink_to_fit


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


class FolderGenerator:
    def __init__(self, folder):
        self.folder = Path(folder)
        self.spec = f"folder:{folder}"
        if not self.folder.is_dir():
            raise MissingResourceError(f"{self.folder}: no such folder of videos; check the path")
        self.by_prompt: dict[str, list[tuple[Path, dict]]] = defaultdict(list)
        # with an index, its records; without, the folder's videos prompted by their names
        for rec in read_index(self.folder):
            self.by_prompt[normalise(rec["prompt"])].append((self.folder / rec["file"], rec))
        self._served: dict[str, int] = defaultdict(int)  # videos handed out per prompt

    def protocol(self) -> dict:
        return {"model": self.spec, "weights_sha256": None, "sampler": None, "steps": None,
                "guidance": None, "guidance_convention": None}

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Clip]:
        """Seeds do not choose among pre-made videos; the k-th request for a prompt in this
        generator's life gets its k-th video."""
        out = []
        for p in prompts:
            key = normalise(p)
            have = self.by_prompt.get(key)
            if not have and set(self.by_prompt) == {""}:  # 0000.mp4, ...: numbered after a prompt list
                raise BadInputError(f"{self.folder}: its videos are named by number, not by prompt; match them "
                                    f"to the prompt list they were made from: evalkit index {self.folder} --prompts LIST")
            if not have:
                raise BadInputError(f"{self.folder}: no video for prompt {p!r}; add one named after it "
                                    f"or list it in {INDEX}")
            k = self._served[key]
            if k >= len(have):
                raise BadInputError(f"{self.folder}: only {len(have)} videos for prompt {p!r}, "
                                    f"asked for sample {k + 1}; add more, or ask for fewer samples a prompt "
                                    "(generate --n-per-prompt; a suite's samples_per_prompt)")
            self._served[key] += 1
            # a video over the decode budget (4K) is read reduced by a whole factor, all frames kept
            k_shrink = shrink_to_fit(have[k][0])
            clip = read_video(have[k][0], prompt=p, shrink=k_shrink)
            if k_shrink > 1:
                clip.meta["read_reduced"] = k_shrink
            out.append(clip)
        return out
