"""Samplers on a Gaussian data distribution whose optimal noise predictor is known in closed form,
and classifier-free guidance conventions.

Data x0 ~ N(mu, s^2 I), x_t = a x0 + sigma n with a = sqrt(ab_t), sigma = sqrt(1 - ab_t). Then
x_t ~ N(a mu, a^2 s^2 + sigma^2) and cov(n, x_t) = sigma, so the MSE-optimal predictor is
    eps*(x_t, t) = E[n | x_t] = sigma (x_t - a mu) / (a^2 s^2 + sigma^2).
The probability-flow ODE between two Gaussians is the monotone affine map, so an exact ODE solver
sends x_T to mu + s (x_T - a_T mu) / sqrt(a_T^2 s^2 + sigma_T^2): a per-sample target.
"""

import itertools
import math

import pytest
import torch

from evalkit.errors import BadInputError
from generators.uvit.diffusion import GaussianDiffusion
from generators.uvit.samplers import (
    SAMPLERS,
    _denoise,
    cfg_eps_fn,
    ddim_sample,
    ddpm_sample,
    dpmpp_2m_sample,
    get_sampler,
    guidance_timesteps,
    parse_guidance_interval,
    standard_to_uvit_scale,
    timesteps_for,
    uvit_to_standard_scale,
)



SHAPE = (4096, 8)
MU = torch.linspace(-0.5, 0.5, 8)
S = 0.5


def gaussian_eps_fn(d: GaussianDiffusion, mu=MU, s=S):
    ab_all = d.alphas_cumprod.float()

    def eps_fn(x, t):
        ab = ab_all[t][:, None]
        return (1 - ab).sqrt() * (x - ab.sqrt() * mu) / (ab * s**2 + 1 - ab)

    return eps_fn


def ode_target(d, x_T):
    a2 = d.alphas_cumprod[-1].item()
    return MU + S * (x_T - math.sqrt(a2) * MU) / math.sqrt(a2 * S**2 + 1 - a2)


def check_stats(x, tol_mean=0.03, tol_std=0.03):
    torch.testing.assert_close(x.mean(0), MU, atol=tol_mean, rtol=0)
    assert torch.all((x.std(0) / S - 1).abs() < tol_std), x.std(0)


@pytest.fixture(scope="module")
def d():
    return GaussianDiffusion("linear", 1000)


@pytest.fixture(scope="module")
def x_T():
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(123))


def test_ddpm_1000_steps_matches_data(d):
    x = ddpm_sample(d, gaussian_eps_fn(d), SHAPE, 1000, generator=torch.Generator().manual_seed(0))
    check_stats(x)


def test_ddim_and_dpmpp_match_data_and_the_exact_ode_map(x_T):
    """Cosine schedule (the presets' default), default "trailing" spacing."""
    d = GaussianDiffusion("cosine", 1000)
    target = ode_target(d, x_T)
    x_ddim = ddim_sample(d, gaussian_eps_fn(d), SHAPE, 100, eta=0.0, x_T=x_T)
    x_dpm = dpmpp_2m_sample(d, gaussian_eps_fn(d), SHAPE, 20, x_T=x_T)
    for x in (x_ddim, x_dpm):
        check_stats(x)
        assert (x - target).abs().mean().item() < 0.01
    assert (x_ddim - x_dpm).abs().mean().item() < 0.01  # the two ODE solvers agree per sample
    # second order pays: DPM-Solver++ at 20 steps is closer to the ODE map than DDIM at 100
    assert (x_dpm - target).abs().mean() < (x_ddim - target).abs().mean()


def test_dpmpp_logsnr_spacing_on_linear_schedule(d, x_T):
    x = dpmpp_2m_sample(d, gaussian_eps_fn(d), SHAPE, 20, x_T=x_T, spacing="logsnr")
    check_stats(x)
    assert (x - ode_target(d, x_T)).abs().mean().item() < 0.01


