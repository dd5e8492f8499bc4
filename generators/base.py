"""The `Generator` protocol, prompt files, model specs, and writing generated clips to a folder.

A generator turns prompts and seeds into clips. Everything it did is recorded next to each clip
(`protocol()`: model, weights hash, sampler, steps, guidance and its convention), so that a
number computed on its clips can always say what made them. Generators never import the
evaluator's metrics or backbones: the model under test must not see its judge.
"""

from __future__ import annotations

import os

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from tqdm.auto import tqdm

from evalkit.clip import Clip, index_fps
from evalkit.clipset import ClipFolderWriter
from evalkit.seeds import sample_seed  # noqa: F401 (re-exported: generators sample with it)
from evalkit.errors import BadInputError, MissingResourceError, path_is

MAX_PROMPT_CHARS = 1000


@dataclass(frozen=True)
class Prompt:
    text: str
    probe: dict | None = field(default=None, compare=False)  # what the suite checks, if it says
    id: str | None = None


def _check_prompt(text, where: str) -> str:
    if not isinstance(text, str):
        raise BadInputError(f"{where}: the prompt must be text, got {type(text).__name__} {text!r}")
    bad = next((i for i, c in enumerate(text) if "\ud800" <= c <= "\udfff" or (c < " " and c not in "\t\n\r")), None)
    if bad is not None:
        # bytes that were not UTF-8 (stdin and argv decode them to lone surrogates), or NULs of a
        # UTF-16 file read as UTF-8: clips were made for garbage prompts and every later command
        # failed as an internal error (session 33)
        raise BadInputError(f"{where}: the prompt holds {text[bad]!r} at character {bad + 1}, which is not text "
                            "(bytes that are not UTF-8, or a UTF-16 file); save the prompts as UTF-8")
    if not text.strip():
        raise BadInputError(f"{where}: empty prompt; give some text")
    text = " ".join(text.split())
    if len(text) > MAX_PROMPT_CHARS:
        raise BadInputError(f"{where}: prompt of {len(text)} characters is over the limit of "
                            f"{MAX_PROMPT_CHARS}; shorten it")
    return text


# The keys other benchmarks' prompt lists use for the prompt (VBench's JSON: prompt_en).
PROMPT_KEYS = ("prompt", "prompt_en", "caption", "text")


def _from_record(rec, where: str) -> Prompt:
    """A prompt from one JSON object or CSV row: the first of PROMPT_KEYS it has (any case),
    with optional `probe` and `id`."""
    if isinstance(rec, str):
        return Prompt(_check_prompt(rec, where))
    if not isinstance(rec, dict):
        raise BadInputError(f"{where}: each entry must be a prompt or an object with a \"prompt\" key")
    keys = {str(k).strip().lower(): k for k in rec}
    key = next((keys[k] for k in PROMPT_KEYS if k in keys), None)
    if key is None:
        raise BadInputError(f"{where}: no prompt key (one of {', '.join(PROMPT_KEYS)}); name the prompt's field so")
    probe = rec.get("probe")
    if probe in ("", None):
        probe = None
    elif not isinstance(probe, dict):
        raise BadInputError(f"{where}: \"probe\" must be an object")
    pid = rec.get("id")
    return Prompt(_check_prompt(rec[key], where), probe, None if pid in ("", None) else _check_id(pid, where))


_ID = re.compile(r"[^\x00-\x1f\x7f/\\]{1,100}")


def _check_id(pid, where: str) -> str:
    """A prompt's `id` names its clips (`clips/ID-00.mp4`): text or a whole number, one file name
    with no path in it ("../../x" wrote outside --out), no control characters, at most 100."""
    if isinstance(pid, bool) or not isinstance(pid, (str, int)):
        raise BadInputError(f"{where}: \"id\" must be text or a whole number, got {type(pid).__name__}")
    pid = str(pid)
    if not _ID.fullmatch(pid) or pid.startswith(".") or pid != pid.strip():
        raise BadInputError(f"{where}: \"id\" {pid!r} cannot name a clip file; use at most 100 characters with no "
                            "/, \\, control characters, leading dot or surrounding spaces")
    return pid


