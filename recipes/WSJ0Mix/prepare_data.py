"""The WSJ0Mix recipe's data preparation (and, through a link, the WHAMandWHAMR recipe's): wsj0-mix,
WHAM! or WHAMR! folders -> SpeechBrain CSVs. The code is :mod:`sepmamba_sb.data.wsjmix`; ``train.py``
calls it, so this file is only for scripts that import ``prepare_data`` the way SpeechBrain's recipes do.
"""

from sepmamba_sb.data.wsjmix import folders_for, prepare_wsjmix

__all__ = ["folders_for", "prepare_wsjmix"]