def test_samplers_agree_in_distribution():
    d = GaussianDiffusion("cosine", 1000)
    outs = {
        "ddpm": ddpm_sample(d, gaussian_eps_fn(d), SHAPE, 1000, generator=torch.Generator().manual_seed(1)),
        "ddim": ddim_sample(d, gaussian_eps_fn(d), SHAPE, 100, generator=torch.Generator().manual_seed(2)),
        "dpmpp-2m": dpmpp_2m_sample(
            d, gaussian_eps_fn(d), SHAPE, 25, generator=torch.Generator().manual_seed(3)
        ),
    }
    for x in outs.values():
        check_stats(x)
    ref = outs["ddpm"]
    for x in outs.values():
        torch.testing.assert_close(x.std(0), ref.std(0), atol=0.03, rtol=0)
        torch.testing.assert_close(x.mean(0), ref.mean(0), atol=0.04, rtol=0)


def test_ddim_eta0_is_deterministic_given_x_T(d, x_T):
    a = ddim_sample(d, gaussian_eps_fn(d), SHAPE, 20, x_T=x_T, generator=torch.Generator().manual_seed(0))
    b = ddim_sample(d, gaussian_eps_fn(d), SHAPE, 20, x_T=x_T, generator=torch.Generator().manual_seed(99))
    assert torch.equal(a, b)


