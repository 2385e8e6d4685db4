"""A CenterNet-style detector (Zhou et al. 2019, "Objects as Points") on the EfficientNet-Lite0 trunk.

The trunk's stride-8, -16 and -32 stages are fused top-down (a small FPN) into one stride-8 map; three 1x1-conv
heads then predict per cell: a heatmap of object centres per class, the box size (log of width and height in
cells) and the centre's sub-cell offset. Decoding keeps local heatmap peaks (a 3x3 max-pool), turns them into
boxes and runs class-wise NMS. The network's raw maps are what ONNX exports; decoding stays outside the graph.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms

from modelyard.models import efficientnet

STRIDE = 8
TAPS = (2, 4, 6)  # timm efficientnet_lite0 stages ending at strides 8, 16, 32
TAP_CHANNELS = (40, 112, 320)
PRIOR = 0.01  # initial heatmap probability (focal-loss practice: the background dominates at the start)


class CenterNet(nn.Module):
    """Pixels (B, 3, S, S), normalised as for the trunk -> heatmap logits (B, C, S/8, S/8) and box maps
    (B, 4, S/8, S/8): log width, log height (in cells), x and y offsets of the centre within its cell."""

    def __init__(self, num_classes: int, pretrained: bool = True, width: int = 64, frozen_batchnorm: bool = True):
        super().__init__()
        self.frozen_batchnorm = frozen_batchnorm
        self.trunk = efficientnet.imagenet_model() if pretrained else efficientnet.architecture()
        self.trunk.reset_classifier(0)
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in TAP_CHANNELS)
        self.smooth = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, groups=width),
            nn.Conv2d(width, width, 1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )

        def head(out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, out, 1))

        self.heatmap = head(num_classes)
        self.box = head(4)
        nn.init.constant_(self.heatmap[-1].bias, -math.log((1 - PRIOR) / PRIOR))

    def train(self, mode: bool = True) -> CenterNet:
        super().train(mode)
        if mode and self.frozen_batchnorm:  # small batches: keep the trunk's ImageNet statistics
            for layer in self.trunk.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    layer.eval()
        return self

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk.bn1(self.trunk.conv_stem(pixels))  # (B, 32, S/2, S/2)
        taps = []
        for index, stage in enumerate(self.trunk.blocks):
            x = stage(x)
            if index in TAPS:
                taps.append(x)
        fused = self.lateral[2](taps[2])  # (B, W, S/32, S/32), then top-down to stride 8
        for level in (1, 0):
            lateral = self.lateral[level](taps[level])
            fused = lateral + F.interpolate(fused, size=lateral.shape[-2:], mode="nearest")
        fused = self.smooth(fused)  # (B, W, S/8, S/8)
        return self.heatmap(fused), self.box(fused)

    def head_parameters(self) -> list[nn.Parameter]:
        trunk = {id(p) for p in self.trunk.parameters()}
        return [p for p in self.parameters() if id(p) not in trunk]


def gaussian_radius(width: float, height: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: the largest centre shift keeping IoU >= min_overlap with the true box (in cells)."""
    a1, b1 = 1.0, width + height
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    b2 = 2 * (width + height)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (width + height)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return max(0.0, min(r1, r2, r3))


def encode(boxes: torch.Tensor, classes: torch.Tensor, num_classes: int, size: int) -> dict[str, torch.Tensor]:
    """Training targets of one image (boxes (N, 4) in input pixels): the Gaussian heatmap (C, G, G), and per
    object its cell index, box target (4,) and a mask, padded to at least one object."""
    grid = size // STRIDE
    heat = torch.zeros(num_classes, grid, grid)
    ys, xs = torch.meshgrid(
        torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32), indexing="ij"
    )
    n = max(1, len(boxes))
    index = torch.zeros(n, dtype=torch.long)
    target = torch.zeros(n, 4)
    mask = torch.zeros(n)
    for i, (box, cls) in enumerate(zip(boxes.tolist(), classes.tolist(), strict=True)):
        x1, y1, x2, y2 = (v / STRIDE for v in box)
        w, h = x2 - x1, y2 - y1
        if w <= 0 or h <= 0:
            continue
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        ix, iy = min(int(cx), grid - 1), min(int(cy), grid - 1)
        sigma = (2 * max(0.0, int(gaussian_radius(h, w))) + 1) / 6
        heat[cls] = torch.maximum(heat[cls], torch.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2)))
        index[i] = iy * grid + ix
        target[i] = torch.tensor([math.log(w), math.log(h), cx - ix, cy - iy])
        mask[i] = 1.0
    return {"heatmap": heat, "index": index, "box_target": target, "box_mask": mask}


def focal_loss(logits: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of objects."""
    prob = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    positive = heat.eq(1).float()
    pos = torch.log(prob) * (1 - prob) ** 2 * positive
    neg = torch.log(1 - prob) * prob**2 * (1 - heat) ** 4 * (1 - positive)
    return -(pos.sum() + neg.sum()) / positive.sum().clamp(min=1)


def box_loss(box_map: torch.Tensor, index: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 on log size and offset at each object's centre cell (box_map (B, 4, G, G), index/mask (B, N))."""
    flat = box_map.flatten(2).transpose(1, 2)  # (B, G*G, 4)
    picked = flat.gather(1, index[..., None].expand(-1, -1, 4))  # (B, N, 4)
    per_object = (picked - target).abs().sum(-1) * mask
    return per_object.sum() / mask.sum().clamp(min=1)


def decode(
    heat_logits: torch.Tensor,
    box_map: torch.Tensor,
    top_k: int = 100,
    iou_threshold: float = 0.5,
    min_score: float = 0.01,
) -> list[torch.Tensor]:
    """Per image a (K, 6) tensor [x1, y1, x2, y2, score, class] in input pixels: heatmap peaks (3x3 max-pool),
    top-k, then class-wise NMS (peaks of one large object can still yield overlapping boxes)."""
    heat = heat_logits.float().sigmoid()
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    batch, classes, grid, _ = heat.shape
    scores, flat = peaks.flatten(1).topk(min(top_k, classes * grid * grid))  # (B, K)
    cls, cell = flat // (grid * grid), flat % (grid * grid)
    iy, ix = (cell // grid).float(), (cell % grid).float()
    boxes = box_map.float().flatten(2).gather(2, cell[:, None, :].expand(-1, 4, -1))  # (B, 4, K)
    w, h = boxes[:, 0].clamp(max=10).exp(), boxes[:, 1].clamp(max=10).exp()
    cx, cy = ix + boxes[:, 2], iy + boxes[:, 3]
    corners = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * STRIDE  # (B, K, 4)
    corners = corners.clamp(0, grid * STRIDE)
    out = []
    for b in range(batch):
        keep = scores[b] >= min_score
        box, score, label = corners[b][keep], scores[b][keep], cls[b][keep]
        kept = batched_nms(box, score, label, iou_threshold)
        out.append(torch.cat([box[kept], score[kept, None], label[kept, None].float()], 1))
    return out
