"""`diffusers:ID_OR_PATH`: a tiny randomly initialised text-to-video pipeline, built and saved here
(nothing downloaded), loaded through `get_generator` and the CLI."""

from __future__ import annotations

import inspect
import json
import shutil
import sys

import numpy as np
import pytest
import torch

from evalkit.cli import main
from evalkit.clipset import load_clip, read_index
from evalkit.errors import (EXIT_BAD_INPUT, EXIT_MISSING, EXIT_UNAVAILABLE, BadInputError, MissingResourceError,
                            UnavailableError)
from evalkit.video import probe_video
from generators.base import Generator, Prompt, generate_folder, get_generator
from generators.hf_diffusers import sha256_weights
from tiny_diffusers import tiny_cogvideox, tiny_text_to_video_sd, tiny_tokenizer

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

FAST = dict(steps=2, frames=4, size=32)


_tiny_tokenizer = tiny_tokenizer


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    return tiny_text_to_video_sd(tmp_path_factory.mktemp("tiny-t2v"))


def test_generates_deterministic_clips_of_the_asked_shape(pipeline_dir):
    gen = get_generator(f"diffusers:{pipeline_dir}", **FAST)
    assert isinstance(gen, Generator) and gen.spec == f"diffusers:{pipeline_dir}"
    a, b, c = gen.generate(["a red ball falls", "a blue square slides", "a red ball falls"], [1, 2, 3])
    for clip in (a, b, c):
        assert clip.frames.shape == (4, 32, 32, 3) and clip.frames.dtype == np.uint8 and clip.fps == 8.0
    assert np.array_equal(gen.generate(["a red ball falls"], [1])[0].frames, a.frames)  # same seed, same clip
    assert not np.array_equal(a.frames, c.frames)  # same prompt, another seed
    assert a.frames.std() > 0 and a.prompt == "a red ball falls"
    wide = get_generator(f"diffusers:{pipeline_dir}", steps=1, frames=2, size=(16, 24), fps=12)
    clip = wide.generate(["x"], [0])[0]
    assert clip.frames.shape == (2, 16, 24, 3) and clip.fps == 12.0


def test_protocol_records_scheduler_steps_guidance_and_weights(pipeline_dir):
    proto = get_generator(f"diffusers:{pipeline_dir}", **FAST).protocol()
    assert proto["model"] == f"diffusers:{pipeline_dir}" and proto["pipeline"] == "TextToVideoSDPipeline"
    assert proto["sampler"] == "DDIMScheduler" and proto["steps"] == 2 and proto["frames"] == 4
    assert proto["guidance"] == 9.0  # the pipeline's own default
    assert proto["guidance_convention"].startswith("standard: eps = uncond + s * (cond - uncond)")
    assert proto["size"] == [32, 32] and proto["fps"] == 8.0
    assert proto["fps_from"].startswith("published for ModelScope text-to-video-ms-1.7b")  # (the model's own 8)
    asked = get_generator(f"diffusers:{pipeline_dir}", **FAST, fps=12).protocol()
    assert (asked["fps"], asked["fps_from"]) == (12.0, "asked")
    assert proto["weights_sha256"] == sha256_weights(pipeline_dir) and len(proto["weights_sha256"]) == 64
    other = get_generator(f"diffusers:{pipeline_dir}", sampler="DPMSolverMultistepScheduler", guidance=1.5,
                          steps=2, frames=2, size=16)
    assert other.protocol()["sampler"] == "DPMSolverMultistepScheduler" and other.protocol()["guidance"] == 1.5
    assert other.generate(["a ball"], [0])[0].frames.shape == (2, 16, 16, 3)
    assert get_generator(f"diffusers:{pipeline_dir}", sampler="ddim").protocol()["sampler"] == "DDIMScheduler"
    default = get_generator(f"diffusers:{pipeline_dir}").protocol()  # the pipeline's defaults, made explicit
    assert (default["steps"], default["frames"], default["size"]) == (50, 16, [16, 16])


