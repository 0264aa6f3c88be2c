"""Load checkpoints saved by the authors' SepMamba code into :class:`sepmamba_sb.lobes.SepMamba`.

Our parameter names are theirs (``down.0.conv1d.weight``,
``down.0.mamba_layer.forward_mamba_block.mamba_blocks.0.mixer.in_proj.weight``, ``up.0.convT1d.weight``,
``up.0.conv1d_fusion.weight``, ``decoder.weight``...), so conversion is the identity on the tensors.
What this module adds: reading the file whatever wraps the state dict (their training script saves
``{"model_state_dict": ..., "optimizer_state_dict": ..., "epoch": ...}``; DDP and ``torch.compile``
prefixes are stripped), inferring the configuration from the tensors' shapes, and a clear error
listing missing and unexpected keys.

Example
-------
>>> from sepmamba_sb.convert import load_original_checkpoint
>>> model = load_original_checkpoint("best_model.pth")           # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import torch

from sepmamba_sb.lobes import SepMamba

STATE_DICT_ENTRIES = ("model_state_dict", "state_dict", "model")
PREFIXES = ("module.", "_orig_mod.")


def extract_state_dict(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """The model's state dict from a bare state dict or a training checkpoint that holds one.

    Parameters
    ----------
    checkpoint : Mapping
        What ``torch.load`` returned.

    Returns
    -------
    dict
        Key -> tensor, with ``module.`` / ``_orig_mod.`` prefixes removed.
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"expected a state dict or a dict holding one, got {type(checkpoint).__name__}")
    state = checkpoint
    if not any(isinstance(v, torch.Tensor) for v in state.values()):
        inner = [k for k in STATE_DICT_ENTRIES if isinstance(checkpoint.get(k), Mapping)]
        if not inner:
            raise KeyError(
                f"no state dict in this checkpoint: it holds {sorted(checkpoint)[:10]}, none of them tensors, "
                f"and none of {list(STATE_DICT_ENTRIES)}"
            )
        state = checkpoint[inner[0]]
    cleaned = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        cleaned[key] = value
    return cleaned


def infer_config(state: Mapping[str, torch.Tensor], strides: Sequence[int] | None = None) -> dict:
    """SepMamba keyword arguments that fit the shapes in ``state`` (strides cannot be read from a
    state dict: give them if they are not the paper's 2, 2, 2)."""
    try:
        levels = sorted({int(m.group(1)) for k in state if (m := re.match(r"down\.(\d+)\.", k))})
        kernel_sizes = [state[f"down.{level}.conv1d.weight"].shape[-1] for level in levels]
        prefix = "down.0.mamba_layer.forward_mamba_block.mamba_blocks."
        num_blocks = len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})
        mixer = state[prefix + "0.mixer.in_proj.weight"]
        config = {
            "dim": state["down.0.conv1d.weight"].shape[0],
            "kernel_sizes": kernel_sizes,
            "strides": list(strides) if strides is not None else [2] * len(levels),
            "num_blocks": num_blocks,
            "act_fn": "prelu" if "down.0.act.weight" in state else "relu",
            "num_spks": state["decoder.weight"].shape[1],
            "causal": not any(".backward_mamba_block." in k for k in state),
            "d_state": state[prefix + "0.mixer.A_log"].shape[1],
            "d_conv": state[prefix + "0.mixer.conv1d.weight"].shape[-1],
            "expand": mixer.shape[0] // 2 // mixer.shape[1],
        }
    except KeyError as exc:
        raise KeyError(f"not a SepMamba state dict: {exc} is missing (keys start with {sorted(state)[:5]})") from exc
    return config


def load_original_state_dict(model: SepMamba, checkpoint: Mapping) -> SepMamba:
    """Load an original checkpoint (or its state dict) into ``model`` strictly.

    Raises
    ------
    KeyError
        Listing missing and unexpected keys, or mismatched shapes, if the checkpoint does not fit.
    """
    state = extract_state_dict(checkpoint)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        def show(items):
            return ", ".join(items[:8]) + (f" ... ({len(items)} in all)" if len(items) > 8 else "") or "none"
        raise KeyError(
            "checkpoint does not fit this SepMamba: "
            f"missing keys: {show(missing)}; unexpected keys: {show(unexpected)}; "
            f"shape mismatches (checkpoint vs model): {show(mismatched)}"
        )
    model.load_state_dict(state, strict=True)
    return model


def load_original_checkpoint(path: str | os.PathLike | Mapping, strides: Sequence[int] | None = None,
                             map_location: str | torch.device = "cpu", trusted: bool = False,
                             **overrides) -> SepMamba:
    """Build a :class:`SepMamba` matching an original checkpoint and load it.

    Parameters
    ----------
    path : path or Mapping
        A file saved by the authors' code (or with ``torch.save(model.state_dict())``), or what
        ``torch.load`` returned from one.
    strides : sequence of int, optional
        Per-level strides if not the paper's 2, 2, 2.
    map_location : str or torch.device
        Where to load the tensors.
    trusted : bool
        Unpickle any object in the file (``torch.load(weights_only=False)``). Only for files you
        trust; needed when a training checkpoint also holds objects other than tensors and containers.
    **overrides
        SepMamba arguments to set instead of inferring (e.g. ``strict_causal=True``, which keeps
        the parameters but pads the convs).

    Returns
    -------
    SepMamba
        In eval mode.
    """
    if isinstance(path, Mapping):
        checkpoint = path
    else:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no checkpoint file at {path}")
        try:
            checkpoint = torch.load(path, map_location=map_location, weights_only=not trusted)
        except Exception as exc:
            if trusted:
                raise
            raise RuntimeError(
                f"{path} holds more than tensors and plain containers ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200]}); if you trust the file, pass trusted=True"
            ) from exc
    state = extract_state_dict(checkpoint)
    config = {**infer_config(state, strides), **overrides}
    model = SepMamba(**config)
    return load_original_state_dict(model, state).eval()
