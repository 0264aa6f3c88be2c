"""Causal depthwise convolution of the Mamba block, with causal-conv1d's CUDA kernel when present."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sepmamba_sb.ops import cpu_kernel
from sepmamba_sb.ops.mamba_ssm_kernels import mamba_kernels


def _check_weight(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> int:
    """Raise a ValueError naming the argument that does not fit ``x``; return the number of groups."""
    groups = weight.shape[0] if weight.dim() == 3 else 1
    if weight.dim() not in (2, 3) or weight.shape[-2] != x.shape[1]:
        raise ValueError(f"causal_conv1d: weight must be (dim={x.shape[1]}, W) or (groups, dim, W), "
                         f"got {tuple(weight.shape)}")
    if x.shape[0] % groups:
        raise ValueError(f"causal_conv1d: the batch ({x.shape[0]}) must be a multiple of weight's groups ({groups})")
    if bias is not None and tuple(bias.shape) != tuple(weight.shape[:-1]):
        raise ValueError(f"causal_conv1d: bias must have shape {tuple(weight.shape[:-1])}, got {tuple(bias.shape)}")
    return groups


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  activation: str | None = "silu", initial_states: torch.Tensor | None = None,
                  return_final_states: bool = False, overwrite_input: bool = False, fused: bool = True):
    """Depthwise causal convolution: ``y_t`` depends on ``x_{t-W+1} .. x_t`` only.

    The kernel follows the tensor's device: with ``fused``, our C++ kernel on the CPU (float32/float64;
    one pass with the SiLU fused, differentiable without initial states); causal-conv1d's
    ``causal_conv1d_fn`` for CUDA tensors when it imported and no initial states are given;
    ``torch.nn.functional.conv1d`` or shifted multiply-adds otherwise.
    With ``initial_states`` (the ``W - 1`` inputs before ``x``; zeros otherwise), a stream convolved chunk
    by chunk, each chunk given the previous one's final states, equals the whole stream convolved at once.

    Parameters
    ----------
    x : torch.Tensor
        Input, (batch, dim, len), any strides (on the CPU, a (batch, len, dim) memory layout is read in
        place and the output keeps it).
    weight : torch.Tensor
        One filter per channel, (dim, W); or (groups, dim, W), batch row b using group
        ``b // (batch // groups)`` (the two directions of a bidirectional layer).
    bias : torch.Tensor, optional
        (dim,), or (groups, dim).
    activation : {"silu", None}
        Applied to the output.
    initial_states : torch.Tensor, optional
        (batch, dim, W - 1): the inputs that precede ``x``.
    return_final_states : bool
        Also return the last ``W - 1`` inputs (of ``initial_states`` and ``x`` together), for the next chunk.
    overwrite_input : bool
        ``x`` is not needed afterwards: the CPU kernel, without autograd, writes the output over it
        instead of allocating (other paths ignore this).
    fused : bool
        Allow the C++ kernel (False: PyTorch operators, what MAC counters see; the Mamba mixer passes
        :func:`sepmamba_sb.ops.fusion_enabled`).

    Returns
    -------
    torch.Tensor or tuple of torch.Tensor
        (batch, dim, len); with ``return_final_states``, also (batch, dim, W - 1).
    """
    if activation not in ("silu", None):
        raise ValueError(f"causal_conv1d: activation must be 'silu' or None, got {activation!r}")
    groups = _check_weight(x, weight, bias)
    width = weight.shape[-1]
    if initial_states is not None and tuple(initial_states.shape) != (x.shape[0], x.shape[1], width - 1):
        raise ValueError(f"causal_conv1d: initial_states must be (batch, dim, W - 1) = "
                         f"{(x.shape[0], x.shape[1], width - 1)}, got {tuple(initial_states.shape)}")
    wants_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    # bfloat16 activations (sepmamba_sb.precision) take the C++ kernel in inference only
    kernel_dtypes = (torch.float32, torch.float64) if wants_grad else (torch.float32, torch.float64, torch.bfloat16)
    if (x.device.type == "cpu" and x.dtype in kernel_dtypes and fused
            and not (wants_grad and initial_states is not None) and cpu_kernel.build_error() is None):
        with torch.profiler.record_function("sepmamba_sb::causal_conv1d (cpu)"):  # named in profiles
            y, final_states = cpu_kernel.causal_conv1d_cpu(x, weight, bias, initial_states, activation == "silu",
                                                           overwrite_input)
        if not return_final_states:
            return y
        if final_states is None:  # differentiated: the last inputs, from x itself
            final_states = _last_inputs(x, initial_states, width)
        return y, final_states
    if x.dtype != weight.dtype:  # bfloat16 activations on a portable path: computed in the weight's dtype
        out = causal_conv1d(x.to(weight.dtype), weight, bias, activation, initial_states, return_final_states,
                            fused=fused)
        return (out[0].to(x.dtype), out[1]) if return_final_states else out.to(x.dtype)
    if groups > 1:  # the portable paths take one filter bank: one call per group
        outs = [causal_conv1d(xg, wg, None if bias is None else bias[g], activation,
                              None if initial_states is None else initial_states.chunk(groups)[g], return_final_states,
                              fused=fused)
                for g, (xg, wg) in enumerate(zip(x.chunk(groups), weight, strict=True))]
        if not return_final_states:
            return torch.cat(outs)
        return torch.cat([y for y, _ in outs]), torch.cat([f for _, f in outs])
    if initial_states is None and not return_final_states:  # the whole sequence at once
        conv_fn = mamba_kernels().causal_conv1d_fn if x.is_cuda else None
        if conv_fn is not None:
            return conv_fn(x, weight, bias, activation=activation)
        y = F.conv1d(x, weight.unsqueeze(1), bias, padding=width - 1, groups=x.shape[1])[..., : x.shape[-1]]
        return F.silu(y) if activation == "silu" else y
    if initial_states is None:
        initial_states = x.new_zeros(x.shape[0], x.shape[1], width - 1)
    padded = torch.cat([initial_states.to(x.dtype), x], dim=-1)
    # W shifted multiply-adds: on the short chunks of a stream, 25x faster than a oneDNN depthwise conv
    length = x.shape[-1]
    y = padded[..., :length] * weight[:, :1]
    for k in range(1, width):
        y = torch.addcmul(y, padded[..., k:k + length], weight[:, k:k + 1])
    if bias is not None:
        y = y + bias.unsqueeze(-1)
    y = F.silu(y) if activation == "silu" else y
    return (y, padded[..., padded.shape[-1] - (width - 1):]) if return_final_states else y


def _last_inputs(x: torch.Tensor, initial_states: torch.Tensor | None, width: int) -> torch.Tensor:
    """The last ``width - 1`` inputs of ``[initial_states, x]``, (batch, dim, width - 1)."""
    if initial_states is None:
        initial_states = x.new_zeros(x.shape[0], x.shape[1], width - 1)
    padded = torch.cat([initial_states.to(x.dtype), x.detach()], dim=-1)
    return padded[..., padded.shape[-1] - (width - 1):].contiguous()
