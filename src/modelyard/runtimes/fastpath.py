"""Keep `nn.TransformerEncoderLayer` off PyTorch's fused inference fast path where that path cannot run.

The fast path (`aten::_transformer_encoder_layer_fwd`) reads `linear.weight.device`, which a dynamically
quantized Linear (whose `weight` is a method) does not have. PyTorch takes the ordinary path when a hook is
attached to the layer: a no-op forward pre-hook is the documented, per-module switch.
"""

from __future__ import annotations

from torch import nn


def _no_op(module: nn.Module, args: tuple) -> None:
    return None


def without_fastpath(module: nn.Module) -> None:
    """Attach the switch to every encoder layer in `module`."""
    for layer in module.modules():
        if isinstance(layer, nn.TransformerEncoderLayer):
            layer.register_forward_pre_hook(_no_op)
