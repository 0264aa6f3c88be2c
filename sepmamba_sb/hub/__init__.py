"""SpeechBrain hub folders: write one from a training run, check it as a new user would load it, upload it.

    python -m sepmamba_sb.hub export RUN_FOLDER OUT_FOLDER      # from a recipe's output folder
    python -m sepmamba_sb.hub check FOLDER                      # exit 0: ready to share
    python -m sepmamba_sb.hub push FOLDER --repo USER/NAME      # check, then upload to huggingface.co

A folder holds ``hyperparams.yaml`` (the modules and a ``pretrainer``), one ``<module>.ckpt`` per
module, ``custom_interface.py`` (for SpeechBrain's ``foreign_class``), the model card ``README.md``
and ``test_mixture.wav``. It loads three ways: ``foreign_class(source, pymodule_file=
"custom_interface.py", classname="SepMambaSeparation")``, ``SepMambaSeparation.from_hparams``, and,
for the masking form, SpeechBrain's own ``SepformerSeparation.from_hparams``.
"""

from sepmamba_sb.hub.card import install_line
from sepmamba_sb.hub.check import CheckResult, HubCheckError, absolute_paths, check
from sepmamba_sb.hub.cli import main
from sepmamba_sb.hub.export import export
from sepmamba_sb.hub.push import push

__all__ = ["CheckResult", "HubCheckError", "absolute_paths", "check", "export", "install_line", "main", "push"]