def test_generate_folder_writes_index_and_mp4s(pipeline_dir, tmp_path):
    gen = get_generator(f"diffusers:{pipeline_dir}", **FAST)
    records = generate_folder(gen, [Prompt("a red ball falls")], tmp_path / "out", n_per_prompt=2, seed=3,
                              progress=False)
    index = read_index(tmp_path / "out")
    assert [r["id"] for r in index] == [r["id"] for r in records] == ["p0000-00", "p0000-01"]
    for rec in index:
        assert rec["sampler"] == "DDIMScheduler" and rec["steps"] == 2 and rec["model"] == f"diffusers:{pipeline_dir}"
        assert rec["frames"] == 4 and rec["size"] == [32, 32] and rec["weights_sha256"] == sha256_weights(pipeline_dir)
        info = probe_video(tmp_path / "out" / rec["file"])
        assert (info.height, info.width) == (32, 32)
        assert load_clip(tmp_path / "out", rec).frames.shape == (4, 32, 32, 3)


def test_cli_generate_with_a_pipeline_folder(pipeline_dir, tmp_path, capsys):
    code = main(["generate", "--model", f"diffusers:{pipeline_dir}", "--prompts", "a red ball falls",
                 "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    (rec,) = read_index(tmp_path / "out")
    assert rec["steps"] == 50 and rec["frames"] == 16 and rec["size"] == [16, 16] and "wrote 1 clips" in out
    code = main(["generate", "--model", f"diffusers:{pipeline_dir}", "--prompts", "a red ball falls", "--out",
                 str(tmp_path / "shaped"), "--steps", "1", "--frames", "2", "--size", "16x24", "--fps", "12",
                 "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    (rec,) = read_index(tmp_path / "shaped")
    assert (rec["frames"], rec["size"], rec["fps"]) == (2, [16, 24], 12.0)


@pytest.fixture(scope="module")
def dit_pipeline_dir(tmp_path_factory):
    """A tiny CogVideoX pipeline: a video transformer (no UNet), a 3D VAE, a T5 encoder, and
    None defaults for num_frames, height and width that the pipeline fills from its config, as
    the newer text-to-video pipelines (CogVideoX, and others after it) do."""
    return tiny_cogvideox(tmp_path_factory.mktemp("tiny-cogvideox"))


def test_a_transformer_pipeline_with_its_own_frame_count(dit_pipeline_dir, tmp_path):
    # before: int(None) on the pipeline's num_frames default, an internal error
    gen = get_generator(f"diffusers:{dit_pipeline_dir}", steps=2)
    proto = gen.protocol()
    assert proto["pipeline"] == "CogVideoXPipeline" and "frames" not in proto and "size" not in proto
    records = generate_folder(gen, [Prompt("a red ball falls")], tmp_path / "out", seed=1, progress=False)
    (rec,) = read_index(tmp_path / "out")
    # the clip's record says what the pipeline made: its config's 9 frames of 4 x 8 = 32 px
    assert rec["frames"] == records[0]["frames"] == 9 and rec["size"] == [32, 32]
    assert load_clip(tmp_path / "out", rec).frames.shape == (9, 32, 32, 3)
    # asked for 5 frames, CogVideoX pads its latent frames and makes 8: the first 5 are kept (the
    # shape asked) and the record says it made 8 (until session 36 the clip kept all 8)
    asked = get_generator(f"diffusers:{dit_pipeline_dir}", steps=2, frames=5, size=16)
    assert asked.protocol()["frames"] == 5
    (rec,) = generate_folder(asked, [Prompt("a ball")], tmp_path / "asked", progress=False)
    assert (rec["frames"], rec["frames_made"], rec["size"]) == (5, 8, [16, 16])
    assert "frames_requested" not in rec and "size_requested" not in rec
    assert load_clip(tmp_path / "asked", rec).frames.shape == (5, 16, 16, 3)


def test_latte_counts_frames_as_video_length(tmp_path):
    """Latte (a DiT video model, the design U-ViT is compared with) calls its frame count
    video_length; it was refused as 'not a text-to-video pipeline'. Its temporal embedding is
    built for 16 frames: asking for 4 is a one-line error naming --frames, before any clip (session
    34: when the first clip failed; before: an internal error)."""
    from diffusers import AutoencoderKL, DDIMScheduler, LattePipeline, LatteTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    tokenizer = _tiny_tokenizer(tmp_path / "vocab")
    tokenizer.model_max_length = 120  # Latte pads prompts to 120 tokens
    torch.manual_seed(0)
    transformer = LatteTransformer3DModel(
        sample_size=8, num_layers=1, patch_size=2, attention_head_dim=8, num_attention_heads=2,
        caption_channels=16, in_channels=4, cross_attention_dim=16, out_channels=8, attention_bias=True,
        activation_fn="gelu-approximate", num_embeds_ada_norm=1000, norm_type="ada_norm_single",
        norm_elementwise_affine=False, norm_eps=1e-6, video_length=16)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8),
                        norm_num_groups=2, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, sample_size=16)
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1,
                                           num_heads=2, pad_token_id=1, eos_token_id=1, decoder_start_token_id=0))
    LattePipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                  scheduler=DDIMScheduler()).save_pretrained(tmp_path / "pipe")
    gen = get_generator(f"diffusers:{tmp_path / 'pipe'}", steps=2, size=16)
    assert gen.protocol()["frames"] == 16 and gen.generate(["a ball"], [0])[0].frames.shape == (16, 16, 16, 3)
    with pytest.raises(BadInputError, match=r"^--frames 4: LattePipeline's transformer is built for 16 frames") as e:
        get_generator(f"diffusers:{tmp_path / 'pipe'}", steps=2, size=16, frames=4)
    assert "\n" not in str(e.value) and e.value.exit_code == EXIT_BAD_INPUT
    one = get_generator(f"diffusers:{tmp_path / 'pipe'}", steps=1, size=16, frames=1)  # an image: no temporal embedding
    assert one.generate(["a ball"], [0])[0].frames.shape == (1, 16, 16, 3)


