"""Training recipes: a checkpoint's whole lineage as data, run by one command.

    evalkit generator recipe small-gpu --out-dir runs/small-gpu --device cuda

A recipe is a list of stages run in order: an optional text-encoder pre-training (`text_pretrain`)
and training stages, each warm-started from the previous stage's export (`init_from`), a stage
that reads the pre-trained text encoder getting it as `text_init`. Each stage writes
`NN-NAME.pt` (the resumable checkpoint) and, when it reaches its step count, `NN-NAME.safetensors`
(its EMA weights); `recipe.json` records every finished stage (steps, clips, minutes, SHA-256).
Run again, the command skips finished stages and resumes an interrupted one from its checkpoint,
so a killed run continues where it stopped. A stage that was stopped part-way down its learning
rate schedule in the recorded lineage keeps that schedule (`max_steps`) and stops at its recorded
step count (`stop_step`).

`small-gpu` is the lineage of the shipped `uvit:small-gpu` (README, "Training the built-in U-ViT";
`weights/registry.json`): stages 1-2 and runs A-D ran on the 2-core CPU (runs A-D under bf16
autocast there), the last two on a lent H200. Rerun on other hardware it matches in distribution,
not bit for bit (thread counts and kernels change the rounding). Where the record does not give a
schedule length (run D) it is the 12,000 steps of runs A-C. `tiny` runs the same machinery in
seconds (tests, smoke runs).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from evalkit.errors import BadInputError


@dataclass(frozen=True)
class Stage:
    name: str
    train: dict = field(default_factory=dict)  # TrainConfig fields; init_from and text_init are chained
    stop_step: int | None = None  # end here; the learning-rate schedule still runs to train["max_steps"]
    use_text: bool = False  # start from the recipe's pre-trained text encoder (text_init)
    text: dict | None = None  # a text pre-training stage instead (TextPretrainConfig fields)

    @property
    def steps(self) -> int:
        if self.text is not None:
            return int(self.text.get("steps", 1500))
        return int(min(self.train.get("max_steps", 100_000), self.stop_step or 10**12))

    @property
    def clips(self) -> int:
        batch = (self.text or {}).get("batch_size", 64) if self.text is not None else self.train.get("batch_size", 16)
        return self.steps * int(batch)


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    stages: tuple[Stage, ...]

    def totals(self) -> dict:
        """Denoiser steps and clips over the training stages, and the text stage's steps."""
        train = [s for s in self.stages if s.text is None]
        return {"denoiser_steps": sum(s.steps for s in train), "denoiser_clips": sum(s.clips for s in train),
                "text_steps": sum(s.steps for s in self.stages if s.text is not None)}


_SHIFTED = {"min_snr_gamma": None, "lr": 5e-4, "warmup_steps": 200, "max_steps": 12_000}  # runs A-C
_WINDOWS = {"window_prob": 0.8, "window_frames": 2}
_LOCAL = {"snr_shift": 4.0, "mix_ffn": True, "head_channels": 16}  # Mix-FFN and the conv head (run C on)