def _read_text(path: Path) -> str:
    try:  # -sig: Windows editors save UTF-8 with a BOM, which would otherwise start the first prompt
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise BadInputError(f"{path}: not UTF-8 text; give a text, .jsonl, .json or .csv file of prompts")


def _suite_prompts(path: Path) -> list[Prompt]:
    """A benchmark suite's prompts, with their ids and probes, in the suite's order (so that prompt
    i's seeds are the suite's). Read as one prompt a line, world-v1.yaml gave 139 "prompts" such as
    "name: world-v1" (session 34)."""
    from benchmarks.suite import load_suite

    try:
        suite = load_suite(path)
    except BadInputError as e:
        raise BadInputError(f"{e}; a .yaml prompts file is read as a benchmark suite (as benchmarks/suites/*.yaml); "
                            "for a plain list give a text, .jsonl, .json or .csv file") from None
    return [Prompt(p.text, p.probe, p.id) for p in suite.prompts]


def _prompts_of_file(path: Path, text: str | None = None) -> list[Prompt]:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml") and text is None:
        return _suite_prompts(path)
    text = _read_text(path) if text is None else text
    if suffix == ".json":  # a list of prompts, or of objects (VBench_full_info.json)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadInputError(f"{path}: not valid JSON ({e.msg}, line {e.lineno}); give a list of prompts")
        if not isinstance(data, list):
            raise BadInputError(f"{path}: a JSON prompt file must be a list (of prompts, or of objects with "
                                "a \"prompt\" key)")
        return [_from_record(rec, f"{path}: entry {i}") for i, rec in enumerate(data, 1)]
    if suffix in (".csv", ".tsv"):  # a table with a prompt column
        import csv

        lines = text.splitlines()
        if suffix == ".tsv":  # tab-separated has no quoting: a quote is part of the prompt
            rows = csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:  # Excel in a semicolon-list locale writes ';' between fields, commas left in the text
            head = lines[0] if lines else ""
            sep = ";" if head.count(";") > head.count(",") else ","
            rows = csv.DictReader(lines, delimiter=sep)
        out = []
        try:
            for n, row in enumerate(rows, 2):
                if None in row:  # more fields than the header: the rest of a prompt would be dropped
                    raise BadInputError(f"{path}:{n}: more fields than the header's {len(rows.fieldnames)} (an "
                                        "unquoted separator in a prompt?); quote the prompt or save the table again")
                if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    out.append(_from_record(row, f"{path}:{n}"))
        except csv.Error as e:
            raise BadInputError(f"{path}: not a readable table ({e}); give a CSV with a prompt column")
        return out
    prompts = []
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{n}"
        if not line.strip() or (suffix != ".jsonl" and line.lstrip().startswith("#")):
            continue
        if suffix == ".jsonl":
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInputError(f"{where}: not valid JSON ({e.msg}); one object a line")
            prompts.append(_from_record(rec, where))
        else:
            prompts.append(Prompt(_check_prompt(line, where)))
    return prompts


