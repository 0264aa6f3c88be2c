"""The one separator entry for both model forms: mixtures [B, T] in, estimates [B, T, S] out.

A recipe, a hub folder or a benchmark names its modules either as the paper's direct model
(``sepmamba``) or as SpeechBrain's masking triple (``encoder``, ``masknet``, ``decoder``).
:func:`model_form` says which, with an error naming what is there otherwise; :func:`as_separator`
returns one module that separates, whatever the form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch.nn as nn

from sepmamba_sb.lobes.masking import MaskingSeparator

FORMS = {"direct": ("sepmamba",), "masking": ("encoder", "masknet", "decoder")}


def model_form(names: Iterable[str]) -> str:
    """``"direct"`` or ``"masking"``: the form whose modules are among ``names``.

    Raises
    ------
    ValueError
        When neither form's modules are all there (or both are), naming what is there.
    """
    names = set(names)
    found = [form for form, modules in FORMS.items() if set(modules) <= names]
    if len(found) != 1:
        raise ValueError(f"modules must hold 'sepmamba' (the paper's model) or 'encoder', 'masknet' and 'decoder' "
                         f"(SpeechBrain's masking form), not both; got {sorted(names)}")
    return found[0]


def as_separator(modules: Mapping[str, nn.Module], num_spks: int) -> nn.Module:
    """One module mapping mixtures [B, T] to estimates [B, T, S], from either form's modules.

    Parameters
    ----------
    modules : Mapping
        ``{"sepmamba": ...}`` or ``{"encoder": ..., "masknet": ..., "decoder": ...}`` (a SpeechBrain
        ``modules`` dict; other entries are ignored).
    num_spks : int
        S.

    Returns
    -------
    nn.Module
        The ``sepmamba`` module itself, or a :class:`MaskingSeparator` over the triple (the same
        module objects, so training one trains the other).
    """
    if model_form(modules.keys()) == "direct":
        return modules["sepmamba"]
    return MaskingSeparator(modules["encoder"], modules["masknet"], modules["decoder"], num_spks)