RECIPES: dict[str, Recipe] = {
    "small-gpu": Recipe(
        "small-gpu",
        "the shipped uvit:small-gpu's lineage: text pre-training, stages 1-2, runs A-D, GPU runs 1-2 "
        "(estimated 15-20 minutes on one H200; days on a 2-core CPU)",
        (
            Stage("text", text={"preset": "small", "steps": 1500, "batch_size": 64, "seed": 0}),
            Stage("stage1", {"preset": "small", "seed": 0, "max_steps": 2281}),
            Stage("stage2", {"preset": "small", "seed": 1, "max_steps": 450}),
            Stage("run-a", {"preset": "small", "overrides": {"snr_shift": 4.0}, **_SHIFTED, **_WINDOWS, "seed": 7},
                  stop_step=2395),
            Stage("run-b", {"preset": "small", "overrides": {"snr_shift": 4.0}, **_SHIFTED, **_WINDOWS, "seed": 8,
                            "freeze_text": True}, stop_step=6152, use_text=True),
            Stage("run-c", {"preset": "small", "overrides": _LOCAL, **_SHIFTED, **_WINDOWS, "seed": 9,
                            "freeze_text": True}, stop_step=7590),
            Stage("run-d", {"preset": "small", "overrides": _LOCAL, "min_snr_gamma": None, "lr": 3e-4,
                            "warmup_steps": 50, "max_steps": 12_000, "seed": 10, "freeze_text": True}, stop_step=445),
            Stage("gpu-1", {"preset": "small", "overrides": _LOCAL, "min_snr_gamma": None, "batch_size": 64,
                            "lr": 4e-4, "warmup_steps": 100, "max_steps": 20_000, "seed": 11, "freeze_text": True},
                  stop_step=3835),
            Stage("gpu-2", {"preset": "small", "overrides": _LOCAL, "min_snr_gamma": None, "batch_size": 64,
                            "lr": 2.5e-4, "warmup_steps": 100, "max_steps": 2600, "seed": 12, "freeze_text": True}),
        ),
    ),
    # uvit:small from scratch, planned for one lent GPU call (not run yet): every choice the
    # lineage above measured as better, from the first step (pre-trained text encoder frozen; SNR
    # shift 4, unweighted; Mix-FFN and the conv head; whole clips, since on a GPU the 2-frame windows
    # save nothing worth their cost), at the batch and rate of GPU runs 1-2. 6,000 steps of 64 clips
    # (384,000, about the GPU runs' 412,000) take 4.6-5.8 min at their 1,100-1,400 clips/s.
    "small": Recipe(
        "small",
        "uvit:small from scratch in one GPU call: text pre-training, then 6,000 whole-clip steps of 64 "
        "with the recipe measured best (estimated 6-7 minutes on one H100/H200 with data workers; not "
        "run yet; weeks on a 2-core CPU)",
        (
            Stage("text", text={"preset": "small", "steps": 1500, "batch_size": 64, "seed": 0}),
            Stage("whole-clips", {"preset": "small", "overrides": _LOCAL, "min_snr_gamma": None, "batch_size": 64,
                                  "lr": 5e-4, "warmup_steps": 200, "max_steps": 6000, "seed": 21,
                                  "freeze_text": True}, use_text=True),
        ),
    ),
    "tiny": Recipe(
        "tiny",
        "the recipe machinery in seconds: text pre-training, a windowed stage stopped part-way down its "
        "schedule, then a grown whole-clip stage on the frozen pre-trained text encoder",
        (
            Stage("text", text={"preset": "tiny", "steps": 4, "batch_size": 8, "seed": 0}),
            Stage("a", {"preset": "tiny", "batch_size": 4, "max_steps": 8, "warmup_steps": 2, "seed": 1,
                        "window_prob": 0.5, "window_frames": 2}, stop_step=3),
            Stage("b", {"preset": "tiny", "overrides": {"mix_ffn": True, "head_channels": 4}, "batch_size": 4,
                        "max_steps": 2, "warmup_steps": 1, "seed": 2, "freeze_text": True}, use_text=True),
        ),
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise BadInputError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def _stage_files(out_dir: Path, i: int, stage: Stage) -> tuple[Path, Path]:
    stem = out_dir / f"{i:02d}-{stage.name}"
    return stem.with_suffix(".pt"), stem.with_suffix(".safetensors")


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


SMOKE_STEPS = 2


def smoke_version(recipe: Recipe) -> Recipe:
    """The recipe with every stage cut to SMOKE_STEPS steps at its own batch, preset and options:
    a few minutes on a CPU that exercise every stage's shapes, warm starts and text chaining before
    a lent GPU's minutes are spent on the real thing."""
    stages = []
    for st in recipe.stages:
        if st.text is not None:
            stages.append(replace(st, text={**st.text, "steps": min(st.steps, SMOKE_STEPS)}))
        else:
            stages.append(replace(st, stop_step=min(st.steps, SMOKE_STEPS)))
    return replace(recipe, stages=tuple(stages))


def run_recipe(name: str, out_dir, *, device: str = "auto", precision: str = "auto", until: str | None = None,
               progress: bool = True, log_mlflow: bool = True, echo=print, smoke: bool = False,
               metrics_jsonl: bool = False) -> dict:
    """Run (or continue) recipe `name` in `out_dir`; returns the record written to recipe.json
    (`final`: the last finished stage's export). `smoke`: every stage for SMOKE_STEPS steps only
    (`smoke_version`), in a folder of its own. `metrics_jsonl`: each training stage's metrics also
    go to NN-NAME.metrics.jsonl beside its checkpoint (a lent GPU has no MLflow store;
    benchmarks/gpu/recipe.py, log_to_mlflow.py)."""
    from evalkit.hashing import sha256_file

    from .generate import export_weights
    from .text_pretrain import TextPretrainConfig, pretrain_text
    from .train import TrainConfig, train

    recipe = get_recipe(name)
    if smoke:
        recipe = smoke_version(recipe)
    names = [s.name for s in recipe.stages]
    if until is not None and until not in names:
        raise BadInputError(f"--until {until}: recipe {name} has no such stage; its stages: {', '.join(names)}")
    out_dir = Path(out_dir).resolve()
    record_path = out_dir / "recipe.json"
    if out_dir.is_dir() and not record_path.exists() and any(out_dir.iterdir()):
        # not a recipe's folder (recipe.json is written before any stage starts): its files are someone else's
        raise BadInputError(f"{out_dir}: holds other files and no recipe.json; give a new or empty --out-dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"recipe": name, "smoke": smoke, "stages": {}}
    if record_path.exists():
        try:
            record = json.loads(record_path.read_text())
        except (ValueError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("stages"), dict) \
                or not all(isinstance(v, dict) for v in record["stages"].values()):
            raise BadInputError(f"{record_path}: not a recipe record; give another --out-dir")
    if record.get("recipe") != name:
        raise BadInputError(f"{out_dir} holds a run of recipe {record.get('recipe')!r}; give another --out-dir")
    if bool(record.get("smoke")) != smoke:  # a smoke run's 2-step stages must never pass for the real ones
        raise BadInputError(f"{out_dir} holds a {'smoke' if record.get('smoke') else 'full'} run of recipe {name}; "
                            "give another --out-dir")
    if not record_path.exists():
        _write_json(record_path, record)
    prev, text = None, None
    for i, stage in enumerate(recipe.stages):
        ckpt, export = _stage_files(out_dir, i, stage)
        spec = asdict(stage)
        done = record["stages"].get(stage.name)
        if done is not None and done.get("spec") != spec:
            raise BadInputError(f"{out_dir}: stage {stage.name} was run with another definition; "
                                "give another --out-dir")
        now = sha256_file(export) if done is not None and done.get("sha256") and export.exists() else None
        if now is not None and now != done["sha256"]:
            # a finished stage's weights are what later stages start from: changed ones are not skipped over
            raise BadInputError(f"{export}: stage {stage.name}'s weights changed since it was trained (SHA-256 "
                                f"{now[:12]}..., recorded {done['sha256'][:12]}...); remove the file to train the "
                                "stage again")
        if done is None or not export.exists():
            echo(f"recipe {name}: stage {i + 1}/{len(recipe.stages)} {stage.name} ({stage.steps} steps)")
            t0 = time.perf_counter()
            if stage.text is not None:
                summary = pretrain_text(TextPretrainConfig(**stage.text), export, progress=progress, device=device)
                done = {"kind": "text", "steps": stage.steps, "clips": stage.clips,
                        "held_out_retrieval_top1": summary["held_out_retrieval_top1"]}
            else:
                if stage.use_text and text is None:
                    raise BadInputError(f"recipe {name}: stage {stage.name} needs a text stage before it")
                tc = TrainConfig(**stage.train, stop_step=stage.stop_step, device=device, precision=precision,
                                 init_from=str(prev) if prev else None,
                                 text_init=str(text) if stage.use_text else None)
                state = train(tc, ckpt, progress=progress, log_mlflow=log_mlflow,
                              metrics_jsonl=ckpt.with_suffix(".metrics.jsonl") if metrics_jsonl else None)
                if state.step < stage.steps:  # stopped early (interrupted): resumable from ckpt
                    raise BadInputError(f"recipe {name}: stage {stage.name} stopped at step {state.step} of "
                                        f"{stage.steps}; run the same command again to resume")
                export_weights(ckpt, export)
                done = {"kind": "train", "steps": state.step, "clips": state.clips_seen,
                        "train_minutes": round(state.seconds / 60, 2)}
            done.update({"spec": spec, "export": export.name, "sha256": sha256_file(export),
                         "wall_minutes": round((time.perf_counter() - t0) / 60, 2)})
            record["stages"][stage.name] = done
            _write_json(record_path, record)
        if stage.text is not None:
            text = export
        else:
            prev = export
        if stage.name == until:
            break
    record["final"] = prev.name if prev else None
    _write_json(record_path, record)
    return record
