"""Weight-only int4/int8 layers: exact on a Q4_1-style grid, close elsewhere, and sharing what they do not pack."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelyard.models import low_bit

pytestmark = pytest.mark.skipif(not low_bit.available(), reason="this torch has no CPU int4/int8 kernels")


def _q4_1_weight(out_features: int, in_features: int) -> torch.Tensor:
    """A weight that is exactly scale * code + minimum in every group of 32, as GGUF Q4_1 stores it."""
    groups = in_features // low_bit.GROUP
    codes = torch.randint(0, 16, (out_features, groups, low_bit.GROUP)).float()
    codes[..., 0], codes[..., 1] = 0, 15  # Q4_1 maps each group's minimum to 0 and its maximum to 15
    scale = (torch.rand(out_features, groups, 1) + 0.5).to(torch.bfloat16).float() / 64
    minimum = -8 * scale  # zero = minimum + 8 * scale = 0 is exact in bf16
    return (codes * scale + minimum).view(out_features, in_features)


def test_int4_linear_reproduces_a_q4_1_grid_up_to_bf16_activations() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 48, bias=True)
    with torch.no_grad():
        linear.weight.copy_(_q4_1_weight(48, 64))
    x = torch.randn(3, 5, 64)
    expected = nn.functional.linear(x.bfloat16().float(), linear.weight, linear.bias)
    got = low_bit.Int4Linear(linear)(x)
    assert got.shape == (3, 5, 48) and got.dtype == torch.float32
    assert torch.allclose(got, expected, rtol=1e-2, atol=1e-2)


def test_int8_linear_stays_within_its_rounding_error() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 32, bias=False)
    x = torch.randn(4, 64)
    error = (low_bit.Int8Linear(linear)(x) - linear(x)).abs().max()
    assert error < 0.02 * linear(x).abs().max()


def test_quantize_packs_linear_layers_and_shares_everything_else() -> None:
    model = nn.Sequential(nn.Embedding(10, 64), nn.Linear(64, 64), nn.LayerNorm(64), nn.Linear(64, 16))
    narrow = nn.Linear(16, 8)  # input width not a multiple of 32: stays float
    model.append(narrow)
    fast = low_bit.quantize(model, output_layer=model[3])
    assert isinstance(fast[1], low_bit.Int4Linear)
    assert isinstance(fast[3], low_bit.Int8Linear)
    assert fast[4].weight is narrow.weight
    assert fast[0].weight is model[0].weight and fast[2].weight is model[2].weight
    assert isinstance(model[1], nn.Linear)  # the float model is left as it was


def _tiny_llama() -> nn.Module:
    from llm_helpers import tiny_llama_config
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_llama_config(96, intermediate_size=64)).eval()


def test_the_decoder_rebuilds_its_int4_copy_when_the_float_weights_change() -> None:
    from modelyard.generation.decoders import HFDecoder

    model = _tiny_llama()
    decoder = HFDecoder(model, eos_ids={0}, pad_id=0, weights="int4")
    first = decoder.decoding_model()
    assert first is not model and decoder.decoding_model() is first
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)  # what an optimiser step does
    assert decoder.decoding_model() is not first
    assert HFDecoder(model, eos_ids={0}, pad_id=0, weights="float").decoding_model() is model


def test_int4_decoding_follows_the_float_model() -> None:
    """The int4 copy's next-token logits track the float model's (a tiny random Llama: real layers, no weights)."""
    from modelyard.generation.decoders import HFDecoder

    model = _tiny_llama()
    prompt = [[5, 17, 33, 2, 9]]
    logits = {}
    for weights in ("float", "int4"):
        session = HFDecoder(model, eos_ids={0}, pad_id=0, weights=weights).start(prompt)
        logits[weights] = session.logits()
    assert torch.corrcoef(torch.stack([logits["float"][0], logits["int4"][0]]))[0, 1] > 0.99
