"""The U-ViT denoiser: shapes, init, long skips, positions, conditioning, checkpointing, overfitting."""

import pytest
import torch
from torch import nn

from generators.uvit import layers
from generators.uvit.configs import get_config
from generators.uvit.diffusion import GaussianDiffusion
from generators.uvit.model import UViT
from generators.uvit.network import TextToVideoUViT



ATTN = ["joint", "factorised"]


def inputs(cfg, B=2, L=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    L = L or cfg.text_len
    x = torch.randn(B, cfg.frames, cfg.channels, cfg.image_size, cfg.image_size, generator=g)
    t = torch.randint(0, 1000, (B,), generator=g)
    emb = torch.randn(B, L, cfg.text_width, generator=g)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[0, L // 2 :] = False
    return x, t, emb, mask


def randomise_last_layer(model):
    torch.manual_seed(1)
    last = model.final_layer
    nn.init.normal_(last.weight, std=0.1)
    nn.init.normal_(last.bias, std=0.1)


@pytest.mark.parametrize("attention", ATTN)
@pytest.mark.parametrize("tubelet", [1, 2])
def test_shape_and_zero_init(attention, tubelet):
    torch.manual_seed(0)
    cfg = get_config("tiny", attention=attention, temporal_patch=tubelet)
    model = UViT(cfg)
    x, t, emb, mask = inputs(cfg)
    out = model(x, t, emb, mask)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert torch.all(out == 0), "zero-initialised final conv: the network starts as the zero predictor"
    randomise_last_layer(model)
    assert model(x, t, emb, mask).abs().mean() > 1e-3
    # a shorter prompt than text_len and float timesteps are accepted
    assert model(x, t.float() + 0.5, emb[:, :5], mask[:, :5]).shape == x.shape


@pytest.mark.parametrize("attention", ATTN)
def test_eval_is_deterministic(attention):
    torch.manual_seed(0)
    model = UViT(get_config("tiny", attention=attention, dropout=0.2))
    randomise_last_layer(model)
    model.eval()
    args = inputs(model.cfg)
    assert torch.equal(model(*args), model(*args))


def test_long_skips_join_mirrored_blocks():
    cfg = get_config("tiny", depth=7, attention="joint")
    model = UViT(cfg)
    skips = [m for m in model.modules() if isinstance(m, nn.Linear) and m.in_features == 2 * cfg.width]
    assert len(skips) == len(model.out_blocks) == len(model.in_blocks) == 3
    assert model.mid_block.skip_linear is None and all(b.skip_linear is None for b in model.in_blocks)
    outs, got = {}, {}
    for i, b in enumerate(model.in_blocks):
        b.register_forward_hook(lambda m, a, o, i=i: outs.__setitem__(i, o))
    for k, b in enumerate(model.out_blocks):
        b.register_forward_pre_hook(lambda m, a, k=k: got.__setitem__(k, a[1]))
    model(*inputs(cfg))
    for k in range(3):  # first out-block takes the deepest in-block's output
        assert torch.equal(got[k], outs[2 - k])


@pytest.mark.parametrize("tubelet", [1, 2])
def test_positions_distinguish_every_patch(tubelet):
    cfg = get_config("tiny", temporal_patch=tubelet, frames=8)
    model = UViT(cfg)
    pos = model.patch_positions().detach()  # [T'*H'*W', D], token order (t, i, j)
    Tp, Hp, Wp = cfg.grid
    assert pos.shape == (Tp * Hp * Wp, cfg.width)
    dist = torch.cdist(pos, pos) + torch.eye(len(pos)) * 1e9
    assert dist.min() > 0.1, "two patches share a position code"
    t, i, j = 1, 2, 3  # P_st(i, j, t) = P_s(i, j) + P_t(t)
    torch.testing.assert_close(
        pos[t * Hp * Wp + i * Wp + j], model.pos_spatial[0, i * Wp + j] + model.pos_temporal[0, t]
    )
    fixed = UViT(get_config("tiny", pos_embed="fixed"))
    assert "pos_spatial" not in dict(fixed.named_parameters())
    torch.testing.assert_close(fixed.patch_positions(), UViT(get_config("tiny")).patch_positions().detach())


@pytest.mark.parametrize("attention", ATTN)
def test_text_conditions_output_and_padding_is_ignored(attention):
    torch.manual_seed(0)
    cfg = get_config("tiny", attention=attention)
    model = UViT(cfg).eval()
    x, t, emb, mask = inputs(cfg)
    # after a few SGD steps from the zero init, the output depends on the text
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        loss = (model(x, t, emb, mask) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        base = model(x, t, emb, mask)
        assert (model(x, t, emb.flip(0), mask) - base).abs().max() > 1e-4
        # masked (padded) text positions cannot influence anything
        emb2 = emb.clone()
        emb2[~mask] = torch.randn(int((~mask).sum()), cfg.text_width) * 10
        torch.testing.assert_close(model(x, t, emb2, mask), base, rtol=1e-5, atol=1e-5)
        # and the timestep matters too
        assert (model(x, (t + 300) % 1000, emb, mask) - base).abs().max() > 1e-4


@pytest.mark.parametrize("attention", ATTN)
def test_gradient_checkpointing_gives_same_gradients(attention):
    torch.manual_seed(0)
    cfg = get_config("tiny", attention=attention)
    model = UViT(cfg).train()
    randomise_last_layer(model)
    args = inputs(cfg)

    def grads(ckpt):
        model.zero_grad()
        model.set_grad_checkpointing(ckpt)
        model(*args).pow(2).mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    for a, b in zip(grads(False), grads(True)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_bf16_autocast_keeps_qkv_in_bf16(monkeypatch):
    """q/k/v must reach the attention product in bf16 under autocast (an fp32 upcast would rule out
    flash attention on a GPU, and the bf16 matmuls on a CPU)."""
    seen = []
    real = layers.Attention.attend

    def spy(self, q, k, v, mask=None):
        seen.append((q.dtype, k.dtype, v.dtype))
        return real(self, q, k, v, mask)

    monkeypatch.setattr(layers.Attention, "attend", spy)
    for attention in ATTN:
        model = UViT(get_config("tiny", attention=attention))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(*inputs(model.cfg))
    assert seen and all(d == (torch.bfloat16,) * 3 for d in seen)


def test_bf16_attention_on_a_cpu_matches_sdpa():
    """On a CPU under bf16 the product is written out in bf16 (2.6x faster there than SDPA's flash
    kernel): its output and gradients must be SDPA's in fp32, to bf16's precision, masked keys
    included, and it must not fall back to an fp32 softmax under autocast."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 37, 16, generator=g) for _ in range(3))
    mask = torch.ones(2, 1, 1, 37, dtype=torch.bool)
    mask[0, ..., 20:] = False
    attn = layers.Attention(48, 3)
    outs, grads = [], []
    for dtype in (torch.float32, torch.bfloat16):
        leaves = [x.clone().to(dtype).requires_grad_() for x in (q, k, v)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            o = attn.attend(*leaves, mask)  # [B, S, h*dh]
        assert o.dtype == dtype
        o.float().pow(2).sum().backward()
        outs.append(o.float())
        grads.append([x.grad.float() for x in leaves])
    torch.testing.assert_close(outs[1], outs[0], atol=3e-2, rtol=3e-2)
    for a, b in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, b, atol=8e-2, rtol=5e-2)
    # the masked keys get no gradient and no weight
    assert grads[1][1][0, :, 20:].abs().max() == 0 and grads[1][2][0, :, 20:].abs().max() == 0


def test_frame_windows_take_the_positions_of_their_frames():
    """A window of n frames starting at frame k gets the temporal positions of frames k.., so a
    window holding the whole clip at offset 0 is the plain forward exactly, and a 2-frame window
    differs with its offset only through P_t."""
    torch.manual_seed(0)
    cfg = get_config("tiny", frames=8, temporal_patch=2)
    model = UViT(cfg)
    randomise_last_layer(model)
    x, t, emb, mask = inputs(cfg)
    torch.testing.assert_close(model(x, t, emb, mask, frame_offset=torch.zeros(2)), model(x, t, emb, mask))
    pos = model.patch_positions(2, torch.tensor([0, 1])).detach()  # tubelets 0-1 and 1-2 of 4
    P = cfg.grid[1] * cfg.grid[2]
    full = model.patch_positions().detach()
    torch.testing.assert_close(pos[0], full[: 2 * P])
    torch.testing.assert_close(pos[1], full[P : 3 * P])
    w = x[:, :2]
    a = model(w, t, emb, mask, frame_offset=torch.tensor([0, 0]))
    b = model(w, t, emb, mask, frame_offset=torch.tensor([0, 6]))
    assert a.shape == w.shape
    torch.testing.assert_close(a[0], b[0])
    assert (a[1] - b[1]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="expected"):
        model(x[:, :3], t, emb, mask, frame_offset=torch.zeros(2))  # not whole tubelets
    with pytest.raises(ValueError, match="joint attention"):
        UViT(get_config("tiny", frames=8, temporal_patch=2, attention="factorised"))(
            w, t, emb, mask, frame_offset=torch.zeros(2))


def test_wrong_input_shape_is_a_clear_error():
    model = UViT(get_config("tiny"))
    x, t, emb, mask = inputs(model.cfg)
    with pytest.raises(ValueError, match="expected"):
        model(x[:, :2], t, emb, mask)


@pytest.mark.parametrize("attention", ATTN)
def test_tiny_network_overfits_one_batch(attention):
    """Text encoder + U-ViT on one fixed (x0, t, noise) batch: the eps loss drops > 5x in 100 steps."""
    torch.manual_seed(0)
    cfg = get_config("tiny", attention=attention, cond_drop_prob=0.0)
    net = TextToVideoUViT(cfg).train()
    diffusion = GaussianDiffusion.from_config(cfg)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, cfg.frames, 3, cfg.image_size, cfg.image_size, generator=g) * 2 - 1
    t = torch.tensor([50, 300, 600, 900])
    noise = torch.randn(x0.shape, generator=g)
    tokens = net.tokenize(["a red ball falls", "a blue square slides", "two balls collide", "nothing moves"])
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(100):
        loss = diffusion.training_loss(lambda x_t, tt: net(x_t, tt, tokens), x0, t, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(1.0, abs=0.1)  # zero predictor: E[noise^2]
    assert losses[-1] < losses[0] / 5, losses[::10]


def test_condition_dropout_in_training_only():
    cfg = get_config("tiny", cond_drop_prob=0.5)
    net = TextToVideoUViT(cfg)
    randomise_last_layer(net.uvit)
    x, t, _, _ = inputs(cfg, B=8)
    tokens = net.tokenize(["a red ball falls"] * 8)
    uncond = net.denoise(x, t, net.text.null(8, tokens.shape[1]))
    net.train()
    out = net(x, t, tokens, generator=torch.Generator().manual_seed(0))
    dropped = [torch.allclose(out[i], uncond[i], atol=1e-6) for i in range(8)]
    assert 0 < sum(dropped) < 8
    net.eval()
    out = net(x, t, tokens)
    assert not any(torch.allclose(out[i], uncond[i], atol=1e-6) for i in range(8))


def test_sample_is_seeded_and_in_unit_range():
    torch.manual_seed(0)
    net = TextToVideoUViT(get_config("tiny"))
    randomise_last_layer(net.uvit)
    a = net.sample(["a red ball", "a blue square"], sampler="ddim", steps=4, guidance=2.0, seed=7)
    b = net.sample(["a blue square"], sampler="ddim", steps=4, guidance=2.0, seed=[8])
    assert a.shape == (2, 4, 3, 16, 16) and a.min() >= 0 and a.max() <= 1
    # a clip depends on its own seed only (up to batch-size-dependent float rounding)
    torch.testing.assert_close(a[1:], b, rtol=0, atol=1e-4)


def test_mix_ffn_conv_mixes_neighbouring_patches_of_one_frame_only():
    """The Mix-FFN's depthwise conv must see the tokens in their (t, i, j) grid: a patch's MLP output
    then depends on its 8 spatial neighbours in the same frame, not on other frames or the extras."""
    torch.manual_seed(0)
    mlp = layers.Mlp(4, 4, local=True)
    nn.init.normal_(mlp.local.weight)
    E, (T, H, W) = 2, (3, 4, 4)
    x = torch.randn(1, E + T * H * W, 4, requires_grad=True)
    out = mlp(x, E, (H, W))
    at = lambda t, i, j: E + (t * H + i) * W + j  # noqa: E731 - token index of patch (t, i, j)
    (grad,) = torch.autograd.grad(out[0, at(1, 1, 1)].sum(), x, retain_graph=True)
    moved = {int(k) for k in grad[0].abs().sum(1).nonzero()}
    assert moved == {at(1, 1 + di, 1 + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)}
    (grad,) = torch.autograd.grad(out[0, 0].sum(), x)  # an extra token: a plain MLP
    assert {int(k) for k in grad[0].abs().sum(1).nonzero()} == {0}


def test_local_mixing_parts_start_as_identities_and_cross_patch_borders():
    """A network grown into Mix-FFN and the conv head starts as the network it grew from (their convs
    start at zero), and the head takes part once its conv is trained."""
    torch.manual_seed(0)
    plain = UViT(get_config("tiny"))
    randomise_last_layer(plain)
    grown = UViT(get_config("tiny", mix_ffn=True, head_channels=4))
    missing, unexpected = grown.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all("local" in k or "head_conv" in k or "decoder_feat" in k for k in missing)
    args = inputs(plain.cfg)
    torch.testing.assert_close(grown(*args), plain(*args))
    nn.init.normal_(grown.head_conv.weight)
    assert (grown(*args) - plain(*args)).abs().mean() > 1e-3, "a trained head changes the output"
