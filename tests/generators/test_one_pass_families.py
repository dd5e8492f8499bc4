"""What the VAE and GAN families share (`generators.family`, `generators.training`), checked on
both: shipped weights against their registry, one-line errors for missing or corrupt
checkpoints, a generated folder with its protocol, exports reproducible to the byte, a training
run logged to a real MLflow store, and no import of the judge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from evalkit.clipset import iter_clips, read_index
from evalkit.errors import BadInputError, MissingResourceError
from evalkit.hashing import sha256_file
from generators.base import Prompt, generate_folder, get_generator
from generators.gan import train as gan_train
from generators.gan.generate import GANGenerator
from generators.vae import train as vae_train
from generators.vae.generate import VAEGenerator

WORLD_PROMPT = "a medium red ball falls and bounces on the floor, on a dark background"
FAMILIES = {"vae": (VAEGenerator, vae_train, "vae-prior"), "gan": (GANGenerator, gan_train, "gan-ema")}


@pytest.fixture(params=sorted(FAMILIES))
def family(request):
    return request.param


def test_shipped_small_weights_match_their_registry_entry(family):
    cls, _, sampler = FAMILIES[family]
    entry = json.loads((cls.shipped / "registry.json").read_text())[f"{family}-small"]
    gen = get_generator(f"{family}:small")
    assert isinstance(gen, cls) and gen.path == cls.shipped / entry["file"]
    assert gen.path.stat().st_size < 3_000_000
    assert sha256_file(gen.path) == entry["sha256"] == gen.protocol()["weights_sha256"]
    assert entry.get("bytes", gen.path.stat().st_size) == gen.path.stat().st_size
    assert gen.net.cfg == cls.presets["small"] and not any(p.requires_grad for p in gen.net.parameters())
    proto = gen.protocol()
    assert proto["model"] == f"{family}:small" and proto["sampler"] == sampler
    assert proto["preset"] == f"{family}-small" and proto["steps"] == 1 and proto["guidance"] is None
    clip = gen.generate([WORLD_PROMPT], [0])[0]
    assert clip.frames.shape == (16, 32, 32, 3) and clip.fps == 8 and clip.prompt == WORLD_PROMPT


def test_missing_or_corrupt_checkpoint_is_a_one_line_error(family, tmp_path):
    with pytest.raises(MissingResourceError) as e:
        get_generator(f"{family}:{tmp_path / 'nope.safetensors'}")
    assert "\n" not in str(e.value) and "nope.safetensors" in str(e.value)
    for name in ("junk.safetensors", "junk.pt"):
        (tmp_path / name).write_bytes(b"not a checkpoint")
        with pytest.raises(BadInputError) as e:
            get_generator(f"{family}:{tmp_path / name}")
        assert "\n" not in str(e.value) and str(tmp_path / name) in str(e.value)
    # torch's refusal of a non-torch file advises weights_only=False (running the file's pickled
    # code): the error names the file for what it is instead
    assert "not a PyTorch checkpoint" in str(e.value) and "weights_only" not in str(e.value)
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(BadInputError, match="not a .safetensors or .pt"):
        get_generator(f"{family}:{tmp_path / 'weights.txt'}")
    with pytest.raises(BadInputError, match="one seed per prompt"):
        get_generator(f"{family}:small").generate([WORLD_PROMPT], [0, 1])
    with pytest.raises(BadInputError, match="shorten it"):
        get_generator(f"{family}:small").generate([" ".join(["red ball"] * 40)], [0])
    with pytest.raises(BadInputError) as e:
        get_generator("nope:x")
    assert f"{family}:small|CKPT" in str(e.value)


def test_generate_folder_records_the_protocol(family, tmp_path):
    gen = get_generator(f"{family}:small")
    prompts = [Prompt(WORLD_PROMPT), Prompt("two blue squares collide, on a light background")]
    generate_folder(gen, prompts, tmp_path / "out", n_per_prompt=2, seed=4, progress=False)
    records = read_index(tmp_path / "out")
    assert len(records) == 4 and all((tmp_path / "out" / r["file"]).is_file() for r in records)
    assert all(r["model"] == f"{family}:small" and r["sampler"] == FAMILIES[family][2]
               and r["preset"] == f"{family}-small" and r["weights_sha256"] == gen.sha256
               and r["frames"] == 16 and r["size"] == [32, 32] and r["fps"] == 8 for r in records)
    clips = list(iter_clips(tmp_path / "out"))
    assert len(clips) == 4 and all(c.frames.shape == (16, 32, 32, 3) for c in clips)
    assert len({r["seed"] for r in records}) == 4


def test_same_command_same_export_and_a_logged_run(family, tmp_path, mlflow_store):
    """Two runs of the same tiny recipe write byte-identical weights (canonical header, no
    timings in the metadata); the run is logged to a real MLflow store with its losses and the
    SHA-256 of the weights it wrote."""
    _, mod, _ = FAMILIES[family]
    tc = mod.TrainConfig(preset=f"{family}-tiny", batch_size=2, max_steps=2, log_every_steps=1,
                         checkpoint_every_steps=1, device="cpu")
    mod.train(tc, tmp_path / "a.pt", progress=False, log_mlflow=True)
    mod.train(tc, tmp_path / "b.pt", progress=False, log_mlflow=False)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    assert sha256_file(a) == sha256_file(b)
    assert mod.load_checkpoint(tmp_path / "a.pt")[0].step == 2
    client = MlflowClient(mlflow_store)
    (run,) = client.search_runs([client.get_experiment_by_name("evalkit-generator-train").experiment_id])
    assert run.data.params["weights_sha256"] == sha256_file(a) and run.data.params["family"] == family
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_minutes")] == [1, 2]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "samples")] == ["samples/step-0000002.png"]
    with pytest.raises(BadInputError, match="name it .pt"):
        mod.train(tc, tmp_path / "c.safetensors", progress=False, log_mlflow=False)


def test_generator_package_does_not_import_the_judge(family):
    code = (f"import sys, generators.{family}.generate, generators.{family}.train; "
            "print([m for m in sys.modules if m.startswith(('evalkit.metrics', 'evalkit.provenance'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"
