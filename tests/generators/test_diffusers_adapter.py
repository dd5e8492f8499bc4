"""`diffusers:ID_OR_PATH`: a tiny randomly initialised text-to-video pipeline, built and saved here
(nothing downloaded), loaded through `get_generator` and the CLI."""

from __future__ import annotations

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

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

FAST = dict(steps=2, frames=4, size=32)


def _byte_level_chars() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (GPT-2's table)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


def _tiny_tokenizer(folder):
    """A CLIP tokenizer whose vocabulary is single characters (no merges): every text tokenizes."""
    from transformers import CLIPTokenizer

    chars = _byte_level_chars()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars + [c + "</w>" for c in chars]:
        vocab[c] = len(vocab)
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    root = tmp_path_factory.mktemp("tiny-t2v")
    tokenizer = _tiny_tokenizer(root / "vocab")
    torch.manual_seed(0)
    unet = UNet3DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 8), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=8, attention_head_dim=4, norm_num_groups=2)
    vae = AutoencoderKL(  # two blocks: latents are half the frame size
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8), norm_num_groups=2,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=16)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=8, intermediate_size=16, num_attention_heads=2, num_hidden_layers=1,
        max_position_embeddings=16, projection_dim=8, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False)
    pipe = TextToVideoSDPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                 scheduler=scheduler)
    pipe.save_pretrained(root / "pipe")
    return root / "pipe"


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
    from diffusers import (AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline,
                           CogVideoXTransformer3DModel)
    from transformers import T5Config, T5EncoderModel

    root = tmp_path_factory.mktemp("tiny-cogvideox")
    tokenizer = _tiny_tokenizer(root / "vocab")
    tokenizer.model_max_length = 226  # the pipeline pads prompts to 226 tokens
    torch.manual_seed(0)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4, time_embed_dim=2,
        text_embed_dim=16, num_layers=1, sample_width=4, sample_height=4, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=226)
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4)
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1,
                                           num_heads=2, pad_token_id=1, eos_token_id=1, decoder_start_token_id=0))
    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                             scheduler=CogVideoXDDIMScheduler())
    pipe.save_pretrained(root / "pipe")
    return root / "pipe"


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
    # asked for 5 frames, CogVideoX pads its latent frames and makes 8: the record says 8, and
    # what was asked beside it (before, the protocol's 5 overwrote the clip's own count)
    asked = get_generator(f"diffusers:{dit_pipeline_dir}", steps=2, frames=5, size=16)
    assert asked.protocol()["frames"] == 5
    (rec,) = generate_folder(asked, [Prompt("a ball")], tmp_path / "asked", progress=False)
    assert (rec["frames"], rec["frames_requested"], rec["size"]) == (8, 5, [16, 16]) and "size_requested" not in rec
    assert load_clip(tmp_path / "asked", rec).frames.shape == (8, 16, 16, 3)


def test_latte_counts_frames_as_video_length(tmp_path):
    """Latte (a DiT video model, the design U-ViT is compared with) calls its frame count
    video_length; it was refused as 'not a text-to-video pipeline'. Its temporal embedding is
    built for 16 frames: asking for 4 is a one-line error (before: an internal error)."""
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
    short = get_generator(f"diffusers:{tmp_path / 'pipe'}", steps=2, size=16, frames=4)
    with pytest.raises(BadInputError, match="refused the request") as e:
        short.generate(["a ball"], [0])
    assert "\n" not in str(e.value) and "frames" in str(e.value)


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
