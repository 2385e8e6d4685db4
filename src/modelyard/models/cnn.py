"""cnn-scratch: a small ResNet-style CNN from scratch, for images unlike ImageNet photos (digits, icons).

Three stages of residual blocks (widths 32/64/128, the last two halve the resolution) after a stem that only
downsamples large inputs, then global average pooling, so the same network takes 8x8 up to 224x224 images.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


class ResidualBlock(nn.Module):
    """conv-bn-relu-conv-bn plus a (projected when the shape changes) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))  # (B, c_out, H/s, W/s)
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class SmallResNet(nn.Module):
    """`image_size` only decides the stem: inputs of 64 pixels or more are downsampled 4x before the blocks"""

    def __init__(
        self,
        num_classes: int,
        image_size: int = 32,
        widths: tuple[int, ...] = (32, 64, 128),
        blocks_per_stage: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        c0 = widths[0]
        if image_size >= 64:
            self.stem = nn.Sequential(
                nn.Conv2d(3, c0, 5, 2, 2, bias=False), nn.BatchNorm2d(c0), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
            )
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, c0, 3, 1, 1, bias=False), nn.BatchNorm2d(c0), nn.ReLU())
        layers: list[nn.Module] = []
        c_in = c0
        for i, width in enumerate(widths):
            for j in range(blocks_per_stage):
                layers.append(ResidualBlock(c_in, width, stride=2 if (i > 0 and j == 0) else 1))
                c_in = width
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c_in, num_classes))
        self.feature_dim = c_in

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, 32, H', W')
        x = self.blocks(x)  # (B, 128, H'/4, W'/4)
        return x.mean(dim=(2, 3))  # (B, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, num_classes)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("head.")]

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())
