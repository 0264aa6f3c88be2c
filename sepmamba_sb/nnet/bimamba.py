"""SepMamba's bidirectional Mamba layer."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from sepmamba_sb.nnet.block import MambaStack
from sepmamba_sb.ops import MambaState, fusion_enabled, mamba_mixer


class BiMamba(nn.Module):
    """Forward and backward stacks of Mamba blocks, summed (SepMamba's ``MambaLayer``).

    The forward stack reads the sequence as is; the backward stack, with its own weights, reads it
    reversed in time and its output is reversed back. Each stack returns ``hidden + residual``; the
    layer returns the sum of the two, with no norm or projection after. With ``causal=True`` only the
    forward stack exists, so output ``t`` depends on inputs ``<= t`` only.

    State-dict keys follow the original: ``forward_mamba_block.mamba_blocks.{i}.mixer.*``,
    ``...norm.*`` and the same under ``backward_mamba_block``.

    Both directions run in one pass (``fused=True``, the default): the reversed sequence joins the batch
    as extra rows and each block's weights are stacked per direction, so every operation of a block
    (norm, projections, conv, scan) is one call over twice the batch, with the same parameters and the
    same output as two separate stacks (``fused=False``, or inside ``sepmamba_sb.ops.use_fusion(False)``)
    up to float round-off.

    Parameters
    ----------
    d_model : int
        Channels C.
    num_blocks : int
        Blocks per direction.
    causal : bool
        Forward direction only.
    fused : bool
        Run the two directions as one batch (see above).
    **block_kwargs
        Passed to each :class:`sepmamba_sb.nnet.MambaBlock` (norm_epsilon, d_state, d_conv, expand, ...).

    Example
    -------
    >>> layer = BiMamba(d_model=32, num_blocks=2)
    >>> layer(torch.randn(2, 32, 100)).shape
    torch.Size([2, 32, 100])
    """

    def __init__(self, d_model: int, num_blocks: int, causal: bool = False, fused: bool = True, **block_kwargs):
        super().__init__()
        self.forward_mamba_block = MambaStack(d_model, num_blocks, **block_kwargs)
        self.backward_mamba_block = None if causal else MambaStack(d_model, num_blocks, **block_kwargs)
        self.fused = fused

    def allocate_state(self, batch_size: int) -> list[MambaState]:
        """The zero stream state of a causal layer (its forward stack's, one per block).

        Raises
        ------
        ValueError
            For a bidirectional layer: its backward stack reads the sequence from its end.
        """
        if self.backward_mamba_block is not None:
            raise ValueError("a bidirectional Mamba layer cannot stream: its backward stack reads the sequence "
                             "from its end (build the model with causal=True)")
        return self.forward_mamba_block.allocate_state(batch_size)

    def forward(self, x: torch.Tensor, state: list[MambaState] | None = None) -> torch.Tensor:
        """(batch, C, len) -> (batch, C, len); with ``state`` (:meth:`allocate_state`, causal layers only),
        one chunk of a stream."""
        x = x.transpose(1, 2)
        if self.backward_mamba_block is None:
            out = self.forward_mamba_block(x, state)
        elif self.fused and fusion_enabled():
            both = self._both_directions(torch.cat([x, x.flip(1)]))
            out = both[: x.shape[0]] + both[x.shape[0]:].flip(1)
        else:
            out = self.forward_mamba_block(x) + self.backward_mamba_block(x.flip(1)).flip(1)
        return out.transpose(1, 2)

    def _both_directions(self, rows: torch.Tensor) -> torch.Tensor:
        """Both stacks at once on ``rows`` = [sequence; reversed sequence], (2 * batch, len, C): block i of
        each stack with its weights stacked (forward first), so one call per operation."""
        hidden, residual = rows, None
        pairs = zip(self.forward_mamba_block.mamba_blocks, self.backward_mamba_block.mamba_blocks, strict=True)
        for forward_block, backward_block in pairs:
            residual = hidden if residual is None else hidden + residual
            norms = (forward_block.norm, backward_block.norm)
            normed = F.layer_norm(residual.to(norms[0].weight.dtype), norms[0].normalized_shape, eps=norms[0].eps)
            scale, shift = (torch.stack([getattr(n, k) for n in norms])[:, None, None] for k in ("weight", "bias"))
            normed = torch.addcmul(shift, normed.view(2, -1, *normed.shape[1:]), scale).flatten(0, 1)
            weights = (forward_block.mixer.mixer_weights(), backward_block.mixer.mixer_weights())
            stacked = {k: None if w is None else torch.stack([w, weights[1][k]]) for k, w in weights[0].items()}
            mixer = forward_block.mixer
            hidden = mamba_mixer(normed, **stacked, backend=mixer.backend, fused=mixer.use_fast_path)
        return hidden + residual
