"""Small building blocks: conv-BN-activation and MobileNet's depthwise-separable convolution."""

from __future__ import annotations

from torch import nn


class ConvBNAct(nn.Sequential):
    def __init__(
        self, in_channels: int, out_channels: int, kernel: int = 1, *, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.SiLU(inplace=True),
        )


class DepthwiseSeparable(nn.Sequential):
    """A 3×3 depthwise convolution (one filter per channel: spatial mixing) followed by a 1×1
    pointwise one (channel mixing): MobileNet's factorisation, ~8–9× fewer multiply-adds than a
    full 3×3 convolution at the same width."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1) -> None:
        super().__init__(
            ConvBNAct(in_channels, in_channels, 3, stride=stride, groups=in_channels),
            ConvBNAct(in_channels, out_channels, 1),
        )
