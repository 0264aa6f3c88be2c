"""SepMamba's bidirectional Mamba layer."""

from __future__ import annotations

import torch
import torch.nn as nn

from sepmamba_sb.nnet.block import BlockWeights, MambaStack, mamba_block
from sepmamba_sb.ops import MambaState


class BiMamba(nn.Module):
    """Forward and backward stacks of Mamba blocks, summed (SepMamba's ``MambaLayer``).

    The forward stack reads the sequence as is; the backward stack, with its own weights, reads it
    reversed in time and its output is reversed back. Each stack returns ``hidden + residual``; the
    layer returns the sum of the two, with no norm or projection after. With ``causal=True`` only the
    forward stack exists, so output ``t`` depends on inputs ``<= t`` only.

    State-dict keys follow the original: ``forward_mamba_block.mamba_blocks.{i}.mixer.*``,
    ``...norm.*`` and the same under ``backward_mamba_block``.

    Both directions run in one pass (``fused=True``, the default): the reversed sequence joins the batch
    as extra rows and block i of each stack runs as one :func:`sepmamba_sb.nnet.block.mamba_block` with
    their weights stacked (:meth:`BlockWeights.stack`), so every operation of a block (norm,
    projections, conv, scan) is one call over twice the batch, with the same parameters and the same
    output as two separate stacks (``fused=False``) up to float round-off. Inside
    ``sepmamba_sb.ops.use_fusion(False)`` the mixers run each direction apart.

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
        elif self.fused:
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
            weights = BlockWeights.stack([forward_block.block_weights(), backward_block.block_weights()])
            mixer = forward_block.mixer
            hidden, residual = mamba_block(hidden, residual, weights, mixer.backend, mixer.use_fast_path)
        return hidden + residual
