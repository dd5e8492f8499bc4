"""Benchmark suites: versioned YAML files identified by a content hash.

    suite = load_suite("world-v1")            # a shipped suite (benchmarks/suites/NAME.yaml) ...
    suite = load_suite("my-suite.yaml")       # ... or a path
    suite.hash                                # SHA-256 of the canonical form
    suite.select(max_prompts=8)               # a balanced prefix for quick runs

A suite holds prompts (id, text, part "id" | "ood", optional physics probe spec), samples per
prompt, the base seed, the video format, the reference set and the metrics with their protocol.
Validation is strict: an unknown key or a bad value is a one-line `BadInputError` naming the key,
because a typo in a suite would otherwise silently change what a leaderboard compares.

The hash is taken over the validated suite with every default filled in, serialised as sorted,
compact JSON: comments, key order, quoting and flow/block style do not change it; writing out a
default explicitly does not either (it means the same benchmark); any change of content does.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from evalkit.errors import BadInputError, MissingResourceError

SUITES_DIR = Path(__file__).parent / "suites"
PARTS = ("id", "ood")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_PROMPT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
MAX_PROMPTS = 10_000
MAX_SAMPLES = 256

# Each metric family a suite may ask for, with its options and their defaults.
METRICS: dict[str, dict] = {
    "fvd": {"backbone": "world-video-encoder"},   # also KVD, precision/recall, conditional diversity
    "clip": {"backbone": "world-clip"},           # alignment and retrieval
    "flicker": {},                                # flicker, warping error, temporal HF ratio
    "physics": {},                                # probes, split by part
    "provenance": {},                             # sign + verify (built-in generator only)
    "watermark": {"crf": 30},                     # survival after H.264 re-encoding at this CRF
    "detector": {"detector": "default"},          # the default synthetic-video detector
    "cost": {},                                   # clips/s, CPU-s (GPU-s, J) per clip
}
_TOP = {"name", "version", "description", "video", "samples_per_prompt", "seed", "reference", "metrics",
        "prompts"}
_REQUIRED = ("name", "version", "prompts")
_VIDEO_DEFAULT = {"frames": 16, "size": 32, "fps": 8.0}
_REFERENCE_DEFAULT = {"world_split": "test", "n": 60, "seed": 1, "prompt_samples": 1, "prompt_seed": 1000}


@dataclass(frozen=True)
class SuitePrompt:
    id: str
    text: str
    part: str
    index: int  # position in the suite file: the prompt index of its samples' seeds
    probe: dict | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    description: str
    video: dict
    samples_per_prompt: int
    seed: int
    reference: dict
    metrics: dict  # {family: options}, in the suite's order
    prompts: tuple[SuitePrompt, ...]
    source: str
    canonical: dict  # the validated suite with defaults filled in: what the hash covers

    @property
    def hash(self) -> str:
        return suite_hash(self.canonical)

    def select(self, max_prompts: int | None = None) -> list[SuitePrompt]:
        """All prompts, or the first `max_prompts` taking the parts in turn (id, ood, id, ...)
        in file order, so that a quick run still has both parts."""
        if max_prompts is None or max_prompts >= len(self.prompts):
            return list(self.prompts)
        if max_prompts < 1:
            raise BadInputError(f"--max-prompts {max_prompts}: must be at least 1")
        queues = {p: [q for q in self.prompts if q.part == p] for p in PARTS}
        out: list[SuitePrompt] = []
        while len(out) < max_prompts:
            for p in PARTS:
                if queues[p] and len(out) < max_prompts:
                    out.append(queues[p].pop(0))
        return sorted(out, key=lambda q: q.index)


def canonical_json(obj) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same bytes for the same content."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8", "backslashreplace")


def suite_hash(canonical: dict) -> str:
    return hashlib.sha256(canonical_json(canonical)).hexdigest()


def shipped_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


# ---------------------------------------------------------------------------------------------
# validation helpers: each raises a one-line BadInputError naming "<source>: <key>"


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, what: str):
        raise BadInputError(f"{self.source}: {key}: {what}" if key else f"{self.source}: {what}")

    def keys(self, d, allowed, key: str, required=()):
        if d is None and not key:
            self.fail("", f"is empty; a suite is a YAML mapping with {', '.join(required)} (see "
                      f"{SUITES_DIR / 'world-v1.yaml'})")
        if not isinstance(d, dict):
            self.fail(key, f"must be a mapping, got {type(d).__name__}")
        unknown = sorted(str(k) for k in d if k not in allowed)
        if unknown:
            self.fail(f"{key}.{unknown[0]}" if key else unknown[0],
                      f"unknown key; allowed: {', '.join(sorted(allowed))}")
        for r in required:
            if r not in d:
                self.fail(f"{key}.{r}" if key else r, "missing (required)")

    def int_(self, v, key: str, lo: int, hi: int) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            self.fail(key, f"must be an integer in [{lo}, {hi}], got {v!r}")
        return v

    def num(self, v, key: str, lo: float, hi: float) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            self.fail(key, f"must be a number in [{lo}, {hi}], got {v!r}")
        return float(v)

    def str_(self, v, key: str, pattern: re.Pattern | None = None, max_len: int = 1000) -> str:
        if not isinstance(v, str) or not v.strip() or len(v) > max_len:
            self.fail(key, f"must be a non-empty string of at most {max_len} characters, got {v!r}")
        if pattern is not None and not pattern.match(v):
            self.fail(key, f"{v!r} is not allowed here (ASCII letters, digits, '.', '_', '-')")
        return v

    def choice(self, v, key: str, options) -> str:
        if v not in options:
            self.fail(key, f"{v!r} is not one of {', '.join(options)}")
        return v


def _video(c: _Checker, raw) -> dict:
    raw = {} if raw is None else raw
    c.keys(raw, set(_VIDEO_DEFAULT), "video")
    v = {**_VIDEO_DEFAULT, **raw}
    v["frames"] = c.int_(v["frames"], "video.frames", 3, 512)
    v["size"] = c.int_(v["size"], "video.size", 8, 1024)
    if v["size"] % 2:
        c.fail("video.size", f"H.264 (yuv420p) needs an even frame size, got {v['size']}")
    v["fps"] = c.num(v["fps"], "video.fps", 1, 120)
    return v


def _reference(c: _Checker, raw) -> dict:
    raw = {} if raw is None else raw
    c.keys(raw, set(_REFERENCE_DEFAULT), "reference")
    r = {**_REFERENCE_DEFAULT, **raw}
    c.choice(r["world_split"], "reference.world_split", ("train", "test", "ood"))
    r["n"] = c.int_(r["n"], "reference.n", 0, 100_000)
    r["seed"] = c.int_(r["seed"], "reference.seed", 0, 2**63 - 1)
    r["prompt_samples"] = c.int_(r["prompt_samples"], "reference.prompt_samples", 0, MAX_SAMPLES)
    r["prompt_seed"] = c.int_(r["prompt_seed"], "reference.prompt_seed", 0, 2**63 - 1)
    if r["n"] + r["prompt_samples"] < 1:
        c.fail("reference", "needs n > 0 or prompt_samples > 0 (FVD needs reference clips)")
    return r


def _metrics(c: _Checker, raw) -> dict:
    if raw is None:
        return {name: dict(opts) for name, opts in METRICS.items()}
    if not isinstance(raw, list) or not raw:
        c.fail("metrics", "must be a non-empty list of {name: ..., options}")
    out: dict[str, dict] = {}
    for i, m in enumerate(raw):
        key = f"metrics[{i}]"
        if isinstance(m, str):
            m = {"name": m}
        if not isinstance(m, dict) or "name" not in m:
            c.fail(key, "each metric is a mapping with a `name`")
        name = c.choice(m["name"], f"{key}.name", tuple(METRICS))
        if name in out:
            c.fail(f"{key}.name", f"{name!r} is listed twice")
        c.keys(m, {"name", *METRICS[name]}, key)
        opts = {**METRICS[name], **{k: v for k, v in m.items() if k != "name"}}
        for opt in ("backbone", "detector"):
            if opt in opts:
                c.str_(opts[opt], f"{key}.{opt}", _NAME)
        if name == "watermark":
            opts["crf"] = c.int_(opts["crf"], f"{key}.crf", 0, 51)
        out[name] = opts
    return out


def _probe(c: _Checker, raw, key: str) -> dict:
    from evalkit.metrics.physics_laws import probe_spec

    c.keys(raw, {"kind", "objects"}, key, required=("kind", "objects"))
    try:
        spec = probe_spec(raw)
    except (ValueError, TypeError, KeyError) as e:
        c.fail(key, " ".join(str(e).split()))
    return {"kind": spec["kind"], "objects": [list(o) for o in spec["objects"]]}


def _objects(objects) -> str:
    return ", ".join(" ".join((size, colour, shape)) for shape, colour, size in objects)


def _prompts(c: _Checker, raw) -> list[dict]:
    from evalkit.world.captions import caption_problem, parse_caption, read_caption
    from evalkit.world.scenes import held_out_reasons
    from evalkit.world.spec import ObjectSpec

    if not isinstance(raw, list) or not raw:
        c.fail("prompts", "must be a non-empty list")
    if len(raw) > MAX_PROMPTS:
        c.fail("prompts", f"{len(raw)} prompts is over the limit of {MAX_PROMPTS}")
    out, seen = [], set()
    for i, p in enumerate(raw):
        key = f"prompts[{i}]"
        c.keys(p, {"id", "text", "part", "probe"}, key, required=("id", "text", "part"))
        pid = c.str_(p["id"], f"{key}.id", _PROMPT_ID, 80)
        if pid in seen:
            c.fail(f"{key}.id", f"duplicate id {pid!r}; ids must be unique")
        seen.add(pid)
        text = " ".join(c.str_(p["text"], f"{key}.text").split())
        part = c.choice(p["part"], f"{key}.part", PARTS)
        rec = {"id": pid, "text": text, "part": part}
        if p.get("probe") is not None:
            rec["probe"] = _probe(c, p["probe"], f"{key}.probe")
        read = read_caption(text)
        if read is not None and caption_problem(read) is not None:  # the world's words, a scene it never draws
            c.fail(f"{key}.text", f"{caption_problem(read)}; the world and its probes cannot take this prompt")
        parsed = parse_caption(text)
        if parsed is not None and "probe" in rec:  # the probe tests what the text asks for, not another scene
            said = {"kind": parsed["kind"], "objects": sorted(list(o) for o in parsed["objects"])}
            if {"kind": rec["probe"]["kind"], "objects": sorted(rec["probe"]["objects"])} != said:
                c.fail(f"{key}.probe", f"tests a {rec['probe']['kind']} of {_objects(rec['probe']['objects'])} but the "
                       f"text asks for a {said['kind']} of {_objects(said['objects'])}; drop the probe (a world "
                       "prompt's own is used) or make them agree")
        if parsed is not None:  # a world prompt: its part must agree with the world's split rules
            reasons = held_out_reasons(parsed["kind"], parsed["background"],
                                       [ObjectSpec(*o, (0, 0)) for o in parsed["objects"]])
            if bool(reasons) != (part == "ood"):
                c.fail(f"{key}.part", f"{part!r} but the prompt {'holds' if reasons else 'holds no'} "
                       f"combination held out of the world's train split{' (' + ', '.join(reasons) + ')' if reasons else ''}")
        out.append(rec)
    return out


def validate(data, source: str = "suite") -> Suite:
    """A `Suite` from parsed YAML, or a one-line BadInputError naming the first bad key."""
    c = _Checker(source)
    c.keys(data, _TOP, "", required=_REQUIRED)
    canonical = {
        "name": c.str_(data["name"], "name", _NAME, 64),
        "version": c.int_(data["version"], "version", 1, 10**6),
        "description": " ".join(str(data.get("description") or "").split()),
        "video": _video(c, data.get("video")),
        "samples_per_prompt": c.int_(data.get("samples_per_prompt", 1), "samples_per_prompt", 1, MAX_SAMPLES),
        "seed": c.int_(data.get("seed", 0), "seed", 0, 2**63 - 1),
        "reference": _reference(c, data.get("reference")),
        "metrics": None,
        "prompts": _prompts(c, data["prompts"]),
    }
    metrics = _metrics(c, data.get("metrics"))
    # Metric order does not change what is measured: the canonical form lists them sorted.
    canonical["metrics"] = [{"name": k, **metrics[k]} for k in sorted(metrics)]
    prompts = tuple(SuitePrompt(p["id"], p["text"], p["part"], i, p.get("probe"))
                    for i, p in enumerate(canonical["prompts"]))
    return Suite(name=canonical["name"], version=canonical["version"], description=canonical["description"],
                 video=canonical["video"], samples_per_prompt=canonical["samples_per_prompt"],
                 seed=canonical["seed"], reference=canonical["reference"], metrics=metrics, prompts=prompts,
                 source=source, canonical=canonical)


def suite_from_canonical(canonical: dict, source: str = "bundle") -> Suite:
    """The suite a result bundle embeds (its hash must match the bundle's)."""
    return validate(canonical, source)


MAX_YAML_NODES = 100_000  # after aliases are expanded: suites and policies hold hundreds


def load_yaml(text: str):
    """`yaml.safe_load`, but a key given twice in one mapping is an error naming its line (safe_load
    keeps the last silently: `fvd: {max: 300}` then `fvd: {min: 5000}` would audit the second);
    merge keys (`<<: *base`) work, a merged key given again overriding it as YAML says; and a
    document whose aliases expand past MAX_YAML_NODES is refused before it is built (a 357-byte
    "billion laughs" policy took 2.5 GB and 27 s to fail, session 32)."""
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        pass

    merge_tag = "tag:yaml.org,2002:merge"

    def mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == merge_tag:
                continue
            if not isinstance(key_node, yaml.ScalarNode):  # `? [1, 2]`: unhashable, an internal error
                raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value, not a list or "
                                                        "mapping", key_node.start_mark)
            key = loader.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"{key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)  # flattens the merges first

    UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    loader = UniqueKeys(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}

        def expanded(n) -> int:  # nodes once every alias is copied out, memoised (linear in the file)
            if id(n) in sizes:
                return sizes[id(n)]
            sizes[id(n)] = 1  # a recursive alias counts once
            kids = [x for pair in n.value for x in pair] if isinstance(n, yaml.MappingNode) else \
                n.value if isinstance(n, yaml.SequenceNode) else []
            sizes[id(n)] = min(1 + sum(expanded(k) for k in kids), 10 * MAX_YAML_NODES)
            return sizes[id(n)]

        if expanded(node) > MAX_YAML_NODES:
            raise yaml.constructor.ConstructorError(
                None, None, f"its aliases expand to over {MAX_YAML_NODES:,} values; write the values out", None)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def suite_name(name_or_path) -> str:
    """The suite a `--suite` value means: a shipped name as it is, a YAML file's `name:` (so that
    `leaderboard --suite my.yaml` finds the runs `bench run --suite my.yaml` logged)."""
    arg = str(name_or_path)
    if arg.endswith((".yaml", ".yml")) or "/" in arg or Path(arg).is_file():
        return load_suite(arg).name
    return arg


