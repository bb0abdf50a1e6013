"""A tiny CNN (two conv + BN + ReLU + pool stages, one linear layer; ~20k parameters).

Not from the paper: it exists so tests and quick experiments can train a real classifier in
seconds on 2 CPU cores. It is a full citizen of the registry (export, quantise, prune, serve).
"""

from __future__ import annotations

from torch import nn

from models.architectures.registry import register_model


@register_model("tinycnn")
def tinycnn(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """Conv(16)-BN-ReLU-MaxPool, Conv(32)-BN-ReLU-MaxPool, global average pool, Linear."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
    )
