"""The metrics as a library user meets them (session 31's red team): in a MetricCollection beside
look-alike metrics, fed tensors of other conventions, through forward(), with the intervals
`evalkit score` gives, and with wrong arguments that must fail with one clear line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics import MetricCollection

from evalkit.metrics.backbones import as_videos
from evalkit.metrics.base import videos_to_uint8
from evalkit.metrics.clip_alignment import CLIPAlignment
from evalkit.metrics.flicker import TemporalFlicker, TemporalHFRatio, WarpingError
from evalkit.metrics.fvd import FrechetVideoDistance, KernelVideoDistance, kvd_with_ci
from evalkit.metrics.physics import PhysicsPlausibility, motion_mask_metrics
from evalkit.metrics.stats import mean_ci
from evalkit.world import make_clip

torch.set_num_threads(1)


def _moving(seed: int, b: int = 2) -> torch.Tensor:
    """float [b, 16, 3, 24, 24] in [0, 1]: smooth noise drifting a pixel a frame."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.avg_pool2d(torch.rand(b, 3, 40, 40, generator=g), 5, 1, 2)
    return torch.stack([base[..., t:t + 24, t:t + 24] for t in range(16)], dim=1)


def test_look_alike_metrics_in_one_collection_keep_their_own_values():
    """A frozen first batch scores 0 on both warping error and the HF ratio, and two warping
    reductions agree on it: torchmetrics then grouped them and updated one for all."""
    frozen = _moving(0)[:, :1].expand(-1, 16, -1, -1, -1).contiguous()
    batches = [frozen, _moving(1), _moving(2)]
    make = {"warp": WarpingError, "hf": TemporalHFRatio, "warp_mae": lambda: WarpingError(reduction="mae")}
    coll = MetricCollection({k: f() for k, f in make.items()})
    alone = {k: f() for k, f in make.items()}
    for x in batches:
        coll.update(x)
        for m in alone.values():
            m.update(x)
    got = coll.compute()
    assert {k: float(v) for k, v in got.items()} == {k: float(m.compute()) for k, m in alone.items()}
    assert len({float(v) for v in got.values()}) == 3
    # two instances of the same metric and settings may still share their work
    twins = MetricCollection({"a": TemporalFlicker(), "b": TemporalFlicker()})
    twins.update(frozen)
    twins.update(_moving(3))
    assert float(twins.compute()["a"]) == float(twins.compute()["b"])


def test_clip_clamps_in_one_collection_keep_their_own_values():
    g = torch.Generator().manual_seed(0)
    prompts = ["a red ball", "a blue cube"]
    text = torch.randn(2, 8, generator=g)
    frames_pos = text[:, None, :] + 0.1 * torch.randn(2, 3, 8, generator=g)  # every cosine positive
    frames_mixed = torch.randn(2, 3, 8, generator=g)  # some negative
    coll = MetricCollection({"frame": CLIPAlignment(backbone=object.__new__(_FakeClip), clamp="frame"),
                             "mean": CLIPAlignment(backbone=object.__new__(_FakeClip), clamp="mean")})
    for f in (frames_pos, frames_mixed):
        coll.update(prompts=prompts, frame_embeds=f, text_embeds=text)
    out = coll.compute()
    frame, mean = CLIPAlignment(backbone=object.__new__(_FakeClip), clamp="frame"), CLIPAlignment(
        backbone=object.__new__(_FakeClip), clamp="mean")
    for m in (frame, mean):
        for f in (frames_pos, frames_mixed):
            m.update(prompts=prompts, frame_embeds=f, text_embeds=text)
    assert float(out["frame_clip_score"]) == float(frame.compute()["clip_score"])
    assert float(out["mean_clip_score"]) == float(mean.compute()["clip_score"])
    assert float(out["frame_clip_score"]) != float(out["mean_clip_score"])


class _FakeClip:
    """Stands for a CLIP backbone where embeddings are given precomputed (never called)."""

    def encode_video_frames(self, x):  # pragma: no cover - not reached
        raise AssertionError

    def encode_text(self, prompts):  # pragma: no cover - not reached
        raise AssertionError


@pytest.mark.parametrize("convert", [lambda v: v.float(), lambda v: v.float() / 127.5 - 1, lambda v: v.long()],
                         ids=["0-255 floats", "[-1, 1]", "int64"])
def test_videos_of_another_convention_are_refused_not_clamped(convert):
    """0-255 floats read as a white frozen clip (flicker 1.0) and a [-1, 1] output lost half its
    range; both, and integer dtypes other than uint8, are now a one-line error."""
    u8 = torch.from_numpy(make_clip("test", 0, 0).frames).permute(0, 3, 1, 2)[None]  # [1, T, 3, H, W]
    bad = convert(u8)
    for fn in (videos_to_uint8, as_videos, TemporalFlicker().update):
        with pytest.raises(ValueError, match="videos") as e:
            fn(bad)
        assert "\n" not in str(e.value)
    # a float clip overshooting [0, 1] a little (a sampler's ringing) is clamped, as before
    x = u8.float() / 255
    near = x * 1.04 - 0.02
    assert np.array_equal(videos_to_uint8(near), videos_to_uint8(near.clamp(0, 1)))
    assert np.array_equal(videos_to_uint8(x), videos_to_uint8(u8))


