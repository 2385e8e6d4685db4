"""Weight-only 4-bit and 8-bit linear layers for fast single-stream decoding on the CPU.

Decoding one token reads every weight once, so its speed is set by bytes of weights, not by arithmetic: fp32
SmolLM2 reads 540 MB a token, int4 ~90 MB. Linear layers become group-wise affine int4 (groups of 32 along the
input, one scale and zero per group: the layout of GGUF Q4_1, so a model dequantised from Q4_1 is re-packed onto
its own grid); the output layer, shared with the embedding in tied models, is per-row int8, since 4 bits there
change answers. Activations enter the kernels as bf16 (the fast path of torch's int4/int8 CPU kernels) and the
rest of the model (norms, attention, residual stream) keeps its own dtype.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

GROUP = 32  # input features per int4 scale/zero pair, as in GGUF Q4_0/Q4_1


def available() -> bool:
    """Whether this torch has the CPU weight-only kernels (torch >= 2.6)."""
    return hasattr(torch, "_weight_int4pack_mm_for_cpu") and hasattr(torch, "_weight_int8pack_mm")


class Int4Linear(nn.Module):
    """y = x W^T + b with W stored as 4-bit codes q and per-group (scale, zero): W = (q - 8) * scale + zero."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        out_features, in_features = weight.shape
        groups = weight.view(out_features, in_features // GROUP, GROUP)
        low, high = groups.amin(-1), groups.amax(-1)
        scale = ((high - low) / 15).clamp(min=1e-12)
        codes = ((groups - low[..., None]) / scale[..., None]).round().clamp(0, 15).to(torch.int32)
        self.register_buffer("packed", torch._convert_weight_to_int4pack_for_cpu(codes.view_as(weight), 1))
        zero = low + 8 * scale
        # (in/GROUP, out, 2) bf16, the kernel's layout
        self.register_buffer("scale_zero", torch.stack([scale.t(), zero.t()], -1).to(torch.bfloat16).contiguous())
        self.bias = linear.bias
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)  # (N, in)
        y = torch._weight_int4pack_mm_for_cpu(flat, self.packed, GROUP, self.scale_zero)
        y = y.to(x.dtype).view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


class Int8Linear(nn.Module):
    """y = x W^T + b with W stored as int8 codes and one scale per output row."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = (weight.abs().amax(1) / 127).clamp(min=1e-12)
        self.register_buffer("codes", (weight / scale[:, None]).round().clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(torch.bfloat16))
        self.bias = linear.bias
        self.out_features = weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        y = torch._weight_int8pack_mm(flat, self.codes, self.scale)
        y = y.to(x.dtype).view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


def quantize(model: nn.Module, output_layer: nn.Module | None = None) -> nn.Module:
    """A copy of `model` for decoding whose plain `nn.Linear` layers are int4 (`output_layer`: int8); every other
    parameter is shared with `model`, not copied. Layers whose input width is not a multiple of 32 stay float."""
    shared = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    fast = copy.deepcopy(model, memo=shared)
    head = None
    if output_layer is not None:
        head = next((n for n, m in model.named_modules() if m is output_layer), None)
    for name, module in list(fast.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is not nn.Linear or child.in_features % GROUP:
                continue
            full = f"{name}.{child_name}" if name else child_name
            setattr(module, child_name, Int8Linear(child) if full == head else Int4Linear(child))
    return fast.eval()
