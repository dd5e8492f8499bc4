"""The forward process: closed form against the chain, schedules, posterior, loss."""

import math

import pytest
import torch
import torch.nn.functional as F

from generators.uvit.diffusion import GaussianDiffusion, from_model_space, to_model_space



def test_linear_schedule_endpoints():
    d = GaussianDiffusion("linear", 1000)
    assert d.betas.dtype == torch.float64 and d.betas.shape == (1000,)
    assert d.betas[0].item() == pytest.approx(1e-4, abs=1e-15)
    assert d.betas[-1].item() == pytest.approx(0.02, abs=1e-15)
    assert torch.all(d.betas[1:] > d.betas[:-1])
    # alpha_bar at T-1 is tiny: x_{T-1} is essentially N(0, I)
    assert d.alphas_cumprod[-1].item() < 1e-4


def test_cosine_schedule_monotone():
    d = GaussianDiffusion("cosine", 1000)
    ab = d.alphas_cumprod
    assert torch.all(ab[1:] < ab[:-1]), "alpha_bar must strictly decrease"
    assert torch.all((d.betas > 0) & (d.betas <= 0.999))
    assert ab[0].item() > 0.9999 and ab[-1].item() < 1e-6
    # Nichol & Dhariwal: alpha_bar(t) = f(t)/f(0) with f the squared cosine
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    assert ab[499].item() == pytest.approx(f(0.5) / f(0.0), rel=1e-9)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("t", [0, 1, 10, 500, 999])
def test_closed_form_equals_iterated_chain_exactly(schedule, t):
    """With shared noise the chain is a linear map of (x0, n_0..n_t): x_t = sqrt(ab_t) x0 + sum_s c_s n_s,
    c_s = sqrt(beta_s) prod_{r>s} sqrt(1 - beta_r). Then sum_s c_s^2 = 1 - ab_t (telescoping), so
    q_sample(x0, t, eps) with eps = sum_s c_s n_s / sqrt(1 - ab_t) must equal the chain exactly."""
    d = GaussianDiffusion(schedule, 1000)
    g = torch.Generator().manual_seed(t)
    x0 = torch.randn(64, 5, dtype=torch.float64, generator=g)
    noises = torch.randn(t + 1, 64, 5, dtype=torch.float64, generator=g)
    x = x0
    for s in range(t + 1):
        x = d.q_step(x, torch.full((64,), s), noises[s])
    beta = d.betas[: t + 1]
    tail = torch.cat(
        [torch.flip(torch.cumprod(torch.flip((1 - beta[1:]).sqrt(), [0]), 0), [0]), beta.new_ones(1)]
    )
    c = beta.sqrt() * tail  # c_s
    assert (c**2).sum().item() == pytest.approx(1 - d.alphas_cumprod[t].item(), rel=1e-10)
    eps = torch.einsum("s,sbd->bd", c, noises) / (1 - d.alphas_cumprod[t]).sqrt()
    torch.testing.assert_close(d.q_sample(x0, torch.full((64,), t), eps), x, rtol=1e-10, atol=1e-10)


def test_closed_form_matches_chain_statistically():
    """Independent noise, float32 as in training: mean and variance of x_t | x0 agree."""
    d = GaussianDiffusion("linear", 1000)
    t, n = 300, 40000
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((n,), 0.7)
    x = x0
    for s in range(t + 1):
        x = d.q_step(x, torch.full((n,), s), torch.randn(n, generator=g))
    ab = d.alphas_cumprod[t].item()
    mean, var = math.sqrt(ab) * 0.7, 1 - ab
    assert x.mean().item() == pytest.approx(mean, abs=5 * math.sqrt(var / n))
    assert x.var().item() == pytest.approx(var, rel=5 * math.sqrt(2 / n))
    y = d.q_sample(x0, torch.full((n,), t), torch.randn(n, generator=g))
    assert y.mean().item() == pytest.approx(x.mean().item(), abs=7 * math.sqrt(var / n))


@pytest.mark.parametrize("t", [1, 50, 999])
def test_posterior_is_gaussian_conditioning(t):
    """q(x_{t-1} | x_t, x0) from the joint Gaussian: cov(x_{t-1}, x_t | x0) = sqrt(alpha_t)(1 - ab_{t-1})."""
    d = GaussianDiffusion("cosine", 1000)
    ab, abp, alpha = d.alphas_cumprod[t], d.alphas_cumprod[t - 1], 1 - d.betas[t]
    cov, var_t = alpha.sqrt() * (1 - abp), 1 - ab
    x0 = torch.tensor([0.3, -0.2], dtype=torch.float64)
    xt = torch.tensor([1.1, 0.4], dtype=torch.float64)
    tt = torch.full((2,), t)
    mean, var, _ = d.q_posterior_mean_variance(x0, xt, tt)
    torch.testing.assert_close(mean, abp.sqrt() * x0 + cov / var_t * (xt - ab.sqrt() * x0))
    torch.testing.assert_close(var, ((1 - abp) - cov**2 / var_t).expand(2))


