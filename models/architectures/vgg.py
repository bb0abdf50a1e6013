"""CIFAR VGG-16 with batch norm: Simonyan & Zisserman, ICLR 2015, configuration D, as adapted
to 32x32 inputs (BN after every conv, one 512->classes linear head) in common CIFAR ports.

Pooling stages are skipped once the feature map is 1x1, so 28x28 and 64x64 inputs work too.
``vgg16_025`` is the same configuration at a quarter of every layer's width (channels 16 to
128, ~0.92M parameters, 3.7 MB as ONNX instead of 57 MB): the zoo's held-out VGG-16s use it so
that a population of them can ship in the repository.
"""

from __future__ import annotations

import torch
from torch import nn

from models.architectures.registry import register_model

_CFG_D: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                           512, 512, 512, "M", 512, 512, 512, "M"]


class CifarVGG(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, image_size: int,
                 width: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for v in _CFG_D:
            if v == "M":
                if size >= 2:
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
            else:
                out = max(1, int(int(v) * width))
                layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False),
                           nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("vgg16")
def vgg16(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """VGG-16 with batch norm for small images (~14.7M parameters)."""
    return CifarVGG(num_classes, in_channels, image_size)


@register_model("vgg16_025")
def vgg16_025(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """VGG-16 with batch norm at a quarter of the width (~0.92M parameters)."""
    return CifarVGG(num_classes, in_channels, image_size, width=0.25)
