"""SpeechBrain's entry point for a SepMamba model (every exported hub folder holds a copy of this file):

    from speechbrain.inference.interfaces import foreign_class
    model = foreign_class(source="<hub id or folder>", pymodule_file="custom_interface.py",
                          classname="SepMambaSeparation", savedir="pretrained")
    sources = model.separate_file("mixture.wav")   # [1, T, S]

The model's code is the sepmamba_sb package; this file only names its interface class.
"""

try:
    from sepmamba_sb.inference import SepMambaSeparation
except ImportError as exc:
    raise ImportError("this SepMamba model needs the sepmamba_sb package: pip install sepmamba_sb (the model card, "
                      "README.md, names the version it was exported with)") from exc

__all__ = ["SepMambaSeparation"]