def test_training_loss_is_eps_mse_and_parameterisations_invert():
    d = GaussianDiffusion("linear", 1000)
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(6, 2, 3, generator=g), torch.randn(6, 2, 3, generator=g)
    t = d.sample_timesteps(6, generator=g)
    model_fn = lambda x, t: torch.tanh(x) * 0.5 + t[:, None, None] * 1e-4
    loss = d.training_loss(model_fn, x0, t, noise)
    assert loss.item() == pytest.approx(
        F.mse_loss(model_fn(d.q_sample(x0, t, noise), t), noise).item(), rel=1e-6
    )
    x_t = d.q_sample(x0, t, noise)
    torch.testing.assert_close(d.predict_x0(x_t, t, noise), x0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(d.predict_eps(x_t, t, x0), noise, rtol=1e-4, atol=1e-4)
    # v-prediction: the v target maps back to the true noise
    dv = GaussianDiffusion("linear", 1000, prediction="v")
    torch.testing.assert_close(
        dv.output_to_eps(dv.v_target(x0, t, noise), x_t, t), noise, rtol=1e-4, atol=1e-4
    )
    # min-SNR weights never exceed 1 for eps prediction
    w = d.training_loss(model_fn, x0, t, noise, min_snr_gamma=5.0, reduce=False)
    assert torch.all(w <= d.training_loss(model_fn, x0, t, noise, reduce=False) + 1e-7)


def test_pixel_weights_make_each_samples_loss_a_weighted_mean():
    d = GaussianDiffusion("cosine", 1000, prediction="v")
    g = torch.Generator().manual_seed(2)
    x0, noise = torch.randn(3, 2, 3, 4, 4, generator=g), torch.randn(3, 2, 3, 4, 4, generator=g)
    t = torch.tensor([5, 400, 900])
    model_fn = lambda x, tt: 0.7 * x
    plain = d.training_loss(model_fn, x0, t, noise, reduce=False)
    torch.testing.assert_close(d.training_loss(model_fn, x0, t, noise, reduce=False,
                                               pixel_weight=torch.full((3, 2, 1, 4, 4), 2.5)), plain)
    w = 1.0 + 3.0 * (torch.rand(3, 2, 1, 4, 4, generator=g) > 0.8)  # broadcast over channels
    err2 = (model_fn(d.q_sample(x0, t, noise), t) - d.target(x0, t, noise)).pow(2)
    want = (err2 * w).flatten(1).sum(1) / w.expand_as(err2).flatten(1).sum(1)
    got = d.training_loss(model_fn, x0, t, noise, reduce=False, pixel_weight=w)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, plain)


def test_timesteps_uniform_and_shift():
    d = GaussianDiffusion("linear", 1000)
    t = d.sample_timesteps(100000, generator=torch.Generator().manual_seed(0))
    assert t.min().item() >= 0 and t.max().item() <= 999 and t.dtype == torch.long
    counts = torch.bincount(t // 100, minlength=10).float()
    assert torch.all((counts - 10000).abs() < 500)
    shifted = GaussianDiffusion("cosine", 1000, snr_shift=2.0)
    tt = torch.arange(0, 990, 10)
    torch.testing.assert_close(shifted.snr(tt), GaussianDiffusion("cosine", 1000).snr(tt) / 4)


def test_model_space_round_trip():
    x = torch.rand(2, 3, 3, 4, 4)
    torch.testing.assert_close(from_model_space(to_model_space(x)), x)
    assert to_model_space(torch.zeros(1)).item() == -1 and to_model_space(torch.ones(1)).item() == 1


def test_x0_prediction_maps_to_eps_and_weights_by_truncated_snr():
    d = GaussianDiffusion("cosine", 1000, prediction="x0", snr_shift=4.0)
    g = torch.Generator().manual_seed(3)
    x0, noise = torch.randn(8, 2, 3, generator=g), torch.randn(8, 2, 3, generator=g)
    t = torch.tensor([0, 10, 100, 300, 500, 700, 900, 999])
    x_t = d.q_sample(x0, t, noise)
    # the true x0 as output gives the true noise back, and DPM-Solver++'s data prediction gets x0
    # back (to float32 rounding divided by sqrt(ab), ~1e-3 at the last step of a shifted schedule)
    torch.testing.assert_close(d.output_to_eps(x0, x_t, t), noise, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(d.predict_x0(x_t, t, d.output_to_eps(x0, x_t, t)), x0, rtol=0, atol=3e-3)
    # a perfect x0 costs nothing; a wrong one costs its MSE times clamp(SNR, 1, gamma)
    assert d.training_loss(lambda x, tt: x0, x0, t, noise).item() == pytest.approx(0.0, abs=1e-10)
    per = d.training_loss(lambda x, tt: x0 + 0.5, x0, t, noise, min_snr_gamma=5.0, reduce=False)
    w = d.snr(t).clamp(1.0, 5.0).float()
    torch.testing.assert_close(per, 0.25 * w)
    assert per[-1].item() == pytest.approx(0.25) and per[0].item() == pytest.approx(1.25)