def test_a_frame_rate_conditioned_pipeline_writes_at_its_rate(tmp_path):
    """LTX-Video is conditioned on frame_rate (default 25): its clips are written at that rate
    (before: 8 fps, so its motion played three times slower), and an asked-for rate reaches it."""
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline, LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    tokenizer = _tiny_tokenizer(tmp_path / "vocab")
    tokenizer.model_max_length = 128
    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                             num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
                                             num_layers=1, caption_channels=16)
    four = (1, 1, 1, 1)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8,) * 4, decoder_block_out_channels=(8,) * 4,
        layers_per_block=(1,) * 5, decoder_layers_per_block=(1,) * 5, spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False), decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4, upsample_factor=four, timestep_conditioning=False, patch_size=1, patch_size_t=1,
        encoder_causal=True, decoder_causal=False)
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1,
                                           num_heads=2, pad_token_id=1, eos_token_id=1, decoder_start_token_id=0))
    LTXPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                transformer=transformer).save_pretrained(tmp_path / "pipe")
    native = get_generator(f"diffusers:{tmp_path / 'pipe'}", steps=2, frames=9, size=32)
    a = native.generate(["a red ball falls"], [1])[0]
    assert native.protocol()["fps"] == 25.0 and a.fps == 25.0 and a.frames.shape == (9, 32, 32, 3)
    b = get_generator(f"diffusers:{tmp_path / 'pipe'}", steps=2, frames=9, size=32, fps=12).generate(
        ["a red ball falls"], [1])[0]
    assert b.fps == 12.0 and not np.array_equal(a.frames, b.frames)  # the rate conditioned the model
    # LTXConditionPipeline (the same parts) takes `conditions` first: the prompt went there, refused
    cond = _renamed_copy(tmp_path / "pipe", tmp_path / "cond", "LTXConditionPipeline")
    c = get_generator(f"diffusers:{cond}", steps=2, frames=9, size=32).generate(["a red ball falls"], [1])[0]
    assert c.fps == 25.0 and c.frames.shape == (9, 32, 32, 3) and c.frames.std() > 0


