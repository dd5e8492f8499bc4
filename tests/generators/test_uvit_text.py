"""The generator's own text encoder: offline tokenizer, padding mask, null embedding, pad invariance."""

import socket

import pytest
import torch

from generators.uvit.configs import get_config
from generators.uvit.text import EOT_ID, SOT_ID, TextEncoder, is_empty, padding_mask, token_count, tokenize


@pytest.fixture(scope="module")
def enc():
    torch.manual_seed(0)
    return TextEncoder(get_config("tiny")).eval()


def test_tokenizer_is_offline_and_deterministic(monkeypatch):
    def no_network(*a, **k):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    a = tokenize(["a small red ball falls", "A  Small RED ball falls "], 16)
    assert a.shape == (2, 16) and a.dtype == torch.long
    assert torch.equal(a[0], a[1])  # lower-cased, whitespace-normalised
    assert a[0, 0].item() == SOT_ID and torch.equal(tokenize("a small red ball falls", 16), a[:1])


def test_mask_marks_real_tokens_up_to_eot():
    tok = tokenize(["a red ball", "wow !~", ""], 10)
    mask = padding_mask(tok)
    assert mask[0].tolist() == [True] * 5 + [False] * 5  # SOT a red ball EOT
    assert tok[1, 2].item() == 0  # a non-final "!" is BPE id 0, as is padding: the mask must not use `!= 0`
    assert mask[1].tolist() == [True] * 5 + [False] * 5
    assert mask[2].tolist() == [True, True] + [False] * 8
    assert is_empty(tok).tolist() == [False, False, True]


def test_truncation_keeps_eot_last():
    tok = tokenize("ball " * 200, 16)
    assert tok.shape == (1, 16) and tok[0, -1].item() == EOT_ID
    assert padding_mask(tok).all()
    assert token_count("ball " * 200) == 202 and token_count("a red ball") == 5


def test_null_embedding_for_empty_prompt_and_dropped_rows(enc):
    tok = enc.tokenize(["", "a blue square slides"])
    emb, mask = enc(tok)
    L = tok.shape[1]
    torch.testing.assert_close(emb[0], enc.null_embed[:L])
    assert mask[0].all() and not mask[1].all()
    emb_d, mask_d = enc(tok, drop=torch.tensor([False, True]))
    torch.testing.assert_close(emb_d[1], enc.null_embed[:L])
    assert mask_d[1].all()
    assert not torch.allclose(emb[1], enc.null_embed[:L])


def test_padding_does_not_change_real_tokens(enc):
    tok = enc.tokenize(["a red ball falls", "a large green square is thrown and bounces twice"])
    emb, mask = enc(tok)
    # junk ids in the pad positions: real tokens unchanged, pads stay zero
    junk = tok.clone()
    junk[~mask] = torch.randint(1, 49000, (int((~mask).sum()),), generator=torch.Generator().manual_seed(0))
    emb_j, _ = enc(junk)
    torch.testing.assert_close(emb_j[mask], emb[mask])
    assert torch.all(emb[~mask] == 0)
    # encoded alone vs batched with a longer prompt
    alone, _ = enc(tok[:1])
    torch.testing.assert_close(alone[0], emb[0])
    # a shorter context that still holds the prompt
    n = int(mask[0].sum())
    short, _ = enc(tok[:1, : n + 1])
    torch.testing.assert_close(short[0, :n], emb[0, :n], rtol=1e-5, atol=1e-6)


def test_encoder_is_its_own_and_rejects_long_token_rows(enc):
    assert not any("visual" in n for n, _ in enc.named_parameters())
    with pytest.raises(ValueError):
        enc(torch.zeros(1, enc.cfg.text_len + 1, dtype=torch.long))


def test_contrastive_pretraining_learns_and_a_frozen_encoder_stays_frozen(tmp_path):
    """`generator pretrain-text`: the InfoNCE loss falls below chance level (log batch), the export
    loads into a training run, and with freeze_text the encoder's weights do not move while the
    denoiser's and the null context's do; a file for another preset is a one-line error."""
    import math
    from dataclasses import replace

    from evalkit.cli import main
    from evalkit.errors import BadInputError
    from generators.uvit.text_pretrain import TextPretrainConfig, load_text_weights, pretrain_text
    from generators.uvit.train import TrainConfig, build_state, train

    out = tmp_path / "text.safetensors"
    s = pretrain_text(TextPretrainConfig(preset="tiny", steps=60, batch_size=32, lr=3e-3), out, progress=False)
    assert s["final_loss"] < math.log(32) - 0.1, s
    assert s["held_out_retrieval_top1"] > s["chance"]
    tc = TrainConfig(preset="tiny", batch_size=4, max_steps=2, warmup_steps=1, sample_every_steps=10**9,
                     checkpoint_every_minutes=10**6, text_init=str(out), freeze_text=True)
    start = build_state(tc, torch.device("cpu"))
    loaded = TextEncoder(get_config("tiny"))
    load_text_weights(loaded, out)
    assert all(torch.equal(a, b) for a, b in zip(start.net.text.parameters(), loaded.parameters()))
    before = {k: v.clone() for k, v in start.net.state_dict().items()}
    state = train(tc, tmp_path / "t.pt", progress=False, log_mlflow=False)
    after = state.net.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(not k.startswith("text.") or k == "text.null_embed" for k in moved), moved
    assert "text.null_embed" in moved
    assert not any(torch.equal(before[k], after[k]) for k in after if k.startswith("uvit.decoder_pred"))
    from generators.uvit.generate import export_weights, lineage

    hist = lineage(export_weights(tmp_path / "t.pt", tmp_path / "t.safetensors"))
    text_stage = next(st for st in hist["stages"] if st.get("kind") == "text-pretrain")
    assert hist["complete"] and hist["steps"] == 2 and text_stage["clips_seen"] == 60 * 32
    assert hist["cpu_minutes"] >= text_stage["cpu_minutes"] > 0
    with pytest.raises(BadInputError, match="preset"):
        load_text_weights(TextEncoder(get_config("small")), out)
    with pytest.raises(BadInputError, match="pretrain-text"):
        build_state(replace(tc, text_init=str(tmp_path / "t.pt")), torch.device("cpu"))
    assert main(["generator", "pretrain-text", "--preset", "tiny", "--steps", "2", "--batch-size", "4",
                 "--out", str(tmp_path / "cli.safetensors")]) == 0
    assert main(["generator", "pretrain-text", "--preset", "nope", "--out", str(tmp_path / "x.safetensors")]) == 2
    assert not (tmp_path / "x.safetensors").exists()


def test_text_pretraining_is_the_same_with_data_workers(tmp_path):
    """Steps made ahead in worker processes (as on a GPU) train exactly what inline steps train."""
    from safetensors.torch import load_file

    from generators.uvit.text_pretrain import TextPretrainConfig, pretrain_text

    tc = TextPretrainConfig(preset="tiny", steps=3, batch_size=8)
    a = pretrain_text(tc, tmp_path / "a.safetensors", progress=False, data_workers=0)
    b = pretrain_text(tc, tmp_path / "b.safetensors", progress=False, data_workers=1)
    assert a["final_loss"] == b["final_loss"]
    wa, wb = load_file(tmp_path / "a.safetensors"), load_file(tmp_path / "b.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
