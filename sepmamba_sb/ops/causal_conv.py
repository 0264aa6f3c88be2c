"""Causal depthwise convolution of the Mamba block, with causal-conv1d's CUDA kernel when present."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sepmamba_sb.ops.mamba_ssm_kernels import mamba_kernels


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  activation: str | None = "silu") -> torch.Tensor:
    """Depthwise causal convolution: ``y_t`` depends on ``x_{t-W+1} .. x_t`` only.

    The kernel follows the tensor's device: causal-conv1d's ``causal_conv1d_fn`` for CUDA tensors
    when it imported, ``torch.nn.functional.conv1d`` otherwise.

    Parameters
    ----------
    x : torch.Tensor
        Input, (batch, dim, len).
    weight : torch.Tensor
        One filter per channel, (dim, W).
    bias : torch.Tensor, optional
        (dim,).
    activation : {"silu", None}
        Applied to the output.

    Returns
    -------
    torch.Tensor
        (batch, dim, len).
    """
    if activation not in ("silu", None):
        raise ValueError(f"causal_conv1d: activation must be 'silu' or None, got {activation!r}")
    conv_fn = mamba_kernels().causal_conv1d_fn if x.is_cuda else None
    if conv_fn is not None:
        return conv_fn(x, weight, bias, activation=activation)
    width = weight.shape[-1]
    y = F.conv1d(x, weight.unsqueeze(1), bias, padding=width - 1, groups=x.shape[1])[..., : x.shape[-1]]
    return F.silu(y) if activation == "silu" else y
