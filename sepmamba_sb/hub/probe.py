"""Load a hub folder one way in this (fresh) Python and save its estimates of the folder's test mixture:
what :func:`sepmamba_sb.hub.check` runs, once per way a user would load the folder.

    python -m sepmamba_sb.hub.probe FOLDER WAY SAVEDIR OUT

``WAY`` is ``foreign_class`` (SpeechBrain's loader of models with code of their own, through the folder's
``custom_interface.py``), ``SepMambaSeparation`` (also separating the file with ``separate_file``) or
``SepformerSeparation`` (SpeechBrain's own class, for the masking form). ``OUT`` receives the raw
estimates of ``separate_batch``, [1, T, S]. Exit status 0 when the folder loaded and separated.
"""

from __future__ import annotations

import sys

import torch

from sepmamba_sb.hub.layout import INTERFACE_CLASS, INTERFACE_FILE, TEST_MIXTURE

WAYS = ("foreign_class", INTERFACE_CLASS, "SepformerSeparation")


def load(folder: str, way: str, savedir: str):
    """The folder's model, loaded ``way``."""
    if way == "foreign_class":
        from speechbrain.inference.interfaces import foreign_class

        return foreign_class(source=folder, pymodule_file=INTERFACE_FILE, classname=INTERFACE_CLASS, savedir=savedir)
    if way == INTERFACE_CLASS:
        from sepmamba_sb.inference import SepMambaSeparation

        model = SepMambaSeparation.from_hparams(source=folder, savedir=savedir)
        if not torch.isfinite(model.separate_file(f"{folder}/{TEST_MIXTURE}", progress=False)).all():
            raise ValueError("separate_file gave non-finite samples")
        return model
    if way == "SepformerSeparation":
        from speechbrain.inference.separation import SepformerSeparation

        return SepformerSeparation.from_hparams(source=folder, savedir=savedir)
    raise ValueError(f"way must be one of {WAYS}, got {way!r}")


def main(argv: list[str] | None = None) -> int:
    folder, way, savedir, out = sys.argv[1:] if argv is None else argv
    model = load(folder, way, savedir)
    from sepmamba_sb.audio import read_audio  # after loading: the load itself imports nothing of ours first

    mix, _ = read_audio(f"{folder}/{TEST_MIXTURE}")
    torch.save(model.separate_batch(mix[None]).cpu(), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