def test_a_pipeline_out_of_memory_is_exit_5(pipeline_dir, tmp_path, capsys, monkeypatch):
    """Frames of 400,000 px a side: the allocator refuses the latents at once. Out of memory keeps
    its own exit code (5) and message, not the pipeline-refused-the-request one. (Over the pixels
    evalkit reads, such a size is refused before generating; the limit is raised here.)"""
    from evalkit.errors import EXIT_OUT_OF_MEMORY

    monkeypatch.setenv("EVALKIT_MAX_PIXELS", str(10**12))

    code = main(["generate", "--model", f"diffusers:{pipeline_dir}", "--prompts", "a ball", "--out",
                 str(tmp_path / "o"), "--steps", "1", "--frames", "2", "--size", "400000"])
    err = capsys.readouterr().err
    assert code == EXIT_OUT_OF_MEMORY and "out of memory" in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_cache_ids_load_from_the_local_cache_only(pipeline_dir, tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    snap = cache / "models--tiny-org--tiny-t2v" / "snapshots" / ("0" * 40)
    shutil.copytree(pipeline_dir, snap)
    (cache / "models--tiny-org--tiny-t2v" / "refs").mkdir()
    (cache / "models--tiny-org--tiny-t2v" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    gen = get_generator("diffusers:tiny-org/tiny-t2v", **FAST)
    assert gen.protocol()["weights_sha256"] == sha256_weights(pipeline_dir)  # the same weights, wherever they are
    with pytest.raises(MissingResourceError, match=r"huggingface-cli download tiny-org/absent"):
        get_generator("diffusers:tiny-org/absent")


def test_missing_and_non_pipeline_paths_are_one_line_errors(pipeline_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notapipe").mkdir()
    (tmp_path / "notapipe" / "weights.bin").write_bytes(b"\0" * 8)
    for model, code_wanted, fragment in [(f"diffusers:{tmp_path / 'absent'}", EXIT_MISSING, "no such pipeline folder"),
                                         ("diffusers:./absent", EXIT_MISSING, "no such pipeline folder"),
                                         ("diffusers:notapipe", EXIT_BAD_INPUT, "model_index.json")]:
        code = main(["generate", "--model", model, "--prompts", "a ball", "--out", "OUT"])
        err = capsys.readouterr().err
        assert code == code_wanted and fragment in err and err.count("\n") == 1, err
        assert not (tmp_path / "OUT").exists()
    with pytest.raises(BadInputError, match="DDIMScheduler") as e:
        get_generator(f"diffusers:{pipeline_dir}", sampler="NoSuchScheduler")
    assert e.value.exit_code == EXIT_BAD_INPUT and "\n" not in str(e.value)
    with pytest.raises(BadInputError, match="size"):
        get_generator(f"diffusers:{pipeline_dir}", size=(32,))
    for bad in ({"steps": 0}, {"frames": -1}, {"fps": 0}, {"sampler": "bogus"}):  # checked before any load
        with pytest.raises(BadInputError):
            get_generator(f"diffusers:{tmp_path / 'absent'}", **bad)


def test_a_pipeline_missing_its_weights_or_taking_an_image_is_named_in_one_line(pipeline_dir, tmp_path, capfd):
    """Session 32: a component folder without weights printed diffusers' own error line as well
    (two lines, exit 2); an image-to-video pipeline was handed the prompt as its image."""
    broken = tmp_path / "no_unet"
    shutil.copytree(pipeline_dir, broken)
    for f in (broken / "unet").glob("*.safetensors"):
        f.unlink()
    code = main(["generate", "--model", f"diffusers:{broken}", "--prompts", "a ball", "--out", str(tmp_path / "o")])
    err = capfd.readouterr().err
    assert code == EXIT_MISSING and "unet/ has no weights file" in err and err.count("\n") == 1, err
    # a tiny random Stable Video Diffusion: image-to-video, its call takes an image and num_frames
    from diffusers import (AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, StableVideoDiffusionPipeline,
                           UNetSpatioTemporalConditionModel)
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=32,
        num_attention_heads=(2, 2), projection_class_embeddings_input_dim=24, addition_time_embed_dim=8)
    vae = AutoencoderKLTemporalDecoder(block_out_channels=(32, 32), in_channels=3, out_channels=3,
                                       down_block_types=("DownEncoderBlock2D",) * 2, latent_channels=4,
                                       layers_per_block=1)
    enc = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=8, projection_dim=32, num_hidden_layers=1,
                                                         num_attention_heads=2, image_size=16, intermediate_size=16,
                                                         patch_size=4))
    StableVideoDiffusionPipeline(vae=vae, image_encoder=enc, unet=unet, scheduler=EulerDiscreteScheduler(),
                                 feature_extractor=CLIPImageProcessor(crop_size=16, size={"shortest_edge": 16})
                                 ).save_pretrained(tmp_path / "svd")
    capfd.readouterr()  # save_pretrained's own progress bar
    code = main(["generate", "--model", f"diffusers:{tmp_path / 'svd'}", "--prompts", "a ball", "--out",
                 str(tmp_path / "o2")])
    err = capfd.readouterr().err
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1, err
    assert "StableVideoDiffusionPipeline is not a text-to-video pipeline (its call takes an image" in err


