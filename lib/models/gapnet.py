"""The course's own small CNN: conv blocks -> global average pooling -> linear.

Because the head is GAP followed by one linear layer, the class score is exactly the spatial
mean of the class activation map plus the bias (Zhou et al. 2016), so CAM applies without
approximation:  y^c = sum_k w_k^c * mean_xy f_k(x, y) + b^c = mean_xy M_c(x, y) + b^c.
"""
from __future__ import annotations

import torch
from torch import nn


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class GapNet(nn.Module):
    """Four conv stages (64 -> 32 -> 16 -> 8 px for a 64 px canvas), GAP, linear.

    Layer names (``named_modules``): ``features.<i>`` for the conv trunk, ``pool`` (GAP),
    ``fc`` (the linear classifier). ``features.<last>`` is the last ReLU, whose output
    f_k(x, y) is what CAM weights.
    """

    def __init__(self, num_classes: int = 10, widths: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        w1, w2, w3, w4 = widths
        layers: list[nn.Module] = []
        layers += _conv(3, w1) + _conv(w1, w1) + [nn.MaxPool2d(2)]      # 64 -> 32
        layers += _conv(w1, w2) + _conv(w2, w2) + [nn.MaxPool2d(2)]     # 32 -> 16
        layers += _conv(w2, w3) + _conv(w3, w3) + [nn.MaxPool2d(2)]     # 16 -> 8
        layers += _conv(w3, w4) + _conv(w4, w4)                         # 8 x 8, CAM resolution
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w4, num_classes)
        self.widths = tuple(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))

    @property
    def last_conv_layer(self) -> str:
        """Name of the module whose output CAM uses (the last ReLU of the trunk)."""
        return f"features.{len(self.features) - 1}"
