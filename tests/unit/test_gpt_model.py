"""The GPT we own: shapes, weight tying, and KV-cache decoding that matches a full recompute."""

from __future__ import annotations

import torch

from modelyard.generation.decoders import GPTDecoder
from modelyard.models.gpt import GPT, GPTConfig, KVCache


def tiny_gpt(block_size: int = 32) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=50, block_size=block_size, n_layer=2, n_head=2, n_embd=16)).eval()


def test_forward_gives_next_token_logits_for_every_position():
    logits = tiny_gpt()(torch.randint(0, 50, (3, 10)))
    assert logits.shape == (3, 10, 50)


def test_output_projection_shares_the_token_embedding_weights():
    model = tiny_gpt()
    assert model.lm_head.weight is model.wte.weight


def test_decoding_with_the_kv_cache_equals_recomputing_the_whole_sequence():
    model = tiny_gpt()
    tokens = torch.randint(0, 50, (2, 20))
    with torch.no_grad():
        full = model(tokens)
        cache = KVCache.empty(2)
        steps = [model(tokens[:, :12], cache=cache)] + [model(tokens[:, t : t + 1], cache=cache) for t in range(12, 20)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_a_left_padded_row_in_a_batch_gets_the_logits_it_would_get_alone():
    model = tiny_gpt()
    tokens = torch.randint(0, 50, (1, 14)).tolist()[0]
    with torch.no_grad():
        full = model(torch.tensor([tokens]))[0]
        session = GPTDecoder(model, {0}).start([tokens[:4], tokens[:9]])
        first = session.logits()
        session.advance(torch.tensor([tokens[4], tokens[9]]))
        second = session.logits()
    assert torch.allclose(first[0], full[3], atol=1e-5) and torch.allclose(first[1], full[8], atol=1e-5)
    assert torch.allclose(second[0], full[4], atol=1e-5) and torch.allclose(second[1], full[9], atol=1e-5)


def test_positions_beyond_the_context_window_are_refused():
    model = tiny_gpt(block_size=8)
    try:
        model(torch.zeros((1, 9), dtype=torch.long))
    except ValueError as err:
        assert "context of 8 tokens" in str(err)
    else:
        raise AssertionError("expected a ValueError")


def test_decoding_continues_past_the_context_window():
    model = tiny_gpt(block_size=8)
    session = GPTDecoder(model, {0}).start([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        for token in range(10):
            session.advance(torch.tensor([token + 1]))
            assert session.logits().shape == (1, 50)