def test_forward_on_set_metrics_accumulates_and_keeps_the_state():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(50, 4, generator=g), torch.randn(50, 4, generator=g) + 0.5
    for metric in (FrechetVideoDistance(num_features=4), KernelVideoDistance()):
        metric.update(real, real=True)
        metric.update(fake, real=False)
        before = float(metric.compute())
        assert metric(fake[:10], real=False) is None
        ref = type(metric)(**({"num_features": 4} if isinstance(metric, FrechetVideoDistance) else {}))
        ref.update(real, real=True)
        ref.update(torch.cat([fake, fake[:10]]), real=False)
        assert float(metric.compute()) == pytest.approx(float(ref.compute()), rel=1e-12)
        assert float(metric.compute()) != before


def test_python_intervals_are_the_ones_score_reports():
    """A bootstrap alone gave two frozen clips "1 [1, 1]"; the classes now use score's rule."""
    frozen = _moving(0)[:, :1].expand(-1, 16, -1, -1, -1).contiguous()
    m = TemporalFlicker()
    m.update(frozen)
    est = m.compute_with_ci()
    ref = mean_ci(m.per_clip(), bounds=(0.0, 1.0))
    assert (est.value, est.ci_low, est.ci_high) == (ref.value, ref.ci_low, ref.ci_high)
    assert est.value == 1.0 and est.ci_low < 0.9
    with pytest.raises(RuntimeError, match="before any update"):
        TemporalFlicker().compute_with_ci()
    clip = CLIPAlignment(backbone=object.__new__(_FakeClip))
    t = torch.eye(2, 4, dtype=torch.float64)
    clip.update(prompts=["a", "b"], frame_embeds=t[:, None, :].repeat(1, 2, 1) + torch.tensor([0.1, 0.5], dtype=torch.float64)[:, None, None],
                text_embeds=t)
    c = clip.compute_with_ci()
    assert c.method == "bootstrap-percentile+t" and c.ci_high <= 100.0
    assert (c.ci_low, c.ci_high) == (mean_ci(clip.per_clip(), bounds=(0.0, 100.0)).ci_low, 100.0)


def test_kvd_interval_with_one_sample_is_an_error_not_nan():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="at least 2 samples per set"):
        kvd_with_ci(torch.randn(1, 4, generator=g), torch.randn(5, 4, generator=g))


def test_per_clip_fps_as_a_tensor_or_array_is_accepted():
    clips = [make_clip("test", i, 0) for i in range(2)]
    videos = torch.stack([torch.from_numpy(c.frames).permute(0, 3, 1, 2) for c in clips])
    prompts = [c.prompt for c in clips]
    scores = []
    for fps in ([8.0, 8.0], torch.tensor([8.0, 8.0]), np.array([8.0, 8.0])):
        m = PhysicsPlausibility()
        m.update(videos, np.array(prompts) if isinstance(fps, np.ndarray) else prompts, fps=fps)
        scores.append(float(m.compute()))
    assert scores[0] == scores[1] == scores[2]
    with pytest.raises(ValueError, match="1-D"):
        PhysicsPlausibility().update(videos, prompts, fps=torch.ones(2, 2))


def test_wrong_arguments_fail_with_one_clear_line():
    with pytest.raises(ValueError, match="not a CLIP backbone"):
        CLIPAlignment(backbone=object()).update(torch.rand(1, 2, 3, 8, 8), ["a red ball"])
    with pytest.raises(ValueError, match="prompt 0 is NoneType"):
        CLIPAlignment(backbone=object.__new__(_FakeClip)).update(torch.rand(1, 2, 3, 8, 8), [None])
    with pytest.raises(ValueError, match="not callable"):
        FrechetVideoDistance(num_features=4, feature_extractor="world-video-encoder")
    a, b = FrechetVideoDistance(num_features=4), FrechetVideoDistance(num_features=8)
    with pytest.raises(ValueError, match="num_features=8 into one of 4"):
        a.merge_state(b)
    frames = make_clip("test", 0, 0).frames
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="downscale"):
            motion_mask_metrics(frames, frames, downscale=bad)


def test_streaming_fvd_gives_its_interval_when_it_keeps_the_features():
    from evalkit.metrics.fvd import fvd_with_ci

    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(60, 4, generator=g), torch.randn(40, 4, generator=g) + 0.7
    m = FrechetVideoDistance(num_features=4, keep_features=True)
    for chunk in torch.split(real, 25):
        m.update(chunk, real=True)
    for chunk in torch.split(fake, 15):
        m.update(chunk, real=False)
    est = m.compute_with_ci(n_boot=100, seed=0)
    ref = fvd_with_ci(real.double().numpy(), fake.double().numpy(), n_boot=100, seed=0)
    assert (est.value, est.ci_low, est.ci_high, est.n) == (ref.value, ref.ci_low, ref.ci_high, 40)
    assert est.value == pytest.approx(float(m.compute()), rel=1e-9) and est.ci_low < est.value < est.ci_high
    assert m.protocol()["ci"].startswith("two-sample bootstrap")
    m.reset()  # the kept features go with the sums
    with pytest.raises(RuntimeError, match="at least 2 real"):
        m.compute_with_ci()
    plain = FrechetVideoDistance(num_features=4)
    plain.update(real, real=True)
    plain.update(fake, real=False)
    with pytest.raises(RuntimeError, match="keep_features=True"):
        plain.compute_with_ci()
