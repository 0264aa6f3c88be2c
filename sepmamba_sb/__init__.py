"""SepMamba (arXiv 2410.20997) as a SpeechBrain plugin.

Subpackages: :mod:`sepmamba_sb.ops` (selective scan backends), :mod:`sepmamba_sb.nnet` (Mamba blocks).
"""

__version__ = "0.1.0"