def load_prompts(arg: str) -> list[Prompt]:
    """`--prompts`: a text file (a prompt a line, `#` comments), a .jsonl file (an object a line),
    a .json list (of prompts, or of objects), a .csv/.tsv table with a header, a benchmark suite
    .yaml (its prompts, ids and probes), or, when no such file exists, the literal prompt itself. Objects and rows give the prompt under the first of
    PROMPT_KEYS they have (as other benchmarks name it), with optional `probe` and `id`."""
    if not arg.strip():  # (Path("") is the working folder)
        raise BadInputError("--prompts: empty prompt; give some text, or a prompts file")
    if arg == "-":  # standard input, as Unix tools read it (it was taken for the prompt "-")
        import sys

        if sys.stdin is None or sys.stdin.isatty():
            raise BadInputError("--prompts -: reads the prompts from standard input, which is a terminal; pipe a "
                                "file in (a prompt a line, or JSON lines)")
        text = sys.stdin.read()
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        prompts = _prompts_of_file(Path("<stdin>.jsonl" if first.startswith("{") else "<stdin>"), text)
        if not prompts:
            raise BadInputError("--prompts -: no prompts on standard input")
        return prompts
    path = Path(arg)
    if not path_is(path, "file"):  # a long literal prompt is no path the OS accepts
        if path_is(path, "dir"):
            raise BadInputError(f"{arg}: is a folder; give a prompts file (a prompt a line, .jsonl, .json, "
                                ".csv) or a prompt in quotes")
        # One word with a slash or a list's suffix is a path that is not there, not a prompt:
        # prompts have spaces ("a red ball falls"), file names rarely do.
        looks_like_path = len(arg) < 4096 and (
            arg.lower().endswith((".txt", ".jsonl", ".json", ".csv", ".tsv", ".yaml", ".yml"))
            or (("/" in arg or "\\" in arg) and not any(c.isspace() for c in arg.strip())))
        if looks_like_path:
            try:
                os.stat(arg)
            except PermissionError:  # there, in a folder this user may not enter: not "no such file"
                raise BadInputError(f"{arg}: permission denied; check its and its folders' permissions") from None
            except (OSError, ValueError):
                pass
            raise MissingResourceError(f"{arg}: no such prompts file; check the path")
        return [Prompt(_check_prompt(arg, "--prompts"))]
    prompts = _prompts_of_file(path)
    if not prompts:
        raise BadInputError(f"{path}: no prompts in this file")
    return prompts


@runtime_checkable
class Generator(Protocol):
    spec: str

    def protocol(self) -> dict:
        """What made the clips: model, weights_sha256, sampler, steps, guidance, guidance_convention."""

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Clip]:
        """One clip per (prompt, seed) pair; the same pair always gives the same clip."""


SPEC_KINDS = ("control", "folder", "uvit", "vae", "gan", "diffusers")


def check_spec(spec: str) -> str:
    """`spec` if it has a model spec's shape (`world`, or KIND:ARG of a known kind), else the one-line
    error `get_generator` gives: said before any flag is judged against the model."""
    kind, _, arg = spec.partition(":")
    if spec == "world" or (kind in SPEC_KINDS and arg):
        return spec
    raise BadInputError(f"unknown model spec {spec!r}; use world, control:noise|frozen|shuffled, "
                        "folder:DIR, uvit:PRESET_OR_CKPT, vae:small|CKPT, gan:small|CKPT or "
                        "diffusers:ID_OR_PATH")


def canonical_spec(spec: str) -> str:
    """The spec that names one model wherever it is typed: a `folder:` spec by its folder's
    resolved path. `folder:fold` typed in two places was one leaderboard row whose newest run hid
    the other folder's, and `folder:fold`, `folder:./fold/` and its absolute path three rows of
    one folder (session 32). Other specs as given."""
    kind, _, arg = spec.partition(":")
    if kind == "folder" and arg:
        return f"folder:{Path(arg).expanduser().resolve()}"
    return spec


def get_generator(spec: str, **options) -> Generator:
    """A generator from a model spec: `world`, `control:KIND`, `folder:DIR`, `uvit:PRESET_OR_CKPT`,
    `vae:small|CKPT`, `gan:small|CKPT`, `diffusers:ID_OR_PATH`."""
    kind, _, arg = check_spec(spec).partition(":")
    if spec == "world":
        from generators.world import WorldGenerator

        return WorldGenerator(**options)
    if kind == "control" and arg:
        from generators.world import ControlGenerator

        return ControlGenerator(arg, **options)
    if kind == "folder" and arg:
        from generators.folder import FolderGenerator

        if options:  # its videos are made: sampling options change nothing (they were ignored silently)
            raise BadInputError(f"{spec}: a folder of made videos takes no sampling options "
                                f"({', '.join(sorted(options))}); give them to the model that made them")
        return FolderGenerator(arg)
    if kind == "uvit" and arg:
        from generators.uvit.generate import UViTGenerator

        return UViTGenerator(arg, **options)
    if kind == "vae" and arg:
        from generators.vae.generate import VAEGenerator

        return VAEGenerator(arg, **options)
    if kind == "gan" and arg:
        from generators.gan.generate import GANGenerator

        return GANGenerator(arg, **options)
    if kind == "diffusers" and arg:
        from generators.hf_diffusers import DiffusersGenerator

        return DiffusersGenerator(arg, **options)
    raise AssertionError(f"check_spec passed {spec!r}, which no generator takes")  # SPEC_KINDS out of step


