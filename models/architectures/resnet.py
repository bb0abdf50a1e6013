"""CIFAR ResNets of He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, §4.2.

Three stages of n basic blocks with 16/32/64 channels, stride 2 between stages, global average
pooling, one linear layer; depth = 6n + 2. Shortcuts are 1x1 conv + BN projections where the
shape changes (option B; option A's zero padding gives the same parameter count within 1%).
ResNet-20: n = 3 (~0.27M parameters for 10 classes); ResNet-56: n = 9 (~0.85M).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models.architectures.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, blocks_per_stage: int, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers: list[nn.Module] = []
        in_planes = 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(blocks_per_stage):
                layers.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


@register_model("resnet20")
def resnet20(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """ResNet-20 (n = 3), He et al. 2016."""
    return CifarResNet(3, num_classes, in_channels)


@register_model("resnet56")
def resnet56(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """ResNet-56 (n = 9), He et al. 2016; the seed paper's main architecture."""
    return CifarResNet(9, num_classes, in_channels)
