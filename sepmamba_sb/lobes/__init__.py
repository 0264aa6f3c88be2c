"""SepMamba models: the paper's direct model and its SpeechBrain encoder/masknet/decoder form.

``CONFIGS`` holds the paper's four configurations (keyword arguments of :class:`SepMamba`).
"""

from sepmamba_sb.lobes.masking import Decoder, Encoder, MaskingSeparator, MaskNet, separate
from sepmamba_sb.lobes.sepmamba import SepMamba
from sepmamba_sb.lobes.unet import SepMambaUNet

_PAPER = {"kernel_sizes": (16, 16, 16), "strides": (2, 2, 2), "act_fn": "relu"}
CONFIGS = {
    "S": {"dim": 64, "num_blocks": 4, **_PAPER},
    "M": {"dim": 128, "num_blocks": 3, **_PAPER},
    "S-causal": {"dim": 64, "num_blocks": 8, "causal": True, **_PAPER},
    "M-causal": {"dim": 128, "num_blocks": 6, "causal": True, **_PAPER},
}

__all__ = ["CONFIGS", "Decoder", "Encoder", "MaskNet", "MaskingSeparator", "SepMamba", "SepMambaUNet", "separate"]
