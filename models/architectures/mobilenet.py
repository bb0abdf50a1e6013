"""CIFAR MobileNet (v1): Howard et al., "MobileNets", arXiv:1704.04861, 2017.

The seed paper cites FD-MobileNet (Qin et al., ICIP 2018), a "fast-downsampling" MobileNet v1 for
very small compute budgets. We build MobileNet v1's depthwise-separable stack with a width
multiplier and a CIFAR stem (3x3 stride-1 first conv, strides placed so 32x32 inputs end at 2x2),
which is the variant used by the CIFAR ports the paper's code base follows; FD-MobileNet's
aggressive early downsampling throws away too much of a 28x28 or 32x32 image to be a fair
stand-in at this resolution. Width multiplier 1.0: ~3.2M parameters for 10 classes.
"""

from __future__ import annotations

import torch
from torch import nn

from models.architectures.registry import register_model

# (out_channels, stride) of the 13 depthwise-separable blocks, CIFAR strides.
_BLOCKS = [(64, 1), (128, 1), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


def _separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class CifarMobileNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, width: float = 1.0) -> None:
        super().__init__()
        c0 = int(32 * width)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, c0, 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(c0), nn.ReLU(inplace=True)]
        cin = c0
        for cout, stride in _BLOCKS:
            layers.append(_separable(cin, int(cout * width), stride))
            cin = int(cout * width)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(pooled, 1))


@register_model("mobilenet")
def mobilenet(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """CIFAR MobileNet v1, width 1.0."""
    return CifarMobileNet(num_classes, in_channels)


@register_model("mobilenet_025")
def mobilenet_025(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """CIFAR MobileNet v1 at width multiplier 0.25 (one of the paper's own widths; ~0.2M
    parameters): the zoo's held-out MobileNets."""
    return CifarMobileNet(num_classes, in_channels, width=0.25)
