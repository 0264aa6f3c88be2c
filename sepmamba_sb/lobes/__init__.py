"""SepMamba models: the paper's direct model and its SpeechBrain encoder/masknet/decoder form.

``CONFIGS`` holds the paper's four configurations and their 16 kHz counterparts (``<name>-16k``;
keyword arguments of :class:`SepMamba`, read from
``configs/*.yaml``); :func:`as_separator` runs either form's modules as one separator.
"""

from sepmamba_sb.lobes.masking import Decoder, Encoder, MaskingSeparator, MaskNet, separate
from sepmamba_sb.lobes.paper import CONFIG_FOLDER, CONFIGS
from sepmamba_sb.lobes.separator import FORMS, as_separator, model_form
from sepmamba_sb.lobes.sepmamba import SepMamba
from sepmamba_sb.lobes.unet import SepMambaUNet, fit_length

__all__ = ["CONFIGS", "CONFIG_FOLDER", "FORMS", "Decoder", "Encoder", "MaskNet", "MaskingSeparator", "SepMamba",
           "SepMambaUNet", "as_separator", "fit_length", "model_form", "separate"]