def _prompt_id(p: Prompt, i: int) -> str:
    return p.id or f"p{i:04d}"


def _check_unique_ids(prompts: list[Prompt]) -> None:
    """Two prompts of one id wrote one file, the second clip over the first, and an index that
    names it twice (which no command then reads); a given id can also meet an automatic one."""
    first: dict[str, int] = {}
    for i, p in enumerate(prompts):
        pid = _prompt_id(p, i)
        if pid.casefold() in first:  # a.mp4 and A.mp4 are one file on macOS and Windows
            j = first[pid.casefold()]
            raise BadInputError(f"--prompts: prompts {j + 1} and {i + 1} both have the id {pid!r} "
                                f"({'given' if prompts[j].id else 'automatic'} and {'given' if p.id else 'automatic'}); "
                                "give each prompt its own id")
        first[pid.casefold()] = i


def _whole(value, name: str, least: int) -> int:
    """`value` as an int of at least `least` (numpy integers too), else a one-line error."""
    import operator

    try:
        if isinstance(value, bool):
            raise TypeError
        v = operator.index(value)
    except TypeError:
        v = None
    if v is None or v < least:
        raise BadInputError(f"{name} must be a whole number of {least} or more, got {value!r}")
    return v


_CLIP_KEYS = ("id", "file", "prompt", "seed", "fps", "frames", "size")  # a record's own: no protocol key


