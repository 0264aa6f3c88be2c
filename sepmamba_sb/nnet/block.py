"""Residual Mamba blocks as mamba-ssm 1.2's ``create_block`` builds them, and a stack of them.

:func:`mamba_block` is the block's computation on given weights (:class:`BlockWeights`), with one set
or several stacked: :class:`MambaBlock` runs it on its own, a bidirectional layer on both directions'
at once (:class:`sepmamba_sb.nnet.BiMamba`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from sepmamba_sb.nnet.mamba import Mamba
from sepmamba_sb.ops import MambaState, MixerWeights, mamba_mixer


def mamba_init_weights(module: nn.Module, n_layer: int, initializer_range: float = 0.02,
                       rescale_prenorm_residual: bool = True, n_residuals_per_layer: int = 1) -> None:
    """mamba-ssm's ``_init_weights``, to be applied with ``model.apply(partial(..., n_layer=n))``.

    Zeroes every ``nn.Linear`` bias not marked ``_no_reinit`` (so ``dt_proj.bias`` keeps its
    special init), draws ``nn.Embedding`` weights from N(0, initializer_range), and, with
    ``rescale_prenorm_residual``, re-draws each module's own ``out_proj.weight`` (or ``fc2.weight``)
    kaiming-uniform(a=sqrt(5)) divided by ``sqrt(n_residuals_per_layer * n_layer)`` (GPT-2's scheme).

    Parameters
    ----------
    module : nn.Module
        The module ``apply`` visits.
    n_layer : int
        Number of residual blocks in the stack.
    initializer_range : float
        Std of embedding weights.
    rescale_prenorm_residual : bool
        Rescale the residual branch's output projection.
    n_residuals_per_layer : int
        1 for Mamba-only blocks (mamba-ssm 1.2), 2 with an MLP.
    """
    if isinstance(module, nn.Linear):
        if module.bias is not None and not getattr(module.bias, "_no_reinit", False):
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=initializer_range)
    if rescale_prenorm_residual:
        for name, param in module.named_parameters():
            if name in ("out_proj.weight", "fc2.weight"):
                nn.init.kaiming_uniform_(param, a=math.sqrt(5))
                with torch.no_grad():
                    param /= math.sqrt(n_residuals_per_layer * n_layer)


@dataclass(frozen=True)
class BlockWeights:
    """A block's tensors: its LayerNorm's and its mixer's, each with or without a leading groups dimension
    (all alike; batch row b uses group ``b // (batch // groups)``).

    Attributes
    ----------
    norm_weight, norm_bias : torch.Tensor
        (d_model,), or (groups, d_model).
    norm_eps : float
        The LayerNorm's epsilon.
    mixer : sepmamba_sb.ops.MixerWeights
        The mixer's.
    """

    norm_weight: torch.Tensor
    norm_bias: torch.Tensor
    norm_eps: float
    mixer: MixerWeights

    @staticmethod
    def stack(sets: list[BlockWeights]) -> BlockWeights:
        """Several blocks' weights as one grouped set, in order (their epsilons must agree)."""
        if len({w.norm_eps for w in sets}) != 1:
            raise ValueError(f"BlockWeights.stack: the blocks' norm epsilons differ: {[w.norm_eps for w in sets]}")
        return BlockWeights(torch.stack([w.norm_weight for w in sets]), torch.stack([w.norm_bias for w in sets]),
                            sets[0].norm_eps, MixerWeights.stack([w.mixer for w in sets]))


def mamba_block(hidden_states: torch.Tensor, residual: torch.Tensor | None, weights: BlockWeights,
                backend: str | None = None, fused: bool = True,
                state: MambaState | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Add -> LayerNorm -> Mamba mixer, with the residual carried separately (mamba-ssm 1.2 ``Block``).

    Parameters
    ----------
    hidden_states : torch.Tensor
        (batch, len, d_model).
    residual : torch.Tensor, optional
        (batch, len, d_model); ``None`` for the first block.
    weights : BlockWeights
        One set, or stacked sets for groups of batch rows.
    backend, fused, state
        As :func:`sepmamba_sb.ops.mamba_mixer`.

    Returns
    -------
    tuple of torch.Tensor
        ``(hidden_states, residual)``, each (batch, len, d_model).
    """
    residual = hidden_states if residual is None else hidden_states + residual
    x = residual.to(dtype=weights.norm_weight.dtype)
    in_proj = weights.mixer.in_proj_weight
    # a bf16 in_proj (sepmamba_sb.precision) reads bf16: the norm's scale and shift write it directly
    out_dtype = torch.bfloat16 if isinstance(in_proj, torch.Tensor) and in_proj.dtype == torch.bfloat16 else x.dtype
    if weights.norm_weight.dim() == 1 and out_dtype == x.dtype:
        normed = F.layer_norm(x, weights.norm_weight.shape, weights.norm_weight, weights.norm_bias, weights.norm_eps)
    else:  # grouped (or cast): normalise every row at once, then each group's scale and shift
        groups = weights.norm_weight.shape[0] if weights.norm_weight.dim() == 2 else 1
        normed = F.layer_norm(x, weights.norm_weight.shape[-1:], eps=weights.norm_eps)
        scale, shift = (w.view(groups, 1, 1, -1) for w in (weights.norm_weight, weights.norm_bias))
        rows = normed.view(groups, -1, *normed.shape[1:])
        cast = {} if out_dtype == x.dtype else {"out": rows.new_empty(rows.shape, dtype=out_dtype)}  # no autograd
        normed = torch.addcmul(shift, rows, scale, **cast).flatten(0, 1)
    return mamba_mixer(normed, weights.mixer, backend=backend, fused=fused, state=state), residual


class MambaBlock(nn.Module):
    """Add -> LayerNorm -> Mamba, with the residual carried separately (mamba-ssm 1.2 ``Block``).

    State-dict keys are ``mixer.*`` and ``norm.*``.

    Parameters
    ----------
    d_model : int
        Channels.
    norm_epsilon : float
        LayerNorm epsilon (mamba-ssm's default 1e-5).
    **mamba_kwargs
        Passed to :class:`Mamba` (d_state, d_conv, expand, ...).
    """

    def __init__(self, d_model: int, norm_epsilon: float = 1e-5, **mamba_kwargs):
        super().__init__()
        self.mixer = Mamba(d_model, **mamba_kwargs)
        self.norm = nn.LayerNorm(d_model, eps=norm_epsilon)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor | None = None,
                state: MambaState | None = None):
        """:func:`mamba_block` with this block's weights (``state``: the mixer's stream state,
        :meth:`Mamba.allocate_state`, updated in place); returns ``(hidden_states, residual)``."""
        return mamba_block(hidden_states, residual, self.block_weights(), self.mixer.backend, self.mixer.use_fast_path,
                           state)

    def block_weights(self) -> BlockWeights:
        """The tensors :func:`mamba_block` takes."""
        return BlockWeights(self.norm.weight, self.norm.bias, self.norm.eps, self.mixer.mixer_weights())


class MambaStack(nn.Module):
    """``num_blocks`` residual :class:`MambaBlock` s (keys ``mamba_blocks.{i}.*``) initialised with
    :func:`mamba_init_weights` (``n_layer=num_blocks``), returning ``hidden + residual``.

    Parameters
    ----------
    d_model : int
        Channels.
    num_blocks : int
        Number of blocks.
    **block_kwargs
        Passed to :class:`MambaBlock`.
    """

    def __init__(self, d_model: int, num_blocks: int, **block_kwargs):
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"MambaStack: num_blocks must be >= 1, got {num_blocks}")
        self.mamba_blocks = nn.ModuleList(MambaBlock(d_model, **block_kwargs) for _ in range(num_blocks))
        self.apply(partial(mamba_init_weights, n_layer=num_blocks))

    def allocate_state(self, batch_size: int) -> list[MambaState]:
        """One zero :class:`sepmamba_sb.ops.MambaState` per block, for :meth:`forward` on a stream."""
        return [block.mixer.allocate_state(batch_size) for block in self.mamba_blocks]

    def forward(self, x: torch.Tensor, state: list[MambaState] | None = None) -> torch.Tensor:
        """(batch, len, d_model) -> (batch, len, d_model); with ``state`` (:meth:`allocate_state`), one
        chunk of a stream, continuing from the previous chunk."""
        hidden, residual = x, None
        for i, block in enumerate(self.mamba_blocks):
            hidden, residual = block(hidden, residual, None if state is None else state[i])
        return hidden + residual
