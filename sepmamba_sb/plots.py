"""Pictures of runs and signals (PNG files, drawn with matplotlib without a display): a run's training
curve, several runs' validation curves against training time, and spectrograms of signals side by side.

Runs' curves come from :func:`sepmamba_sb.runs.training_log` (``epoch``, ``minutes``, ``train`` and
``valid`` SI-SNR per epoch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def _figure(path: str | Path, rows: int = 1, size: tuple[float, float] = (6, 3.5), dpi: int = 110, **kwargs):
    """A figure of ``rows`` axes, saved to ``path`` and closed on leaving the block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, 1, figsize=size, **kwargs)
    try:
        yield axes
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)


def training_curve(log: Sequence[Mapping], path: str | Path, title: str) -> None:
    """Training and validation SI-SNR against the epoch, for one run.

    Parameters
    ----------
    log : sequence of Mapping
        A run's epochs (:func:`sepmamba_sb.runs.training_log`).
    path : str or Path
        The PNG to write.
    title : str
        The figure's title.
    """
    with _figure(path) as ax:
        epochs = [r["epoch"] for r in log]
        ax.plot(epochs, [r["train"] for r in log], "o-", label="train (dynamic mixtures)")
        ax.plot(epochs, [r["valid"] for r in log], "s-", label="valid (cv speakers)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("SI-SNR (dB)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()


def validation_curves(logs: Mapping[str, Sequence[Mapping]], path: str | Path, title: str) -> None:
    """Validation SI-SNR against training time (minutes, validation included), one line per run.

    Parameters
    ----------
    logs : Mapping
        Run name -> its epochs (:func:`sepmamba_sb.runs.training_log`).
    path : str or Path
        The PNG to write.
    title : str
        The figure's title (wrapped when long).
    """
    with _figure(path, size=(6.5, 4)) as ax:
        for name, log in logs.items():
            ax.plot([r["minutes"] for r in log], [r["valid"] for r in log], "o-", markersize=3, label=name)
        ax.set_xlabel("training time (min, including validation)")
        ax.set_ylabel("validation SI-SNR (dB)")
        ax.set_title(title, fontsize=8, wrap=True)
        ax.grid(alpha=0.3)
        ax.legend()


def spectrograms(signals: Mapping[str, np.ndarray], sample_rate: int, path: str | Path) -> None:
    """Spectrograms of signals stacked on one time axis, titled by their names.

    Parameters
    ----------
    signals : Mapping
        Title -> mono signal [T] (two or more).
    sample_rate : int
        Of every signal.
    path : str or Path
        The PNG to write.
    """
    with _figure(path, rows=len(signals), size=(8, 1.6 * len(signals)), dpi=80, sharex=True) as axes:
        for ax, (title, audio) in zip(axes, signals.items(), strict=True):
            ax.specgram(audio, NFFT=256, Fs=sample_rate, noverlap=192, cmap="magma", vmin=-120)
            ax.set_ylabel("Hz")
            ax.set_title(title, fontsize=9, loc="left")
        axes[-1].set_xlabel("time (s)")
