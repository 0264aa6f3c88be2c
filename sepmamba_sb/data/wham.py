"""Mixtures in WHAM!'s and WHAMR!'s layouts: noisy, and noisy-reverberant with direct-path sources.

WHAM! (``layout="wham"``) writes, per split, ``s1``, ``s2``, ``noise``, ``mix_clean`` (s1 + s2),
``mix_single`` (s1 + noise) and ``mix_both`` (s1 + s2 + noise). WHAMR! (``layout="whamr"``) reverberates
each source in a drawn room (:class:`sepmamba_sb.rooms.RoomSimulator`) and writes ``s1_anechoic``
(the direct path, delayed and attenuated like the reverberant image), ``s1_reverb`` (the image), the
same for each source, ``noise``, and ``mix_{clean,single,both}_{anechoic,reverb}``; the rooms are WHAMR!'s
(:class:`sepmamba_sb.rooms.RoomSimulator`'s default convention). The noise is at an SNR drawn against
the louder source, by BS.1770 loudness (:class:`sepmamba_sb.noise.NoiseSource`; the anechoic sources
for WHAMR!). All files of a mixture share one gain so that no sample exceeds 0.9, as pywsj0-mix's "min"
mode does. Sources are cut to the shortest, as in WHAM!'s "min" version; files are 16-bit.

LibriMix's levels (``levels="librimix"``, what the LibriMix layout is built with) are its generator's
instead: each source at a BS.1770 loudness drawn from U(-33, -25) LUFS and the noise from U(-38, -30)
LUFS, independently, so the louder of two sources is 1 to 11 dB above the noise in 90 % of mixtures.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from sepmamba_sb.audio import draw_mixture, limit_peaks, write_audio
from sepmamba_sb.noise import NoiseSource, loudness
from sepmamba_sb.rooms import RoomSimulator

LAYOUTS = ("wham", "whamr")
LEVELS = ("wham", "librimix")
LIBRIMIX_LOUDNESS = (-33.0, -25.0)  # LUFS range of each source in LibriMix; its noise's is 5 LU lower


def at_loudness(signal: np.ndarray, target: float, sample_rate: int) -> np.ndarray:
    """``signal`` scaled to the BS.1770 loudness ``target`` (LUFS; :func:`sepmamba_sb.noise.loudness`), or
    unchanged when it is silent."""
    level = loudness(signal, sample_rate)
    return (signal * 10 ** ((target - level) / 20)).astype(np.float32) if np.isfinite(level) else signal


def folders(layout: str, num_spks: int) -> list[str]:
    """The subfolders a split of ``layout`` holds."""
    if layout == "wham":
        return ["mix_clean", "mix_single", "mix_both", "noise"] + [f"s{i + 1}" for i in range(num_spks)]
    if layout == "whamr":
        mixes = [f"mix_{kind}_{room}" for kind in ("clean", "single", "both") for room in ("anechoic", "reverb")]
        return mixes + ["noise"] + [f"s{i + 1}_{room}" for i in range(num_spks) for room in ("anechoic", "reverb")]
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def make_noisy_mixtures(utterances: Mapping[str, list[Path]], out_dir: Path, count: int, num_spks: int,
                        sample_rate: int, rng: np.random.Generator, noise: NoiseSource,
                        rooms: RoomSimulator | None = None, level_range_db: float = 5.0,
                        levels: str = "wham") -> list[str]:
    """Write ``count`` mixtures of ``num_spks`` distinct speakers in WHAM!'s layout, or WHAMR!'s with ``rooms``.

    Speakers and levels are drawn as for clean mixtures (:func:`sepmamba_sb.audio.draw_mixture`) and the
    noise at WHAM!'s SNR, or, with ``levels="librimix"``, every source and the noise at LibriMix's loudness
    (the module docstring).

    Returns
    -------
    list of str
        The mixture IDs (file names without .wav).
    """
    layout = "wham" if rooms is None else "whamr"
    if levels not in LEVELS or (levels == "librimix" and rooms is not None):
        raise ValueError(f"levels must be one of {LEVELS} (librimix without rooms), got {levels!r}")
    if rooms is not None and (rooms.target != "direct" or rooms.sample_rate != sample_rate):
        raise ValueError(f"WHAMR! layout: the room simulator must give direct-path targets at {sample_rate} Hz, "
                         f"got {rooms.target!r} at {rooms.sample_rate} Hz")
    for folder in folders(layout, num_spks):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    ids = []
    for _ in range(count):
        mix_id, _, dry = draw_mixture(rng, utterances, num_spks, sample_rate, level_range_db)
        if levels == "librimix":
            low, high = LIBRIMIX_LOUDNESS
            dry = [at_loudness(source, rng.uniform(low, high), sample_rate) for source in dry]
        if rooms is None:
            versions = {"": np.stack(dry)}  # folder suffix -> the sources [S, T]
        else:
            images, direct, _ = rooms.apply(dry, rng)
            versions = {"_anechoic": direct, "_reverb": images}
        parts = {f"s{i + 1}{suffix}": s for suffix, sources in versions.items() for i, s in enumerate(sources)}
        if levels == "librimix":
            noise_part = at_loudness(noise.draw(rng, len(dry[0])), rng.uniform(low - 5, high - 5), sample_rate)
        else:  # WHAM!'s SNR, against the dry or anechoic sources
            noise_part, _ = noise.for_sources(next(iter(versions.values())), rng)
        for suffix, sources in versions.items():
            parts[f"mix_clean{suffix}"] = sources.sum(axis=0)
            parts[f"mix_single{suffix}"] = sources[0] + noise_part
            parts[f"mix_both{suffix}"] = sources.sum(axis=0) + noise_part
        parts["noise"] = noise_part
        names = list(parts)
        scaled = dict(zip(names, limit_peaks([parts[n] for n in names], "wsj0"), strict=True))
        for name, signal in scaled.items():
            write_audio(out_dir / name / f"{mix_id}.wav", signal, sample_rate, subtype="PCM_16")
        ids.append(mix_id)
    return ids
