"""A folder of clips: `clips/*.mp4` plus `index.jsonl`, one JSON object a line (DESIGN.md).

A folder of videos from elsewhere (real footage, another tool's outputs) needs no index: its
videos (top level and `clips/`) are read in name order, each prompted by its file name, as
`folder:DIR` reads them ("a_red_ball_falls-3.mp4": "a red ball falls", sample 3). A file with no
suffix at all (a camera's `clip0001`, a download saved as `video`) is one of them when it starts
as a video container does (`is_video_file`).

`ClipFolderWriter` builds the folder under a temporary sibling name and renames it into place
only when every clip and the index are written, so a killed run never leaves a folder that
looks complete. `read_index` validates each line and names the line that is wrong.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Iterator

import numpy as np

from evalkit.clip import Clip
from evalkit.atomic import _same, check_parents
from evalkit.errors import BadInputError, MissingResourceError, path_is, special_file
from evalkit.video import animated_image, read_video, write_video

INDEX = "index.jsonl"
REQUIRED_KEYS = ("id", "file", "prompt")
# What cameras, editors, broadcast and other tools write: MPEG-4/QuickTime, Matroska/WebM, AVI,
# GIF, camcorder and broadcast transport streams (AVCHD .mts/.m2ts, .ts), MPEG-PS, phones' 3GP,
# Flash, Windows Media, Ogg, MXF, and raw YUV4MPEG test sequences.
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif", ".m4v", ".mts", ".m2ts", ".ts",
                  ".mpg", ".mpeg", ".3gp", ".3g2", ".flv", ".wmv", ".asf", ".ogv", ".mxf", ".y4m", ".apng"}


def is_video_name(f: Path) -> bool:
    """A video by its name, or an animated WebP/PNG by its first bytes (a generator's animated
    WebP was passed over without a word; a still one beside the clips is a thumbnail, not a clip)."""
    return f.suffix.lower() in VIDEO_SUFFIXES or animated_image(f)


def prompt_from_name(stem: str, numbered: bool = True) -> str:
    """A video's prompt from its file name: a trailing sample number dropped ("-3", "_3", and the
    " (3)" that a browser or file manager adds to a copy), _ read as spaces. A name that is only a
    number ("0007", "0007_2", a camera's "20240501_123456") says nothing: no prompt (""). With
    `numbered` (the folder's names are all numbered outputs: `numbered_names`), neither does a
    generic word and a number as tools number their outputs (Open-Sora's and Latte's
    "sample_0000", diffusers' "video_0", "output_3"); in a folder of prompts "Clip 3" is one."""
    if (numbered and _NUMBERED.match(stem)) or _TOOL_NUMBERED.match(stem):
        return ""
    # a name that is not UTF-8 (a zip from another system): its bytes as escapes, which any later
    # UTF-8 writer takes (a lone surrogate in a prompt failed scoring and logging, session 33)
    stem = os.fsencode(stem).decode("utf-8", "backslashreplace")
    text = " ".join(re.sub(r"(?:[-_]\d+| ?\(\d+\))$", "", stem).replace("_", " ").split())
    return "" if text.isdigit() else text


def numbered_names(stems) -> bool:
    """Every name a numbered output (`_NUMBERED`): the folder of a tool that numbers its videos
    after a prompt list, not one named by prompt (where "Clip 3.mp4" is a prompt, session 32)."""
    stems = list(stems)
    return bool(stems) and all(_NUMBERED.match(s) for s in stems)


# Tools that number their outputs after a prompt list (EvalCrafter's 0000.mp4, Open-Sora's
# sample_0000.mp4, ...) name a video by its prompt's number, after an optional generic word, with
# an optional sample number: "0007", "0007_2", "7-1", "0007 (2)", "sample_0007", "video-3_1".
# The word is one that names no scene (session 32: "sample_0000" was scored as the prompt "sample").
_GENERIC = r"(?:sample|samples|video|videos|output|outputs|out|clip|clips|gen|generated|result|results|vid)"
_NUMBERED = re.compile(rf"^(?:{_GENERIC}[-_ ]?)?(\d+)(?:[-_](\d+)| ?\((\d+)\))?$", re.IGNORECASE)
# words no scene is named by: numbering wherever they stand (one stray file beside sample_0000.mp4
# made every such clip's prompt "sample" again); "video 3" or "Clip 3" may be a prompt's name
_TOOL_NUMBERED = re.compile(r"^(?:sample|samples|output|outputs|gen|generated|result|results)[-_ ]?\d+"
                            r"(?:[-_]\d+| ?\(\d+\))?$", re.IGNORECASE)


def index_numbered(folder, prompts: list[dict], start: int | None = None) -> list[dict]:
    """Index records for a folder of videos named by number: the video numbered n (and its
    samples "n_k") gets `prompts[n - start]` (each a dict with "prompt" and optionally "probe").
    Without `start` the numbers must run without a gap over exactly as many prompts as given
    (then start is the smallest); a gap or another count needs `start`, since 0- and 1-based
    numbering cannot be told apart when a video is missing. Records come in (number, sample)
    order, so `folder:` hands out a prompt's samples in that order."""
    folder = Path(folder)
    files = video_files(folder)
    if not files:
        raise BadInputError(f"{folder}: no videos in this folder (top level or clips/); give the folder of "
                            "the other tool's outputs")
    numbered = []
    for f in files:
        m = _NUMBERED.match(f.stem)
        if m is None:
            raise BadInputError(f"{f}: not named by number (as 0007.mp4, 0007_2.mp4 or sample_0007.mp4), so it cannot be matched "
                                "to a line of the prompts file; rename it, or write index.jsonl yourself")
        numbered.append((int(m.group(1)), int(m.group(2) or m.group(3) or 0), f))
    taken: dict[tuple[int, int], Path] = {}
    for n, k, f in numbered:  # sample_0000 beside video_0000, or 0000_1 beside "0000 (1)": whose is it?
        # (one name in two containers, 0003.mp4 and 0003.mkv, stays two samples of that prompt)
        if (n, k) in taken and taken[n, k].stem != f.stem:
            raise BadInputError(f"{taken[n, k].name} and {f.name} are both video {n}, sample {k}; keep one tool's "
                                "outputs a folder (or remove one), or write index.jsonl yourself")
        taken[n, k] = f
    numbers = sorted({n for n, _, _ in numbered})
    if start is None:
        if len(numbers) != len(prompts) or numbers[-1] - numbers[0] + 1 != len(numbers):
            raise BadInputError(
                f"{folder}: videos numbered {numbers[0]}-{numbers[-1]} ({len(numbers)} numbers) for {len(prompts)} "
                "prompts; give --start, the number of the first prompt's video (0 or 1, as the tool counts)")
        start = numbers[0]
    records, ids = [], set()
    for n, k, f in sorted(numbered, key=lambda x: (x[0], x[1], x[2].name)):
        if not 0 <= n - start < len(prompts):
            raise BadInputError(f"{f}: number {n} has no prompt (from {start}, videos {start}-{start + len(prompts) - 1} "
                                f"take the {len(prompts)} prompts); check --start and the prompts file")
        rel = f.relative_to(folder).as_posix()
        rid = f.stem if f.stem not in ids else rel  # 0001.mp4 and 0001.mov stay apart
        ids.add(rid)
        rec = {"id": rid, "file": rel, "prompt": prompts[n - start]["prompt"], "video_number": n,
               "prompt_line": n - start + 1, "sample": k}
        if prompts[n - start].get("probe"):
            rec["probe"] = prompts[n - start]["probe"]
        records.append(rec)
    return records


MAX_INDEX_BYTES = 256 << 20


def video_files(folder: Path) -> list[Path]:
    """The videos of a folder (`is_video_file`), top level then clips/, each in name order (hidden
    files skipped; a `clips` that is the folder itself, through a link, read once: its videos
    counted twice)."""
    folder = Path(folder)
    dirs = [folder]
    clips = folder / "clips"
    if clips.is_dir() and not _same(clips, folder):
        dirs.append(clips)
    return [f for d in dirs for f in sorted(d.iterdir()) if is_video_file(f)]


def is_video_file(f: Path) -> bool:
    """A file of a folder that is one of its videos: named as a video (`is_video_name`), or a
    regular file with no suffix at all that starts as a video container does (`_starts_as_video`;
    `score FILE` takes one alone when FFmpeg opens it). A file with any other suffix (notes.txt,
    x.json, index.jsonl) is judged by its name and never opened; a hidden one (macOS ._a.mp4,
    .DS_Store) is never looked at."""
    if f.name.startswith("."):  # first: animated_image would open ._a.webp to sniff it
        return False
    if is_video_name(f):
        # A link whose target is gone is listed too, and a FIFO or device named like a video: reading
        # it names what it is, where leaving it out would score one video fewer without a word.
        return f.is_file() or (f.is_symlink() and not f.exists()) or bool(special_file(f))
    # Without a suffix the name says nothing, so only what is inside can: a FIFO, a device, a
    # broken link or an empty file is nothing to list (README, LICENSE, a camera's log neither).
    return not f.suffix and _starts_as_video(f)


def expand_folders(paths) -> list[Path]:
    """Command-line paths with each folder replaced by its videos (`video_files`); a folder
    without any is an error naming it."""
    out = []
    for p in map(Path, paths):
        if path_is(p, "dir"):  # a name the OS refuses is no folder: its own read says so, for it alone
            found = video_files(p)
            if not found:
                raise BadInputError(f"{p}: a folder with no videos in it (top level or clips/); give video "
                                    "files or a folder of them")
            out += found
        else:
            out.append(p)
    return out


def sample_number(stem: str) -> int | None:
    """The sample number a name ends in ("-3", "_3", " (3)"), or None."""
    m = re.search(r"(?:[-_](\d+)| ?\((\d+)\))$", stem)
    return int(m.group(1) or m.group(2)) if m else None


def videos_without_index(folder: Path) -> list[dict]:
    """Records for the videos of a folder that has no index (top level, then clips/), a prompt's
    samples in the order of their numbers ("-2" before "-10", which name order puts first)."""
    files = video_files(folder)
    numbered = numbered_names(f.stem for f in files)
    recs, seen = [], set()
    for f in files:
        rel = f.relative_to(folder).as_posix()
        # "a.mp4" and "a.mov" (or clips/a.mp4) stay apart: the second is known by its path (its path
        # without the suffix was "a" again for a top-level pair, two per-clip rows with one id)
        rid = f.stem if f.stem not in seen else rel
        k = 2
        while rid in seen:  # a file named "a.mp4.mkv" beside "a.mp4" and "a.mkv"
            rid, k = f"{rel}#{k}", k + 1
        seen.add(rid)
        recs.append({"id": rid, "file": rel, "prompt": prompt_from_name(f.stem, numbered)})
    # stable: within a prompt by sample number (none first); prompts keep their first place
    first = {}
    for i, r in enumerate(recs):
        first.setdefault(r["prompt"], i)
    def number(r) -> int:
        k = sample_number(Path(r["file"]).stem)
        return -1 if k is None else k
    return sorted(recs, key=lambda r: (first[r["prompt"]], number(r)))


def clip_set(path) -> tuple[Path, list[dict]]:
    """(folder, records) of what a user names as a set of clips: a folder (its index, or its
    videos), or one video file, a set of one prompted by its name."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise MissingResourceError(f"{path}: is a link to {os.readlink(path)}, which does not exist; fix or "
                                   "remove the link")
    if path.is_file() and (is_video_name(path) or _decodable(path)):
        for folder in (path.parent, path.parent.parent):  # a clip of a clip folder keeps its record
            if (folder / INDEX).is_file():
                rel = path.resolve().relative_to(folder.resolve()).as_posix()
                recs = [r for r in read_index(folder) if Path(r["file"]).as_posix() == rel]
                if recs:
                    return folder, recs[:1]
        return path.parent, [{"id": path.stem, "file": path.name, "prompt": prompt_from_name(path.stem)}]
    if path.is_file():
        raise BadInputError(f"{path}: neither a folder of clips nor a video file ({', '.join(sorted(VIDEO_SUFFIXES))}); "
                            "give a folder or a video")
    what = special_file(path)
    if what:  # a FIFO given as the set: "no such folder", exit 3, before (session 33)
        from evalkit.errors import special_file_message

        raise BadInputError(special_file_message(path, what))
    return path, read_index(path)


# Containers a video saved without its suffix comes in. FFmpeg also opens raw elementary streams
# (mjpeg, h264, mpegvideo) by sniffing, and a PDF of scanned pages reads as an mjpeg "clip" of
# its pages: such a file must be named as a video to be scored.
_CONTAINERS = {"mov", "mp4", "matroska", "webm", "avi", "mpegts", "mpeg", "flv", "asf", "ogg", "gif", "mxf",
               "yuv4mpegpipe", "apng", "nut"}


def _decodable(path: Path) -> bool:
    """A video in a container under a name with no video suffix (saved without one, or
    `clip.bin`): taken, as probe, verify and detect take it (score alone refused it by name).
    A regular file only (a FIFO would block the probe); FFmpeg decides."""
    from evalkit.errors import EvalkitError
    from evalkit.video import probe_video

    try:
        st = os.stat(path)
    except (OSError, ValueError):  # gone, a broken link, a name the OS refuses
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
        return False
    try:
        info = probe_video(path, check=False)  # the header only: the frames are decoded when it is read
    except EvalkitError:
        return False
    return bool(set(str(info.container).split(",")) & _CONTAINERS)


def _starts_as_video(path: Path) -> bool:
    """Whether a suffix-less file of a folder is one of its videos: a regular file whose first
    bytes are a container's (`_container_start`; not a still picture's or an audio file's) and
    which, where the container opens, holds a video stream. One that starts as a video but does
    not open (a recording cut off before its `moov`) or is over the size limit is listed, and
    reading it names what is wrong, as for a `.mp4`; left out, it would be one video fewer
    without a word (session 38's review)."""
    f = _open_regular(path)
    if f is None:
        return False
    with f:
        head, size = f.read(2048), os.fstat(f.fileno()).st_size
        if not _container_start(head):
            return False
        if head[4:8] in _MOV_ATOMS:
            box = int.from_bytes(head[:4], "big")  # a box's size: text such as "The free clips" is not one
            if box not in (0, 1) and not 8 <= box <= size:
                return False
            if head[4:8] == b"ftyp" and head[8:12] in _STILL_BRANDS | _AUDIO_BRANDS:  # a photo, a song
                return False
        if head.startswith(b"\x89PNG") and b"acTL" not in head:  # an APNG's acTL precedes its pixels
            return False
        f.seek(0)
        return _has_video_stream(f) is not False


def _open_regular(path: Path):
    """`path` opened for binary reading when it is a regular file, else None. Opened without
    blocking and checked once open: opening a FIFO to read waits for a writer, which would block
    a listing for good."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return os.fdopen(fd, "rb")
    except OSError:
        pass
    os.close(fd)
    return None


def _has_video_stream(f) -> bool | None:
    """Whether the container in the open file `f` holds a video stream; None where it does not
    open (the header only is read, no frame decoded)."""
    import av

    try:
        with av.open(f, "r") as c:
            return bool(c.streams.video)
    except Exception:  # noqa: BLE001 (any error of FFmpeg's: reading the file names the problem)
        return None


# QuickTime/MP4 files start with one of these atoms (ftyp in MP4, moov, mdat or wide in old .mov,
# ediw in XDCAM's, udta where a tool put it first, styp/sidx/moof in a fragment or CMAF segment).
_MOV_ATOMS = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"ediw", b"pnot", b"uuid", b"junk",
              b"pict", b"PICT", b"udta", b"prfl", b"styp", b"sidx", b"moof"}
# ftyp major brands of still pictures (AVIF, HEIF/HEIC; not their sequences, avis and msf1) and of
# audio (iTunes' M4A/M4B/M4P, Flash's F4A/F4B) in the same box format
_STILL_BRANDS = {b"avif", b"heic", b"heix", b"heim", b"heis", b"mif1"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}


def _container_start(head: bytes) -> bool:
    """Whether a file's first bytes are those of one of `_CONTAINERS` (their signatures as FFmpeg's
    probes look for them); text, PDFs, archives and images other than GIF/PNG are not."""
    if head[4:8] in _MOV_ATOMS or head.startswith((
            b"\x1a\x45\xdf\xa3",  # Matroska/WebM (EBML)
            b"FLV", b"OggS", b"GIF8", b"YUV4MPEG2", b"nut/multimedia container",
            b"\x89PNG\r\n\x1a\n",  # APNG (a still PNG: `_starts_as_video`)
            b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")):  # ASF/WMV header GUID
        return True
    if head[:4] == b"RIFF" and head[8:11] == b"AVI":
        return True
    if head[:3] == b"\x00\x00\x01" and len(head) > 3 and head[3] >= 0xB9:  # MPEG program stream
        return True
    if b"\x06\x0e\x2b\x34" in head:  # MXF (its partition pack may follow a run-in)
        return True
    # MPEG transport stream: a 0x47 sync byte every 188 bytes (192 in AVCHD .m2ts, 204 with FEC),
    # four in a row (three came by chance in about 1 random file of 3,000) anywhere in the first
    # bytes (a capture may start with a partial packet or junk)
    sync = np.frombuffer(head, np.uint8) == 0x47
    return any(bool((sync[:-3 * n] & sync[n:-2 * n] & sync[2 * n:-n] & sync[3 * n:]).any())
               for n in (188, 192, 204) if sync.size > 3 * n)


def read_index(folder) -> list[dict]:
    """The records of `folder/index.jsonl`, each with the keys it must have."""
    folder = Path(folder)
    path = folder / INDEX
    if not folder.is_dir():
        raise MissingResourceError(f"{folder}: no such folder of clips; give a folder with {INDEX}")
    if not path.is_file():
        records = videos_without_index(folder)
        if not records:
            nested = [d.name for d in sorted(folder.iterdir()) if d.is_dir() and d.name != "clips" and video_files(d)]
            if nested:  # one folder a prompt, as some tools write them: not read without an index
                raise BadInputError(f"{folder}: no {INDEX}, and its videos are in subfolders ({nested[0]}/, ...), "
                                    f"which are not read; list them in {INDEX} (one line a video: "
                                    f'{{"id": ..., "file": "{nested[0]}/NAME.mp4", "prompt": ...}})')
            raise BadInputError(f"{folder}: no {INDEX} and no videos in this folder; render or generate "
                                "clips into it, or give a folder of videos")
        return records
    records, seen, files = [], set(), {}
    size = path.stat().st_size
    if size > MAX_INDEX_BYTES:  # read whole: 1 GB of index took 3-4 GB of memory, then "out of memory"
        raise BadInputError(f"{path}: {size / 2**20:.0f} MiB is too large for an index (limit "
                            f"{MAX_INDEX_BYTES // 2**20} MiB, about a million clips); check that it is one")
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: an index saved by Windows tools starts with a BOM
            lines = list(f)
    except UnicodeDecodeError:
        raise BadInputError(f"{path}: not UTF-8 text; save the index as UTF-8 (one JSON object a line)") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadInputError(f"{path}:{n}: not valid JSON ({e.msg}); fix or regenerate the index") from None
        except (RecursionError, ValueError) as e:  # nesting 100,000 deep; an integer of 5,000 digits
            what = "nested too deeply" if isinstance(e, RecursionError) else " ".join(str(e).split())[:80]
            raise BadInputError(f"{path}:{n}: not an index record ({what}); fix or regenerate the index") from None
        if not isinstance(rec, dict):
            raise BadInputError(f"{path}:{n}: not an index record (a JSON object with the keys "
                                f"{', '.join(REQUIRED_KEYS)}); fix or regenerate the index")
        missing = [k for k in REQUIRED_KEYS if k not in rec]
        if missing:  # another tool's index (caption, video, path): say which key and what it has
            has = ", ".join(sorted(map(str, rec))[:6]) or "none"
            raise BadInputError(f"{path}:{n}: no {' or '.join(repr(k) for k in missing)} key (the record has: {has}); "
                                f"each line needs {', '.join(REQUIRED_KEYS)}: rename the other tool's keys to "
                                "these (id: any unique name, file: the video's path in the folder)")
        _check_record(path, n, rec)
        if str(rec["id"]) in seen:
            raise BadInputError(f"{path}:{n}: duplicate id {rec['id']!r}; ids must be unique")
        file = Path(rec["file"])
        if file.is_absolute() or ".." in file.parts:
            raise BadInputError(f"{path}:{n}: file {rec['file']!r} must be a path inside the folder")
        if "\\" in rec["file"] and not (folder / rec["file"]).exists():
            raise BadInputError(f"{path}:{n}: file {rec['file']!r}: write paths with / (a Windows \\ is part "
                                "of the name here)")
        if file.as_posix() in files:  # one video counted twice would be two samples, and N too large
            raise BadInputError(f"{path}:{n}: file {rec['file']!r} is listed already (line {files[file.as_posix()]}); "
                                "list each video once")
        files[file.as_posix()] = n
        seen.add(str(rec["id"]))
        records.append(rec)
    if not records:
        raise BadInputError(f"{path}: the index is empty; the folder holds no clips")
    return records


def _check_record(path, n: int, rec: dict) -> None:
    """An index record's values of the right types: id a string or a whole number, file a
    non-empty string, prompt a string (null: no prompt)."""
    if isinstance(rec["id"], bool) or not isinstance(rec["id"], (str, int)) or rec["id"] == "":
        raise BadInputError(f"{path}:{n}: id must be a non-empty string or a number, got {rec['id']!r}")
    if not isinstance(rec["file"], str) or not rec["file"].strip():
        raise BadInputError(f"{path}:{n}: file must be the video's path inside the folder, got {rec['file']!r}")
    if rec["prompt"] is None:
        rec["prompt"] = ""
    if not isinstance(rec["prompt"], str):
        raise BadInputError(f"{path}:{n}: prompt must be text, got {rec['prompt']!r}")
    rec["id"] = str(rec["id"])


def load_clip(folder, record: dict, **read_kw) -> Clip:
    clip = read_video(Path(folder) / record["file"], prompt=record.get("prompt", ""), **read_kw)
    clip.meta["record"] = record
    return clip


def iter_clips(folder, **read_kw) -> Iterator[Clip]:
    for rec in read_index(folder):
        yield load_clip(folder, rec, **read_kw)


_FILLING = re.compile(r"\.(clips|index)\.filling-(\d+)")  # what a fill in place brings in first


def _check_target(out: Path) -> None:
    if out.is_symlink():  # the finished folder cannot be renamed onto a link (it failed after all the work)
        raise BadInputError(f"{out}: is a symbolic link; give the folder it points to, or a new name")
    if out.is_dir() and not out.is_symlink():  # a fill in place that was killed: its hidden parts go
        for part in out.iterdir():
            m = _FILLING.fullmatch(part.name)
            if m and int(m.group(2)) != os.getpid() and not _process_alive(int(m.group(2))):
                shutil.rmtree(part, ignore_errors=True) if part.is_dir() else part.unlink(missing_ok=True)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInputError(f"{out}: already exists and is not empty; choose a new folder or remove it")
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):  # a read-only folder is the user's to keep so
        raise BadInputError(f"{out}: is a folder this user cannot write; choose another folder")
    check_parents(out)


def _take_group(stage: Path, out: Path) -> None:
    """The staged files take a setgid folder's group, as files made in it would (they were made
    beside it, in the user's own group: a team could not read them, session 33)."""
    import stat as _stat

    try:
        st = os.stat(out)
        if not st.st_mode & _stat.S_ISGID:
            return
        for root, dirs, files in os.walk(stage):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), -1, st.st_gid)
    except OSError:
        pass


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class ClipFolderWriter:
    """with ClipFolderWriter(out) as w: w.add(clip, record)  ->  out/clips/<id>.mp4 + out/index.jsonl"""

    def __init__(self, out, *, crf: int = 18, replace: bool = False):
        self.out = Path(out)
        self.crf = crf
        self.replace = replace
        # the name cut short: a 250-byte folder name plus ".partial-PID" was over the OS's 255
        self.stage = self.out.with_name(f"{self._stage_prefix()}{os.getpid()}")
        self.records: list[dict] = []
        if not replace:
            if self.out.parent.is_dir():  # a killed run's stage goes even when OUT is refused
                self._remove_stale_stages()
            _check_target(self.out)

    def _stage_prefix(self) -> str:
        return f".{self.out.name[:64]}.partial-"

    def _remove_stale_stages(self) -> None:
        """Staging folders of runs that were killed (SIGKILL, the OOM killer: no cleanup ran)."""
        for old in self.out.parent.glob(f"{glob.escape(self._stage_prefix())}*"):
            pid = old.name.rsplit("-", 1)[-1]
            if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)

    def __enter__(self) -> "ClipFolderWriter":
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._remove_stale_stages()
            shutil.rmtree(self.stage, ignore_errors=True)
            (self.stage / "clips").mkdir(parents=True)
        except OSError as e:  # read-only, or a file in the way
            raise BadInputError(f"{self.out}: cannot write clips here ({e.strerror or type(e).__name__}); "
                                "choose another folder") from None
        return self

    def add(self, clip: Clip, record: dict) -> dict:
        rec = dict(record)
        rec["file"] = f"clips/{rec['id']}.mp4"
        write_video(self.stage / rec["file"], clip, crf=self.crf)
        self.records.append(rec)
        return rec

    def _fill_in_place(self) -> None:
        """Bring the staged clips and index into the user's empty OUT under hidden names (a copy,
        where OUT is another file system), then rename them into place, the index first: stopped at
        any point, OUT never holds videos that read as a complete set without their index (a Ctrl-C
        between the moves left six clips that `score` read as a whole set, session 33), and what
        was brought in goes again on any exception, a Ctrl-C included."""
        pid = os.getpid()
        hidden_clips, hidden_index = self.out / f".clips.filling-{pid}", self.out / f".index.filling-{pid}"
        placed: list[Path] = []
        try:
            shutil.move(str(self.stage / "clips"), str(hidden_clips))
            shutil.move(str(self.stage / INDEX), str(hidden_index))
            os.replace(hidden_index, self.out / INDEX)  # an index naming missing clips fails loudly
            placed.append(self.out / INDEX)
            os.replace(hidden_clips, self.out / "clips")
        except BaseException:
            for part in (*placed, hidden_clips, hidden_index):
                shutil.rmtree(part, ignore_errors=True) if part.is_dir() else part.unlink(missing_ok=True)
            shutil.rmtree(self.stage, ignore_errors=True)
            raise
        shutil.rmtree(self.stage, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            return
        try:
            lines = [json.dumps(rec, separators=(",", ":")) + "\n" for rec in self.records]
        except (TypeError, ValueError) as e:  # a value no JSON holds: nothing half-made is left behind
            shutil.rmtree(self.stage, ignore_errors=True)
            raise BadInputError(f"{self.out}: a clip's record is not plain JSON ({' '.join(str(e).split())[:120]}); "
                                "give numbers, text, lists and dicts") from None
        with open(self.stage / INDEX, "w", encoding="utf-8") as f:
            f.writelines(lines)
        old = None
        try:
            if self.out.exists() and not self.replace:
                _check_target(self.out)  # appeared while we were writing
                # the user's own empty folder is kept (its mode, group, setgid bit): the clips are
                # moved into it, the index last. It was swapped for a new folder, so a read-only one
                # was written anyway and a team's setgid folder lost its group (session 33). A move,
                # not a rename: an empty mount point (a volume, a disk) is another file system.
                _take_group(self.stage, self.out)
                self._fill_in_place()
                return
            if self.out.exists():
                old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
                os.replace(self.out, old)
            os.replace(self.stage, self.out)
        except BadInputError:  # the folder stopped being empty while the clips were made
            shutil.rmtree(self.stage, ignore_errors=True)
            raise
        except OSError as e:  # nothing half-made is left behind: the staged clips go too
            shutil.rmtree(self.stage, ignore_errors=True)
            if old is not None and not self.out.exists():
                os.replace(old, self.out)  # put the earlier folder back
            raise BadInputError(f"{self.out}: cannot put the clips there ({e.strerror or type(e).__name__}); check "
                                "its permissions or choose another folder") from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
