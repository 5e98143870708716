"""Training a ResNet fast on the CPU (train_resnet): :func:`for_cpu_training`.

A torchvision ResNet on 32 px digits runs layer3 and layer4 on 2×2 and 1×1 maps. There, oneDNN
computes the weight gradient of a 3×3 convolution through its ``gemm:jit`` fallback (ONEDNN_VERBOSE
shows ``x64:gemm:jit,backward_weights``), not its direct JIT kernels: on an AVX2 EPYC one 512-channel
layer4 conv takes 136 ms for a gradient that is one (512 × 64) @ (64 × 4,608) matmul of 5 ms.
:func:`use_matmul_weight_grads` computes that gradient as the matmul it is — ``unfold`` (im2col)
of the input times the output's gradient — and leaves the input gradient and every larger map to
oneDNN; the network then runs in ``channels_last`` (NHWC, oneDNN's own layout: no reorders
around every convolution). Measured side by side (``python bench/train_flops.py``, 2 runs of 1
thread, as the stage trains): 132 images/s before, 252 with the matmul gradient, 338 with both.
Same maths, another summation order: the weights differ from oneDNN's by rounding, as on another
CPU, and are the same for a seed on one machine (matmuls and ``unfold`` are deterministic).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

SMALL_MAP = 4  # output pixels (2×2) at or below which the weight gradient is a matmul; measured above


class _MatmulWeightGradConv(torch.autograd.Function):
    """``conv2d`` without bias, groups or dilation whose backward takes the weight gradient as a matmul."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, stride: tuple, padding: tuple) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, None, stride, padding)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        x, weight = ctx.saved_tensors
        grad_x = None
        if ctx.needs_input_grad[0]:
            mask = (True, False, False)  # the input's gradient only: oneDNN's backward_data is fast here
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, ctx.stride, ctx.padding, (1, 1), False, (0, 0), 1, mask
            )[0]
        cols = F.unfold(x, weight.shape[2:], padding=ctx.padding, stride=ctx.stride)  # N, C·kh·kw, L
        n, out_channels = grad.shape[:2]
        g = grad.reshape(n, out_channels, -1).permute(1, 0, 2).reshape(out_channels, -1)  # O, N·L
        grad_w = g @ cols.permute(0, 2, 1).reshape(-1, cols.shape[1])  # O, C·kh·kw
        return grad_x, grad_w.view_as(weight), None, None


class SmallMapConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` that trains with the matmul weight gradient where its output map is small."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        h = (x.shape[-2] + 2 * self.padding[0] - self.kernel_size[0]) // self.stride[0] + 1
        w = (x.shape[-1] + 2 * self.padding[1] - self.kernel_size[1]) // self.stride[1] + 1
        if bias is None and h * w <= SMALL_MAP and torch.is_grad_enabled() and x.device.type == "cpu":
            return _MatmulWeightGradConv.apply(x, weight, self.stride, self.padding)
        return super()._conv_forward(x, weight, bias)


def use_matmul_weight_grads(net: nn.Module) -> nn.Module:
    """Make every plain convolution of ``net`` (no groups, dilation or padding mode) a
    :class:`SmallMapConv2d`, in place: same parameters and state dict, same forward results."""
    for m in net.modules():
        if (
            type(m) is nn.Conv2d
            and m.groups == 1
            and m.dilation == (1, 1)
            and m.padding_mode == "zeros"
            and not isinstance(m.padding, str)
        ):
            m.__class__ = SmallMapConv2d
    return net


def for_cpu_training(net: nn.Module) -> nn.Module:
    """``net`` with matmul weight gradients on small maps, in ``channels_last``: train_resnet's CPU
    network. Its state dict has the same names and values (saved contiguous, it is NCHW again)."""
    return use_matmul_weight_grads(net).to(memory_format=torch.channels_last)
