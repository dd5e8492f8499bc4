"""A folder of clips: `clips/*.mp4` plus `index.jsonl`, one JSON object a line (DESIGN.md).

`ClipFolderWriter` builds the folder under a temporary sibling name and renames it into place
only when every clip and the index are written, so a killed run never leaves a folder that
looks complete. `read_index` validates each line and names the line that is wrong.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterator

from evalkit.clip import Clip
from evalkit.errors import BadInputError, MissingResourceError
from evalkit.video import read_video, write_video

INDEX = "index.jsonl"
REQUIRED_KEYS = ("id", "file", "prompt")


def read_index(folder) -> list[dict]:
    """The records of `folder/index.jsonl`, each with the keys it must have."""
    folder = Path(folder)
    path = folder / INDEX
    if not folder.is_dir():
        raise MissingResourceError(f"{folder}: no such folder of clips; give a folder with {INDEX}")
    if not path.is_file():
        raise BadInputError(f"{folder}: no {INDEX} in this folder; render or generate clips into it first")
    records, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInputError(f"{path}:{n}: not valid JSON ({e.msg}); fix or regenerate the index")
            if not isinstance(rec, dict) or any(k not in rec for k in REQUIRED_KEYS):
                raise BadInputError(f"{path}:{n}: a record needs the keys {', '.join(REQUIRED_KEYS)}")
            if rec["id"] in seen:
                raise BadInputError(f"{path}:{n}: duplicate id {rec['id']!r}; ids must be unique")
            file = Path(rec["file"])
            if file.is_absolute() or ".." in file.parts:
                raise BadInputError(f"{path}:{n}: file {rec['file']!r} must be a path inside the folder")
            seen.add(rec["id"])
            records.append(rec)
    if not records:
        raise BadInputError(f"{path}: the index is empty; the folder holds no clips")
    return records


def load_clip(folder, record: dict, **read_kw) -> Clip:
    clip = read_video(Path(folder) / record["file"], prompt=record.get("prompt", ""), **read_kw)
    clip.meta["record"] = record
    return clip


def iter_clips(folder, **read_kw) -> Iterator[Clip]:
    for rec in read_index(folder):
        yield load_clip(folder, rec, **read_kw)


def _check_target(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInputError(f"{out}: already exists and is not empty; choose a new folder or remove it")


class ClipFolderWriter:
    """with ClipFolderWriter(out) as w: w.add(clip, record)  ->  out/clips/<id>.mp4 + out/index.jsonl"""

    def __init__(self, out, *, crf: int = 18, replace: bool = False):
        self.out = Path(out)
        self.crf = crf
        self.replace = replace
        if not replace:
            _check_target(self.out)
        self.stage = self.out.with_name(f".{self.out.name}.partial-{os.getpid()}")
        self.records: list[dict] = []

    def __enter__(self) -> "ClipFolderWriter":
        self.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.stage, ignore_errors=True)
        (self.stage / "clips").mkdir(parents=True)
        return self

    def add(self, clip: Clip, record: dict) -> dict:
        rec = dict(record)
        rec["file"] = f"clips/{rec['id']}.mp4"
        write_video(self.stage / rec["file"], clip, crf=self.crf)
        self.records.append(rec)
        return rec

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            return
        with open(self.stage / INDEX, "w", encoding="utf-8") as f:
            for rec in self.records:
                f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        old = None
        if self.out.exists():
            if not self.replace:
                _check_target(self.out)  # appeared while we were writing
                self.out.rmdir()
            else:
                old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
                os.replace(self.out, old)
        os.replace(self.stage, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