def test_ddim_eta1_is_ddpm(d):
    """DDIM with eta = 1 and DDPM's posterior sampler are the same chain: same seed, same samples."""
    a = ddpm_sample(d, gaussian_eps_fn(d), (256, 8), 50, generator=torch.Generator().manual_seed(5))
    b = ddim_sample(d, gaussian_eps_fn(d), (256, 8), 50, eta=1.0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_same_seed_same_clip_and_per_row_generators(d, name):
    fn = get_sampler(name)
    gens = lambda: [torch.Generator().manual_seed(s) for s in (10, 11, 12)]
    a = fn(d, gaussian_eps_fn(d), (3, 8), 10, generator=gens())
    b = fn(d, gaussian_eps_fn(d), (3, 8), 10, generator=gens())
    assert torch.equal(a, b)
    # row 1 depends on its own seed only, not on the rows batched with it
    solo = fn(d, gaussian_eps_fn(d), (1, 8), 10, generator=[torch.Generator().manual_seed(11)])
    torch.testing.assert_close(a[1:2], solo, rtol=1e-6, atol=1e-6)


def test_timestep_spacings(d):
    assert timesteps_for(d, 50, "trailing")[0] == 999 and timesteps_for(d, 50, "trailing")[-1] == 19
    assert timesteps_for(d, 50, "uniform") == list(range(980, -1, -20))
    lin = timesteps_for(d, 20, "linspace")
    assert lin[0] == 999 and lin[-1] == 0 and len(lin) == 20
    k = timesteps_for(d, 20, "logsnr")
    assert k[0] == 999 and k[-1] == 0 and all(a > b for a, b in itertools.pairwise(k)) and len(k) <= 20
    lam = [0.5 * math.log(d.alphas_cumprod[t] / (1 - d.alphas_cumprod[t])) for t in k]
    steps = [b - a for a, b in itertools.pairwise(lam)]
    assert max(steps[:-4]) / min(steps[:-4]) < 1.1  # uniform in log-SNR up to integer rounding,
    assert max(steps) / min(steps) < 1.6  # which matters most near t = 0, where lambda moves fastest
    assert timesteps_for(d, 1000, "trailing") == list(range(999, -1, -1))
    with pytest.raises(BadInputError):
        timesteps_for(d, 0, "trailing")
    with pytest.raises(BadInputError):
        timesteps_for(d, 10, "sideways")
    with pytest.raises(BadInputError):
        get_sampler("euler")


def test_callback_and_clipped_x0_stays_consistent(d):
    seen = []
    ddim_sample(
        d,
        gaussian_eps_fn(d),
        (2, 8),
        7,
        generator=torch.Generator().manual_seed(0),
        callback=lambda i, n, t, x: seen.append((i, n, t)),
    )
    assert [s[0] for s in seen] == list(range(7)) and seen[0][1] == 7 and seen[0][2] == 999
    x = torch.randn(4, 8) * 3
    ab = d.alphas_cumprod[500].item()
    x0, eps = _denoise(gaussian_eps_fn(d, mu=torch.full((8,), 5.0)), x, 500, ab, clip_x0=1.0)
    assert x0.abs().max() <= 1.0
    torch.testing.assert_close(math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps, x, rtol=1e-5, atol=1e-5)


# ---- classifier-free guidance ---------------------------------------------------------------------


def toy_model(calls):
    def model_fn(x, t, cond):
        calls.append(x.shape[0])
        emb, scale = cond  # a tuple condition, batched along dim 0
        return torch.tanh(x * scale[:, None] + emb) + t[:, None].float() * 1e-3

    return model_fn


def _conds(b=5):
    g = torch.Generator().manual_seed(0)
    cond = (torch.randn(b, 8, generator=g), torch.rand(b, generator=g) + 0.5)
    uncond = (torch.zeros(b, 8), torch.ones(b))
    return cond, uncond, torch.randn(b, 8, generator=g), torch.full((b,), 300)


def test_guidance_scale_one_is_conditional_and_zero_unconditional():
    cond, uncond, x, t = _conds()
    calls = []
    m = toy_model(calls)
    assert torch.equal(cfg_eps_fn(m, cond, uncond, 1.0)(x, t), m(x, t, cond))
    assert torch.equal(cfg_eps_fn(m, cond, uncond, 0.0)(x, t), m(x, t, uncond))


def test_guidance_batched_in_one_forward_standard_convention():
    cond, uncond, x, t = _conds()
    calls = []
    m = toy_model(calls)
    out = cfg_eps_fn(m, cond, uncond, 4.0)(x, t)
    assert calls == [10], "cond and uncond must run as one batch of 2B"
    c, u = m(x, t, cond), m(x, t, uncond)
    torch.testing.assert_close(out, u + 4.0 * (c - u))


def test_guidance_rescale_restores_the_conditional_spread_per_sample():
    """Lin et al. 2024 (diffusers' guidance_rescale): phi = 1 gives each sample the conditional
    output's standard deviation, phi = 0 is plain guidance, phi between mixes the two linearly."""
    cond, uncond, x, t = _conds()
    m = toy_model([])
    c = m(x, t, cond)
    plain = cfg_eps_fn(m, cond, uncond, 4.0)(x, t)
    full = cfg_eps_fn(m, cond, uncond, 4.0, rescale=1.0)(x, t)
    torch.testing.assert_close(full.std(dim=1), c.std(dim=1))
    assert not torch.allclose(plain.std(dim=1), c.std(dim=1))  # guidance inflated it
    torch.testing.assert_close(full / plain, (c.std(dim=1) / plain.std(dim=1))[:, None].expand_as(plain))
    torch.testing.assert_close(cfg_eps_fn(m, cond, uncond, 4.0, rescale=0.7)(x, t), 0.7 * full + 0.3 * plain)
    torch.testing.assert_close(cfg_eps_fn(m, cond, uncond, 4.0, rescale=0.0)(x, t), plain)
    assert torch.equal(cfg_eps_fn(m, cond, uncond, 1.0, rescale=0.7)(x, t), c)  # s = 1: the conditional model
    with pytest.raises(BadInputError, match="rescale"):
        cfg_eps_fn(m, cond, uncond, 4.0, rescale=1.5)


def test_guidance_interval_guides_inside_and_calls_the_conditional_model_alone_outside():
    """Kynkaanniemi et al. 2024: inside [t_lo, t_hi] the usual guided output (one 2B forward);
    outside, the conditional model's output exactly, at the cost of one B forward."""
    cond, uncond, x, _ = _conds()
    calls = []
    m = toy_model(calls)
    fn = cfg_eps_fn(m, cond, uncond, 4.0, interval=(200, 600))
    for t_val, guided in ((199, False), (200, True), (450, True), (600, True), (601, False), (999, False)):
        t = torch.full((5,), t_val)
        calls.clear()
        out = fn(x, t)
        c, u = m(x, t, cond), m(x, t, uncond)
        if guided:
            assert calls[0] == 10
            torch.testing.assert_close(out, u + 4.0 * (c - u))
        else:
            assert calls[0] == 5 and torch.equal(out, c)


def test_guidance_interval_fractions_map_onto_the_chain_and_bad_ones_are_refused():
    d = GaussianDiffusion("cosine", 1000)
    assert guidance_timesteps((0.0, 1.0), d) == (0, 999)  # every step, including the trailing start at T-1
    assert guidance_timesteps((0.25, 0.5), d) == (250, 500)  # t/T in [lo, hi], as --help says
    assert guidance_timesteps((0.2, 0.799), d) == (200, 799)  # trailing-20 visits t = 799 (t/T = 0.799)
    assert parse_guidance_interval("0.1:0.75") == (0.1, 0.75)
    assert parse_guidance_interval("none") is None and parse_guidance_interval("all") is None
    for bad in ("0.8:0.2", "0.5:0.5", "-0.1:0.5", "0.2:1.5", "0.2", "a:b", ""):
        with pytest.raises(BadInputError, match="guidance interval") as e:
            parse_guidance_interval(bad)
        assert "\n" not in str(e.value)
    with pytest.raises(BadInputError, match="guidance interval"):
        guidance_timesteps((0.6, 0.3), d)


def test_sampling_with_a_full_interval_equals_plain_guidance_and_an_empty_one_the_conditional_model():
    """On the Gaussian problem with a toy condition: (0, 1) changes nothing; an interval the chain
    never visits is guidance 1."""
    d = GaussianDiffusion("cosine", 1000)
    base = gaussian_eps_fn(d)

    def m(x, t, c):
        return base(x, t) + c  # the condition shifts the noise estimate

    cond, uncond = torch.full((64, 8), 0.05), torch.zeros(64, 8)
    x_T = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))

    def run(**kw):
        return dpmpp_2m_sample(d, cfg_eps_fn(m, cond, uncond, **kw), (64, 8), 10, x_T=x_T.clone())

    torch.testing.assert_close(run(scale=3.0, interval=guidance_timesteps((0.0, 1.0), d)), run(scale=3.0))
    never = guidance_timesteps((0.0, 0.05), d)  # trailing 10-step spacing calls t = 999, 899, ..., 99
    torch.testing.assert_close(run(scale=3.0, interval=never), run(scale=1.0))
    assert not torch.allclose(run(scale=3.0), run(scale=1.0))


