"""A training loss defined when a target is silent (one voice alone, or a turn that has not started).

SI-SNR, the benchmark's loss, is undefined for a silent target (0 / 0) and says nothing about what an
output should hold when there is nobody to put in it. The loss here is, per (target, estimate) pair,
in dB, with tau = 10^(-snr_max / 10):

- an active target s, estimate y: minus the SI-SNR softly capped at ``snr_max``:
  10 log10((|e|^2 + tau |s_t|^2) / |s_t|^2), with s_t the projection of y on s and e = y - s_t (both
  zero-mean), as MixIT's soft threshold (Wisdom et al., 2020) caps the SNR;
- a silent target, estimate y: 10 log10(|y|^2 / Y + tau), with Y the energy of the example's estimates
  together: how far that output lies below the others, floored at ``-snr_max``.

Both terms are scale-invariant, so a model cannot meet the silent one by shrinking every output: it
must leave the output of a silent target empty beside the voice's (what ``benchmarks/robustness.py``
measures after the output levels are fitted). On mixtures of active targets it is SI-SNR, the
benchmark's loss, capped at ``snr_max``. MixIT's own SNR form (the silent term against the mixture's
energy, the active term scale-dependent) was measured in the MiniMix demo recipe and let the model
settle on "the mixture in one output, silence in the other" (validation SI-SNR -15 dB after 5 epochs):
on two active targets that costs it about 0 dB, where the SI-SNR term charges the empty output
``snr_max`` dB.

A target counts as silent when its energy is below 10^-8 of the example's targets' (the dynamic
mixing writes exact zeros).
"""

from __future__ import annotations

import torch
from speechbrain.nnet.losses import PitWrapper

SILENT = 1e-8  # a target below this share of the example's target energy is silent


class SilenceAwareSISNR:
    """The pairwise loss for SpeechBrain's ``PitWrapper`` (no reduction; see the module docstring).

    Parameters
    ----------
    snr_max : float
        The cap in dB (30 dB, as MixIT's SNR_max).

    Example
    -------
    >>> s = torch.randn(1, 800, 2)
    >>> s[..., 1] = 0.0  # one voice alone
    >>> loss, _ = PitWrapper(SilenceAwareSISNR(30.0))(s, s.flip(-1))  # right, in the other order
    >>> round(float(loss), 2)
    -30.0
    >>> loss, _ = PitWrapper(SilenceAwareSISNR(30.0))(s, s[..., :1].expand(-1, -1, 2))  # the voice in both
    >>> round(float(loss), 2)
    -16.5
    """

    def __init__(self, snr_max: float = 30.0):
        self.tau = 10 ** (-float(snr_max) / 10)

    def __call__(self, targets: torch.Tensor, estimates: torch.Tensor) -> torch.Tensor:
        """Loss of every pair.

        Parameters
        ----------
        targets, estimates : torch.Tensor
            [T, S, S] as ``PitWrapper`` expands one example: time first, every (target, estimate) pair
            on the last two axes, each signal repeated along one of them.

        Returns
        -------
        torch.Tensor
            [1, S, S], in dB.
        """
        eps = torch.finfo(targets.dtype).eps
        targets = targets - targets.mean(0, keepdim=True)
        estimates = estimates - estimates.mean(0, keepdim=True)
        energy = targets.square().sum(0, keepdim=True)  # [1, S, S]
        output = estimates.square().sum(0, keepdim=True)
        # the example's totals: the pairs hold every signal S times, whichever axis repeats it
        total = energy.sum(dim=(-2, -1), keepdim=True) / targets.shape[-1]
        outputs = (output.sum(dim=(-2, -1), keepdim=True) / targets.shape[-1]).clamp_min(eps)
        silent = energy <= SILENT * total.clamp_min(eps)
        reference = torch.where(silent, total.clamp_min(eps), energy)  # keeps the unused branch finite
        projection = (estimates * targets).sum(0, keepdim=True) / reference * targets
        error = (estimates - projection).square().sum(0, keepdim=True)
        kept = projection.square().sum(0, keepdim=True)
        active_loss = 10 * torch.log10((error + self.tau * kept + eps) / (kept + eps))
        silent_loss = 10 * torch.log10(output / outputs + self.tau)
        return torch.where(silent, silent_loss, active_loss)


def get_silence_aware_si_snr_with_pitwrapper(source: torch.Tensor, estimate_source: torch.Tensor,
                                             snr_max: float = 30.0) -> torch.Tensor:
    """The permutation-invariant loss of :class:`SilenceAwareSISNR`, called as SpeechBrain's
    ``get_si_snr_with_pitwrapper`` is (a recipe's ``loss:``).

    Parameters
    ----------
    source, estimate_source : torch.Tensor
        Targets and estimates [B, T, S]; silent targets are all zeros.
    snr_max : float
        The cap in dB.

    Returns
    -------
    torch.Tensor
        [B] losses in dB (mean over the best pairing's sources).
    """
    loss, _ = PitWrapper(SilenceAwareSISNR(snr_max))(source, estimate_source)
    return loss
