"""CIFAR VGG-16 with batch norm: Simonyan & Zisserman, ICLR 2015, configuration D, as adapted
to 32x32 inputs (BN after every conv, one 512->classes linear head) in common CIFAR ports.

Pooling stages are skipped once the feature map is 1x1, so 28x28 and 64x64 inputs work too.
"""

from __future__ import annotations

import torch
from torch import nn

from models.architectures.registry import register_model

_CFG_D: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                           512, 512, 512, "M", 512, 512, 512, "M"]


class CifarVGG(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for v in _CFG_D:
            if v == "M":
                if size >= 2:
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
            else:
                layers += [nn.Conv2d(channels, int(v), 3, padding=1, bias=False),
                           nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
                channels = int(v)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("vgg16")
def vgg16(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """VGG-16 with batch norm for small images (~14.7M parameters)."""
    return CifarVGG(num_classes, in_channels, image_size)
