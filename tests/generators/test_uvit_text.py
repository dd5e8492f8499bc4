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