def load_suite(name_or_path) -> Suite:
    """A shipped suite by name (`world-v1`) or a YAML file by path."""
    import yaml

    arg = str(name_or_path)
    path = Path(arg).expanduser()
    if path.is_dir():
        raise BadInputError(f"{arg}: is a folder; give a suite YAML file or a shipped suite's name "
                            f"({', '.join(shipped_suites())})")
    if not path.is_file():
        if (SUITES_DIR / path.name).is_file() and Path(arg).parts in (("benchmarks", "suites", path.name),
                                                                      (".", "benchmarks", "suites", path.name)):
            path = SUITES_DIR / path.name  # the README's benchmarks/suites/NAME.yaml where evalkit is installed
        elif arg.endswith((".yaml", ".yml")) or "/" in arg:
            raise MissingResourceError(f"{arg}: no such suite file; check the path, or give a shipped suite's "
                                       f"name ({', '.join(shipped_suites())})")
        else:
            path = SUITES_DIR / f"{arg}.yaml"
        if not path.is_file():
            raise MissingResourceError(f"suite {arg!r}: not a shipped suite ({', '.join(shipped_suites())}) "
                                       "and no such file")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise BadInputError(f"{path}: not UTF-8 text; a suite is a YAML file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise BadInputError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or 'parse error'})") from None
    return validate(data, str(path))
