"""The metric classes' states and messages (session 33, from a red team using them in a Lightning-style
module): float64 states whatever the parent casts, KVD one number per pair of sets, clear errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from evalkit.metrics.clip_alignment import CLIPAlignment
from evalkit.metrics.flicker import TemporalFlicker, TemporalHFRatio, WarpingError
from evalkit.metrics.fvd import FrechetVideoDistance, KernelVideoDistance, kvd_with_ci

from .helpers import simulate_ddp_sync


def _states(m):
    for name, value in m.metric_state.items():
        for v in value if isinstance(value, list) else [value]:
            yield name, v


# ------------------------------------------------------------------------------------------------
# dtype casts of a parent module


@pytest.mark.parametrize("cast", [lambda m: m.to(torch.bfloat16), lambda m: m.to(torch.float16),
                                  lambda m: m.half(), lambda m: m.bfloat16()],
                         ids=["to-bf16", "to-fp16", "half", "bfloat16"])
def test_a_parent_cast_to_low_precision_keeps_the_states_float64(cast):
    """Lightning's bf16-true casts the whole module: the float64 count stopped at 256 in bfloat16
    (256 + 1 rounds to 256), so 600 clips read as 256 and the mean drifted."""
    g = torch.Generator().manual_seed(0)
    clips = torch.rand(600, 2, 3, 8, 8, generator=g) * 0.2 + 0.4
    ref = TemporalFlicker()
    parent = torch.nn.Module()
    parent.head = torch.nn.Linear(4, 4)
    parent.flicker = TemporalFlicker()
    parent.fvd = FrechetVideoDistance(num_features=8)
    parent.flicker.update(clips[:100])  # cast mid-run too: what is there already stays exact
    cast(parent)
    assert parent.head.weight.dtype in (torch.bfloat16, torch.float16)  # the cast did happen
    for i in range(100, 600, 50):
        parent.flicker.update(clips[i:i + 50])
    for i in range(0, 600, 50):
        ref.update(clips[i:i + 50])
    assert float(parent.flicker.count) == 600
    assert float(parent.flicker.compute()) == pytest.approx(float(ref.compute()), rel=1e-12)
    assert parent.flicker.compute_with_ci(n_boot=20).n == 600
    for m in (parent.flicker, parent.fvd):
        assert all(v.dtype == torch.float64 for _, v in _states(m))
        assert all(v.dtype == torch.float64 for v in m._defaults.values() if isinstance(v, torch.Tensor))
    parent.flicker.reset()  # the defaults were kept too
    assert parent.flicker.total.dtype == torch.float64


def test_set_dtype_keeps_float64_but_device_moves_still_apply():
    m = TemporalFlicker()
    m.update(torch.rand(2, 3, 3, 8, 8))
    m.set_dtype(torch.float16)
    assert all(v.dtype == torch.float64 for _, v in _states(m))
    m.to(device="meta")  # a device move reaches the states (meta: no data, any machine)
    assert all(v.device.type == "meta" and v.dtype == torch.float64 for _, v in _states(m))


# ------------------------------------------------------------------------------------------------
# KVD


def test_kvd_is_one_number_per_pair_of_sets():
    """compute() drew random subsets by position: the same sets gave other numbers in another
    order, split or merge, and differed from compute_with_ci() and `evalkit score`."""
    rng = np.random.default_rng(0)
    real, fake = torch.from_numpy(rng.normal(size=(40, 16))), torch.from_numpy(rng.normal(0.3, 1.2, size=(30, 16)))
    one = KernelVideoDistance()
    one.update(real, real=True)
    one.update(fake, real=False)
    value = float(one.compute())
    assert value == one.compute_with_ci(n_boot=5).value == kvd_with_ci(real.numpy(), fake.numpy(), n_boot=5).value
    for seed in range(3):  # another order
        p = np.random.default_rng(seed).permutation(40)
        m = KernelVideoDistance()
        m.update(real[p], real=True)
        m.update(fake, real=False)
        assert float(m.compute()) == pytest.approx(value, rel=1e-12, abs=1e-15)
    a, b = KernelVideoDistance(), KernelVideoDistance()  # merged shards
    a.update(real[:25], real=True)
    a.update(fake[:5], real=False)
    b.update(real[25:], real=True)
    b.update(fake[5:], real=False)
    a.merge_state(b)
    assert float(a.compute()) == pytest.approx(value, rel=1e-12, abs=1e-15)
    shards = []  # interleaved DDP shards (DistributedSampler), torchmetrics' own sync
    for r in range(2):
        s = KernelVideoDistance()
        s.update(real[r::2], real=True)
        s.update(fake[r::2], real=False)
        shards.append(s)
    assert float(simulate_ddp_sync(shards).compute()) == pytest.approx(value, rel=1e-12, abs=1e-15)
    with pytest.warns(FutureWarning, match="subset_size ignored"):
        KernelVideoDistance(subset_size=50)
    assert one.protocol()["estimator"] == "unbiased MMD^2 of the whole sets"


# ------------------------------------------------------------------------------------------------
# messages


def test_errors_name_the_method_and_the_cause():
    clip = CLIPAlignment()
    with pytest.raises(RuntimeError, match=r"CLIPAlignment\.compute_with_ci\(\) called before any update"):
        clip.compute_with_ci()
    with pytest.raises(RuntimeError, match=r"retrieval_with_ci\(\) called before any update"):
        clip.retrieval_with_ci()
    m = TemporalFlicker()
    m.update(torch.rand(0, 4, 3, 8, 8))
    with pytest.raises(RuntimeError, match=r"TemporalFlicker\.compute\(\): no clips yet; update\(\) was called only "
                                           r"with empty batches"):
        m.compute()
    with pytest.raises(RuntimeError, match="only with empty batches"):
        m.compute_with_ci()
    with pytest.raises(ValueError, match=r"TemporalHFRatio needs clips of at least hf_min_frames\(cutoff=0.25\) = 8 "
                                         r"frames, got 5"):
        TemporalHFRatio().update(torch.rand(2, 5, 3, 8, 8))


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_a_refused_update_is_not_called_an_empty_batch():
    """torchmetrics counted an update() that raised, and compute() blamed "empty batches"."""
    m = TemporalFlicker()
    with pytest.raises(ValueError, match="range over"):
        m.update(torch.rand(2, 4, 3, 8, 8) * 255)  # 0-255 floats
    with pytest.raises(RuntimeError, match=r"compute\(\): no clips yet; 1 update\(\) call raised an error and "
                                           r"added nothing: fix the input"):
        m.compute()
    m.update(torch.rand(0, 4, 3, 8, 8))
    with pytest.raises(RuntimeError, match=r"only with empty batches \(1 update\(\) call raised"):
        m.compute_with_ci()
    m.update(torch.rand(2, 4, 3, 8, 8))
    assert m.compute_with_ci().n == 2 and m._update_count == 2
    m.reset()
    with pytest.raises(RuntimeError, match="called before any update"):
        m.compute()


def test_physics_takes_one_prompt_per_video_as_clip_alignment_does():
    from evalkit.metrics.physics import PhysicsPlausibility

    videos = torch.rand(2, 4, 3, 16, 16)
    with pytest.raises(ValueError, match="got 1 prompts for 2 videos; give one per video$"):
        PhysicsPlausibility().update(videos, "a small red ball falls and bounces on the floor")
    with pytest.raises(ValueError, match="got 2 videos and 1 prompts"):
        CLIPAlignment().update(videos, "a small red ball falls and bounces on the floor")


def test_one_clip_interval_says_why_it_is_nan():
    m = TemporalFlicker()
    m.update(torch.rand(1, 4, 3, 8, 8))
    with pytest.warns(UserWarning, match="one clip has no interval"):
        est = m.compute_with_ci(n_boot=20)
    assert est.n == 1 and np.isnan(est.ci_low) and np.isnan(est.ci_high)
    two = TemporalFlicker()
    two.update(torch.rand(2, 4, 3, 8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        two.compute_with_ci(n_boot=20)  # no warning from 2 clips


def _fed(m, x):
    m.update(x)
    return m


@pytest.mark.parametrize("mine,theirs,message", [
    (TemporalHFRatio(), TemporalHFRatio(cutoff=0.5), r"TemporalHFRatio into a TemporalHFRatio of other settings "
                                                       r"\(cutoff=0.5 vs 0.25\)"),
    (WarpingError(), WarpingError(reduction="mae"), r"\(reduction='mae' vs 'mse'\)"),
    (TemporalFlicker(), TemporalHFRatio(), "cannot merge a TemporalHFRatio into a TemporalFlicker"),
], ids=["hf-cutoff", "warp-reduction", "other-class"])
def test_merging_metrics_of_other_settings_names_them(mine, theirs, message):
    x = torch.rand(2, 8, 3, 8, 8)
    with pytest.raises(ValueError, match=message):
        _fed(mine, x).merge_state(_fed(theirs, x))


def test_merging_feature_metrics_names_what_differs():
    r = torch.randn(6, 8, dtype=torch.float64)

    def fed(m):
        m.update(r, real=True)
        m.update(r + 1, real=False)
        return m

    keep = fed(FrechetVideoDistance(8, keep_features=True))
    with pytest.raises(ValueError, match="keep_features=False into one with keep_features=True"):
        keep.merge_state(fed(FrechetVideoDistance(8)))
    with pytest.raises(ValueError, match="num_features=4 into one of 8"):
        fed(FrechetVideoDistance(8)).merge_state(FrechetVideoDistance(4))
    with pytest.raises(ValueError, match="lacks real_features, fake_features"):
        keep.merge_state(fed(FrechetVideoDistance(8)).metric_state)
    plain = fed(FrechetVideoDistance(8))  # sums from a metric that also kept features: fine
    plain.merge_state(fed(FrechetVideoDistance(8, keep_features=True)))
    assert float(plain.real_n) == 12


def test_a_result_computed_before_a_cast_comes_back_float64_after_it():
    """torchmetrics casts its cached result with the module: compute() after a bf16 cast, with no
    new update, came back bf16-rounded (0.6680 for 0.6685) and `dtype` said bfloat16 (session 33)."""
    m = TemporalFlicker()
    m.update(torch.rand(4, 3, 3, 8, 8, generator=torch.Generator().manual_seed(2)))
    before = m.compute()
    m.to(torch.bfloat16)
    after = m.compute()
    assert after.dtype == torch.float64 and m.dtype == torch.float64 and float(after) == float(before)


def test_clip_alignments_with_one_backbone_merge_however_it_was_named():
    """The default named "default" and the same backbone named "world-clip" refused to merge, and two
    workers' loads of one backbone object differed by id() (session 33)."""
    from evalkit.metrics.backbones import DEFAULT_CLIP_BACKBONE, get_backbone

    a, b = CLIPAlignment(), CLIPAlignment(backbone=DEFAULT_CLIP_BACKBONE)
    assert a._merge_settings == b._merge_settings
    one, two = get_backbone(DEFAULT_CLIP_BACKBONE), get_backbone(DEFAULT_CLIP_BACKBONE)
    x, y = CLIPAlignment(backbone=one), CLIPAlignment(backbone=two)
    assert x._merge_settings == y._merge_settings
    assert x._merge_settings["backbone"] == repr(f"{one.name}@{one.sha256[:16]}")