def _checked_protocol(gen) -> dict:
    """`gen.protocol()`, checked before any clip is made: a mapping of plain JSON values, with the
    model named, and no key of a clip's own record. A numpy number or a Path failed the index
    write after every clip was made (session 32)."""
    spec = getattr(gen, "spec", type(gen).__name__)
    proto = gen.protocol()
    if not isinstance(proto, Mapping):
        raise BadInputError(f"{spec}: protocol() returned {type(proto).__name__}; return a dict of the settings "
                            "that made the clips (model, weights_sha256, sampler, steps, guidance, ...)")
    clash = [k for k in _CLIP_KEYS if k in proto and k not in ("fps", "frames", "size")]
    if clash:
        raise BadInputError(f"{spec}: protocol() has the key {clash[0]!r}, which is each clip's own in index.jsonl; "
                            "name the setting otherwise")
    try:
        json.dumps(proto, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BadInputError(f"{spec}: protocol() is not plain JSON ({' '.join(str(e).split())[:120]}); give "
                            "numbers, text, lists and dicts (float(x) for a numpy number, str(p) for a path)") from None
    if "model" not in proto:
        raise BadInputError(f"{spec}: protocol() does not name the model (a \"model\" key); every clip records it")
    return dict(proto)


def record_shape(proto: dict, clip: Clip) -> dict:
    """A clip record's fps, frames and size: the clip's own, with `KEY_requested` beside where the
    protocol asked for another (a pipeline may round frames or size; a protocol's fps had been
    written over the clip's silently)."""
    rec = {"fps": index_fps(clip.fps), "frames": clip.num_frames, "size": list(clip.size)}
    for key in ("frames", "size", "fps"):
        # compared as the index holds them: a (16, 16) tuple asked is the [16, 16] made
        if proto.get(key) is not None and json.loads(json.dumps(proto[key])) != rec[key]:
            rec[f"{key}_requested"] = proto[key]
    return rec


def generate_folder(gen: Generator, prompts: list[Prompt], out, *, n_per_prompt: int = 1, seed: int = 0,
                    batch_size: int = 8, progress: bool = True, postprocess=None) -> list[dict]:
    """Generate n_per_prompt clips per prompt into `out` (clips/*.mp4 + index.jsonl, written
    atomically), each record carrying the generator's full protocol and its seed.

    `prompts`: `Prompt`s (`load_prompts`), or a suite's `SuitePrompt`s (`load_suite(...).select()`),
    whose samples get the seeds of their place in the suite, as `bench run` gives them
    (sample_seed(seed, index, k); pass the suite's `seed`).
    `postprocess(path, record) -> dict` runs on each written clip before the folder appears (the
    CLI signs and watermarks there); the fields it returns join the clip's record."""
    from benchmarks.suite import SuitePrompt

    n_per_prompt = _whole(n_per_prompt, "n_per_prompt (--n-per-prompt)", 1)
    batch_size = _whole(batch_size, "batch_size", 1)
    seed = _whole(seed, "seed (--seed)", 0)
    prompts = list(prompts)
    places = list(range(len(prompts)))  # the prompt index each one's seeds derive from
    for i, p in enumerate(prompts):  # (a Python caller's list: the CLI's prompts are checked as read)
        if isinstance(p, SuitePrompt):
            prompts[i], places[i] = Prompt(p.text, p.probe, p.id), p.index
            p = prompts[i]
        if not isinstance(p, Prompt):
            raise BadInputError(f"prompt {i + 1}: expected a generators.base.Prompt (load_prompts makes them) or a "
                                f"suite's SuitePrompt, got {type(p).__name__}")
        if p.id is not None:  # an id names a file: "../../x" wrote outside `out` (session 32)
            _check_id(p.id, f"prompt {i + 1}")
    jobs = [(i, k, p) for i, p in enumerate(prompts) for k in range(n_per_prompt)]
    _check_unique_ids(prompts)
    proto = _checked_protocol(gen)
    with ClipFolderWriter(out) as writer:
        bar = tqdm(total=len(jobs), desc=f"generate {gen.spec}", unit="clip", disable=None if progress else True)
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start:start + batch_size]
            seeds = [sample_seed(seed, places[i], k) for i, k, _ in batch]
            clips = list(gen.generate([p.text for _, _, p in batch], seeds))
            if len(clips) != len(batch) or not all(isinstance(c, Clip) for c in clips):
                # zip() dropped the missing ones without a word: prompts left out of every score
                got = f"{len(clips)} clips" if all(isinstance(c, Clip) for c in clips) else \
                    f"a {type(next(c for c in clips if not isinstance(c, Clip))).__name__}"
                raise BadInputError(f"{gen.spec}: generate() returned {got} for {len(batch)} prompts; a generator "
                                    "returns one evalkit.clip.Clip a (prompt, seed) pair, in order")
            for (i, k, p), s, clip in zip(batch, seeds, clips):
                # what the clip is wins over what was asked: a pipeline may round frames or size
                # (the protocol holds no id, prompt or seed: `_checked_protocol`)
                rec = {"id": f"{_prompt_id(p, i)}-{k:02d}", "prompt": p.text,
                       "seed": s if getattr(gen, "uses_seeds", True) else None, **proto,
                       **record_shape(proto, clip)}
                if p.probe is not None:
                    rec["probe"] = p.probe
                if not getattr(gen, "uses_seeds", True) and clip.meta.get("source"):
                    rec["source_file"] = str(clip.meta["source"])  # folder: the video it was read from
                if clip.meta.get("frames_made"):  # the pipeline made more frames than asked: the first kept
                    rec["frames_made"] = clip.meta["frames_made"]
                if clip.meta.get("prompt_truncated"):  # the model read only its first tokens
                    rec["prompt_truncated"] = clip.meta["prompt_truncated"]
                world_rec = clip.meta.get("record")
                if world_rec and "scene" in world_rec:
                    rec["split"], rec["scene"] = world_rec["split"], world_rec["scene"]
                written = writer.add(clip, rec)
                if postprocess is not None:
                    written.update(postprocess(writer.stage / written["file"], written) or {})
            bar.update(len(batch))
        bar.close()
    return writer.records
