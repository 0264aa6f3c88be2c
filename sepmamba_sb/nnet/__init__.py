"""Neural building blocks: the Mamba mixer, its residual block and stack, and the bidirectional layer."""

from sepmamba_sb.nnet.bimamba import BiMamba
from sepmamba_sb.nnet.block import MambaBlock, MambaStack, mamba_init_weights
from sepmamba_sb.nnet.mamba import Mamba

__all__ = ["BiMamba", "Mamba", "MambaBlock", "MambaStack", "mamba_init_weights"]