@pytest.mark.parametrize("s_uvit", [0.0, 0.4, 3.0])
def test_conversion_to_uvit_convention(s_uvit):
    cond, uncond, x, t = _conds()
    m = toy_model([])
    c, u = m(x, t, cond), m(x, t, uncond)
    uvit = (1 + s_uvit) * c - s_uvit * u  # U-ViT's released sampling code
    torch.testing.assert_close(cfg_eps_fn(m, cond, uncond, uvit_to_standard_scale(s_uvit))(x, t), uvit)
    assert standard_to_uvit_scale(uvit_to_standard_scale(s_uvit)) == pytest.approx(s_uvit)
    assert uvit_to_standard_scale(0.0) == 1.0  # U-ViT's 0 is no guidance, our 1


def test_guidance_on_v_output_equals_guidance_on_eps():
    """v -> eps is affine with t-only coefficients, so guiding v then converting equals guiding eps."""
    dv = GaussianDiffusion("cosine", 1000, prediction="v")
    cond, uncond, x, t = _conds()
    m = toy_model([])
    guided_then_converted = dv.eps_fn(cfg_eps_fn(m, cond, uncond, 3.0))(x, t)
    to_eps = lambda c: dv.output_to_eps(m(x, t, c), x, t)
    torch.testing.assert_close(guided_then_converted, to_eps(uncond) + 3.0 * (to_eps(cond) - to_eps(uncond)))
