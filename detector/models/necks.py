"""Multi-scale necks: a PAN-FPN over the backbone's stride-8/16/32 features."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from detector.models.layers import ConvBNAct, DepthwiseSeparable


class PANFPN(nn.Module):
    """FPN's top-down path (coarse semantics into fine maps) followed by PANet's bottom-up path
    (fine localisation back into coarse maps). Every output has ``width`` channels.

    Input: features at increasing strides (e.g. 8, 16, 32). Output: the same number of maps at the
    same strides.
    """

    def __init__(self, in_channels: Sequence[int], width: int) -> None:
        super().__init__()
        levels = len(in_channels)
        self.lateral = nn.ModuleList(ConvBNAct(c, width, 1) for c in in_channels)
        self.top_down = nn.ModuleList(DepthwiseSeparable(width, width) for _ in range(levels - 1))
        self.downsample = nn.ModuleList(
            ConvBNAct(width, width, 3, stride=2, groups=width) for _ in range(levels - 1)
        )
        self.bottom_up = nn.ModuleList(DepthwiseSeparable(width, width) for _ in range(levels - 1))
        self.out_channels = (width,) * levels

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        maps = [lateral(feature) for lateral, feature in zip(self.lateral, features, strict=True)]
        for level in range(len(maps) - 2, -1, -1):
            coarse = F.interpolate(maps[level + 1], size=maps[level].shape[-2:], mode="nearest")
            maps[level] = self.top_down[level](maps[level] + coarse)
        outputs = [maps[0]]
        for level in range(1, len(maps)):
            down = self.downsample[level - 1](outputs[-1])
            if down.shape[-2:] != maps[level].shape[-2:]:
                down = F.interpolate(down, size=maps[level].shape[-2:], mode="nearest")
            outputs.append(self.bottom_up[level - 1](maps[level] + down))
        return outputs