def test_without_diffusers_installed_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # `import diffusers` now raises ImportError
    with pytest.raises(UnavailableError, match=r"pip install 'evalkit\[diffusers\]'"):
        get_generator("diffusers:some/pipeline")
    code = main(["generate", "--model", "diffusers:some/pipeline", "--prompts", "a ball", "--out",
                 str(tmp_path / "OUT")])
    err = capsys.readouterr().err
    assert code == EXIT_UNAVAILABLE and "evalkit[diffusers]" in err and err.count("\n") == 1


def test_configs_count_in_the_hash_long_prompts_are_recorded_and_schedulers_checked(pipeline_dir, tmp_path, capsys):
    """Session 30: an edited scheduler config made other clips under the same weights_sha256; a
    prompt over the text encoder's length was cut without a word; a scheduler that does not fit
    the pipeline was an internal error; `--sampler DDIM` was refused for its case."""
    import shutil

    copy = tmp_path / "pipe"
    shutil.copytree(pipeline_dir, copy)
    before = sha256_weights(copy)
    cfg = copy / "scheduler" / "scheduler_config.json"
    cfg.write_text(cfg.read_text().replace('"epsilon"', '"v_prediction"'))
    assert sha256_weights(copy) != before
    gen = get_generator(f"diffusers:{pipeline_dir}", **FAST)
    (short,) = gen.generate(["a ball"], [0])
    (long,) = gen.generate(["a red ball falls and bounces on the floor"], [0])
    assert "prompt_truncated" not in short.meta and long.meta["prompt_truncated"]["kept"] == 16
    recs = generate_folder(gen, [Prompt("a red ball falls and bounces on the floor")], tmp_path / "o",
                           progress=False)
    assert recs[0]["prompt_truncated"]["tokens"] > 16
    assert get_generator(f"diffusers:{pipeline_dir}", sampler="DDIM").protocol()["sampler"] == "DDIMScheduler"
    code = main(["generate", "--model", f"diffusers:{pipeline_dir}", "--prompts", "a ball", "--steps", "2",
                 "--sampler", "FlowMatchEulerDiscreteScheduler", "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert code == 2 and "refused the request" in err and err.count("\n") == 1


def _renamed_copy(pipe, dest, class_name):
    """A copy of a saved pipeline loaded as another class with the same parts."""
    shutil.copytree(pipe, dest)
    index = json.loads((dest / "model_index.json").read_text())
    (dest / "model_index.json").write_text(json.dumps({**index, "_class_name": class_name}))
    return dest


def test_a_float32_keeping_model_without_accelerate_says_to_install_it(tmp_path, capsys, monkeypatch):
    """Wan (as SkyReels-V2, Kandinsky 5 and Cosmos) keeps some layers in float32, which diffusers
    loads only through accelerate; without it: "cannot load this pipeline ... check that the folder
    is complete", exit 2. Now the missing package is named, exit 4 as for diffusers itself."""
    import importlib.util

    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
    from diffusers.utils import import_utils
    from transformers import T5Config, T5EncoderModel

    tokenizer = _tiny_tokenizer(tmp_path / "vocab")
    torch.manual_seed(0)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=16, freq_dim=256, ffn_dim=32, num_layers=1, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1,
                                           num_heads=2, pad_token_id=1, eos_token_id=1, decoder_start_token_id=0))
    WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0)).save_pretrained(tmp_path / "wan")
    capsys.readouterr()  # save_pretrained's own progress bar
    installed = importlib.util.find_spec("accelerate") is not None
    monkeypatch.setattr(import_utils, "_accelerate_available", False)  # what diffusers sees without it
    code = main(["generate", "--model", f"diffusers:{tmp_path / 'wan'}", "--prompts", "a ball", "--steps", "1",
                 "--frames", "5", "--size", "32", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == EXIT_UNAVAILABLE and err.count("\n") == 1, err
    assert "needs the accelerate package: pip install accelerate" in err and not (tmp_path / "o").exists()
    if installed:  # `pip install 'evalkit[test]'` brings it: the same folder loads and generates
        monkeypatch.undo()
        gen = get_generator(f"diffusers:{tmp_path / 'wan'}", steps=1, frames=5, size=32)
        (clip,) = gen.generate(["a ball"], [0])
        assert clip.frames.shape == (5, 32, 32, 3)
        # Wan takes no frame rate: its clips are written at diffusers' own example's 16, not at 8
        assert clip.fps == 16.0 and gen.protocol()["fps_from"] == "diffusers' example for this pipeline"


def test_a_pipeline_without_a_rate_is_written_at_its_documented_example_rate():
    """Wan (16), HunyuanVideo and Allegro (15) take no frame rate and were written at 8 fps: the
    rate of diffusers' own example for the pipeline is taken, from the installed package. Where
    that example gives none (it writes at export_to_video's default, a rate of no model), the
    model's published rate is (since session 35: Mochi 1's 30 fps, ModelScope's 8; Mochi was
    written at 8), and fps_from says which."""
    import diffusers

    from generators.diffusers_shape import FROM_EXAMPLE, clip_rate
    from generators.hf_diffusers import example_fps

    want = {"WanPipeline": 16.0, "HunyuanVideoPipeline": 15.0, "AllegroPipeline": 15.0, "CogVideoXPipeline": 8.0,
            "TextToVideoSDPipeline": None, "MochiPipeline": None}
    for name, rate in want.items():
        if hasattr(diffusers, name):
            assert example_fps(object.__new__(getattr(diffusers, name))) == rate, name
    rates = {name: clip_rate(object.__new__(getattr(diffusers, name))) for name in ("WanPipeline", "MochiPipeline",
                                                                                    "TextToVideoSDPipeline")}
    assert rates["WanPipeline"] == (16.0, FROM_EXAMPLE)
    assert rates["MochiPipeline"][0] == 30.0 and "Genmo Mochi 1" in rates["MochiPipeline"][1]
    assert rates["TextToVideoSDPipeline"][0] == 8.0 and "text-to-video-ms-1.7b" in rates["TextToVideoSDPipeline"][1]
    subclass = type("MyMochiPipeline", (diffusers.MochiPipeline,), {})  # a pipeline built on Mochi's
    assert clip_rate(object.__new__(subclass))[0] == 30.0
    other = type("OtherPipeline", (diffusers.DiffusionPipeline,), {})  # nothing said anywhere: evalkit's 8
    assert clip_rate(object.__new__(other)) == (8.0, "evalkit's default")


def test_a_size_the_pipeline_cannot_make_is_refused_before_any_clip(pipeline_dir, dit_pipeline_dir):
    """A size off the pipeline's multiple: TextToVideoSD's own check (8) failed at the first clip,
    as "the pipeline refused the request"; CogVideoX's check (8) passed 24x24 and its transformer
    failed inside (its VAE's 8 times its patch 2 is 16). Now one line naming --size, at load."""
    t2v_30 = ("--size 30x30: TextToVideoSDPipeline makes frames whose height and width are multiples of 8 (its VAE's "
              "spatial factor 2; its own input check: 8); give 24x24 or 32x32")
    for folder, size, says in [(pipeline_dir, 30, t2v_30),
                               (pipeline_dir, (16, 20), "--size 16x20: TextToVideoSDPipeline makes frames whose height "
                                                        "and width are multiples of 8"),
                               (dit_pipeline_dir, 24, "--size 24x24: CogVideoXPipeline makes frames whose height and "
                                                      "width are multiples of 16 (its VAE's spatial factor 8 times its "
                                                      "patch 2); give 16x16 or 32x32")]:
        with pytest.raises(BadInputError) as e:
            get_generator(f"diffusers:{folder}", steps=1, size=size)
        assert str(e.value).startswith(says) and "\n" not in str(e.value), str(e.value)
    with pytest.raises(BadInputError, match=r"^--size 30x30 \(--size suite: the suite's video.size\): "):
        get_generator(f"diffusers:{pipeline_dir}", size=30, asked_as={"size": "--size suite: the suite's video.size"})
    from generators.diffusers_shape import _suggest

    assert _suggest((20, 40), 16) == "16x32 or 32x48" and _suggest((8, 8), 16) == "16x16"


def _rate_pipeline(pipeline_dir, dest, monkeypatch, rate_arg: str, default: int, seen: list):
    """The tiny TextToVideoSD pipeline as a class whose call also takes a frame rate under
    `rate_arg` (SkyReels-V2's and Cosmos's `fps`, I2VGen-XL's `target_fps`), keeping what it got."""
    import diffusers
    from diffusers import TextToVideoSDPipeline

    def __call__(self, prompt=None, num_frames=16, height=None, width=None, num_inference_steps=50,
                 guidance_scale=9.0, generator=None, output_type="np", **rate):
        seen.append(rate[rate_arg])
        return TextToVideoSDPipeline.__call__(
            self, prompt=prompt, num_frames=num_frames, height=height, width=width, output_type=output_type,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, generator=generator)

    signature = inspect.signature(__call__)
    params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    __call__.__signature__ = signature.replace(parameters=[
        *params, inspect.Parameter(rate_arg, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=int)])
    name = f"Rate{rate_arg.title().replace('_', '')}TextToVideoSDPipeline"
    monkeypatch.setattr(diffusers, name, type(name, (TextToVideoSDPipeline,), {"__call__": __call__}),
                        raising=False)  # where diffusers finds a model_index.json's class
    return _renamed_copy(pipeline_dir, dest, name)


def test_an_fps_conditioned_pipeline_gets_and_records_its_rate(pipeline_dir, tmp_path, capsys, monkeypatch):
    """SkyReels-V2 DF (fps, default 24), Cosmos (fps) and I2VGen-XL (target_fps) were neither given
    --fps nor had their own rate recorded: clips made for 24 fps were written at 8."""
    seen = []
    fps = _rate_pipeline(pipeline_dir, tmp_path / "fps", monkeypatch, "fps", 24, seen)
    gen = get_generator(f"diffusers:{fps}", **FAST)
    (clip,) = gen.generate(["a red ball falls"], [1])
    assert gen.protocol()["fps"] == 24.0 and clip.fps == 24.0 and seen == [24] and type(seen[0]) is int
    (clip,) = get_generator(f"diffusers:{fps}", **FAST, fps=16).generate(["a red ball falls"], [1])
    assert clip.fps == 16.0 and seen[-1] == 16
    code = main(["generate", "--model", f"diffusers:{fps}", "--prompts", "a ball", "--steps", "1", "--frames", "2",
                 "--size", "16", "--out", str(tmp_path / "o")])
    assert code == 0, capsys.readouterr().err
    (rec,) = read_index(tmp_path / "o")
    assert rec["fps"] == 24.0 and probe_video(tmp_path / "o" / rec["file"]).fps == 24.0 and seen[-1] == 24
    target = _rate_pipeline(pipeline_dir, tmp_path / "target", monkeypatch, "target_fps", 16, seen)
    gen = get_generator(f"diffusers:{target}", **FAST)
    assert gen.protocol()["fps"] == 16.0 and gen.generate(["a ball"], [0])[0].fps == 16.0 and seen[-1] == 16
    get_generator(f"diffusers:{target}", **FAST, fps=12.5).generate(["a ball"], [0])
    assert seen[-1] == 12.5


def test_image_to_video_pipelines_that_take_a_prompt_are_refused_before_loading(tmp_path, capsys):
    """Wan, CogVideoX, LTX, HunyuanVideo and SkyReels-V2 image-to-video (and ConsisID) take a prompt
    too: they were loaded, then failed with "check size, frames and steps". Their class in
    model_index.json says so before any weights load (the folders here have none)."""
    import diffusers

    refused = {"WanImageToVideoPipeline": "an image", "CogVideoXImageToVideoPipeline": "an image",
               "LTXImageToVideoPipeline": "an image", "HunyuanVideoImageToVideoPipeline": "an image",
               "SkyReelsV2ImageToVideoPipeline": "an image", "ConsisIDPipeline": "an image",
               "I2VGenXLPipeline": "an image", "CosmosVideoToWorldPipeline": "an image or a video"}
    # text alone is a mode of these (Cosmos 2.5's Text2World; LTX's conditions are optional)
    allowed = ["Cosmos2_5_PredictBasePipeline", "LTXConditionPipeline", "WanPipeline"]
    for name in [n for n in [*refused, *allowed] if hasattr(diffusers, n)]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model_index.json").write_text(json.dumps({"_class_name": name}))
        code = main(["generate", "--model", f"diffusers:{folder}", "--prompts", "a ball", "--out",
                     str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == EXIT_BAD_INPUT and err.count("\n") == 1 and not (tmp_path / "o").exists(), err
        said = f"{name} is not a text-to-video pipeline (its call needs {refused.get(name)})"
        assert (said in err) == (name in refused), err


def test_a_vae_that_decodes_only_in_tiles_is_tiled_and_others_are_untouched(pipeline_dir, tmp_path, monkeypatch):
    """AllegroPipeline's VAE raises NotImplementedError("Decoding without tiling has not been
    implemented yet.") unless tiling is on: its clips were "refused". Other pipelines' frames stay
    the pipeline's own, bit for bit, with the prompt passed by name."""
    from diffusers import AllegroPipeline, AllegroTransformer3DModel, AutoencoderKLAllegro, DDIMScheduler
    from transformers import T5Config, T5EncoderModel

    import generators.hf_diffusers as hf

    tokenizer = _tiny_tokenizer(tmp_path / "vocab")
    torch.manual_seed(0)
    transformer = AllegroTransformer3DModel(num_attention_heads=2, attention_head_dim=12, in_channels=4,
                                            out_channels=4, num_layers=1, cross_attention_dim=24, sample_width=8,
                                            sample_height=8, sample_frames=8, caption_channels=24)
    vae = AutoencoderKLAllegro(in_channels=3, out_channels=3, down_block_types=("AllegroDownBlock3D",) * 4,
                               up_block_types=("AllegroUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
                               latent_channels=4, layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4)
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=24, d_kv=8, d_ff=32, num_layers=1,
                                           num_heads=2, pad_token_id=1, eos_token_id=1, decoder_start_token_id=0))
    AllegroPipeline(transformer=transformer, vae=vae, scheduler=DDIMScheduler(), text_encoder=text_encoder,
                    tokenizer=tokenizer).save_pretrained(tmp_path / "allegro")
    gen = get_generator(f"diffusers:{tmp_path / 'allegro'}", steps=1, frames=5, size=32)
    (known,) = gen.generate(["a red ball"], [0])
    assert gen.protocol()["vae_tiling"] is True and known.frames.shape == (5, 32, 32, 3)
    monkeypatch.setattr(hf, "TILED_ONLY_VAES", ())  # a VAE not on the list: tiled after its first refusal
    gen = get_generator(f"diffusers:{tmp_path / 'allegro'}", steps=1, frames=5, size=32)
    assert "vae_tiling" not in gen.protocol()
    (retried,) = gen.generate(["a red ball"], [0])
    assert gen.protocol()["vae_tiling"] is True and np.array_equal(retried.frames, known.frames)
    plain = get_generator(f"diffusers:{pipeline_dir}", **FAST)
    (clip,) = plain.generate(["a red ball falls"], [3])
    own = plain.pipe(prompt="a red ball falls", num_frames=4, height=32, width=32, num_inference_steps=2,
                     output_type="np", generator=torch.Generator("cpu").manual_seed(3)).frames[0]
    assert "vae_tiling" not in plain.protocol() and not plain.pipe.vae.use_tiling
    assert np.array_equal(clip.frames, (np.clip(own, 0, 1) * 255).round().astype(np.uint8))


def test_a_long_prompt_is_said_once_a_run_and_logging_is_left_as_it_was(pipeline_dir, tmp_path):
    """transformers' "Token indices sequence length is longer ... will result in indexing errors"
    (the prompt is cut, not indexed out of range) and the pipeline's "The following part of your
    input was truncated" for every prompt; the index records prompt_truncated for each clip."""
    import logging
    import threading

    import generators.hf_diffusers as hf

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__()
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    keep = Keep()
    roots = [logging.getLogger("diffusers"), logging.getLogger("transformers")]
    for lg in roots:
        lg.addHandler(keep)
    try:
        gen = get_generator(f"diffusers:{pipeline_dir}", steps=1, frames=2, size=16)
        long = ["a red ball falls and bounces on the floor", "a blue square slides across the table"]
        records = generate_folder(gen, [Prompt(t) for t in long], tmp_path / "o", n_per_prompt=2, progress=False)
    finally:
        for lg in roots:
            lg.removeHandler(keep)
    assert all(r["prompt_truncated"]["kept"] == 16 for r in records) and len(records) == 4
    assert sum(hf.TRUNCATED_LINE in line for line in keep.lines) == 1, keep.lines
    assert not any(hf.TOO_LONG_LINE in line for line in keep.lines), keep.lines
    # nothing left installed; another thread's line on the same logger is not judged
    for name in [hf.TOKENIZER_LOGGER, *(c.__module__ for c in type(gen.pipe).__mro__)]:
        assert not any(isinstance(f, hf._SaidOnce) for f in logging.getLogger(name).filters)
    def line():
        return logging.getLogger("x").makeRecord("x", logging.WARNING, __file__, 1, hf.TRUNCATED_LINE, (), None)

    once, elsewhere = hf._SaidOnce({"truncation": True}), []
    thread = threading.Thread(target=lambda: elsewhere.append(line()))
    thread.start()
    thread.join()
    assert once.filter(elsewhere[0]) and not once.filter(line())
