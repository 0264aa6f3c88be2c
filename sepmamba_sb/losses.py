"""Training losses defined when a target is silent (one voice alone, or a turn that has not started).

SI-SNR, the benchmark's loss, is undefined for a silent target (0 / 0) and says nothing about what an
output should hold when there is nobody to put in it. The loss here is the soft-thresholded SNR of
MixIT (Wisdom et al., 2020, "Unsupervised sound separation using mixture invariant training", eq. 5),
in dB, per (target, estimate) pair, with tau = 10^(-snr_max / 10):

- an active target s, estimate y:  10 log10((|s - y|^2 + tau |s|^2) / |s|^2), i.e. minus the SNR,
  softly capped at ``snr_max`` (a pair already ``snr_max`` dB good stops pulling the gradient);
- a silent target, estimate y:  10 log10((|y|^2 + tau E) / E), the estimate's energy against E, the
  energy of the example's targets together (the mixture's speech), floored at ``-snr_max``.

Why this one: it is one expression for both cases on one dB scale, so PIT can pair outputs with
targets whether a target is silent or not; it is not scale-invariant, and must not be: a
scale-invariant term on the active targets would let a model shrink every output until the silent
term is met, leaving the voice in both outputs (what the SI-SNR-trained demo model does). The
masking model's outputs carry the mixture's scale, so fitting levels costs it nothing. On
two-speaker mixtures of active targets it is the SNR loss capped at ``snr_max``; the recipe still
reports SI-SNR in its test metrics (:mod:`sepmamba_sb.metrics`).

A target counts as silent when its energy is below 10^-8 of E (the dynamic mixing writes exact zeros).
"""

from __future__ import annotations

import torch
from speechbrain.nnet.losses import PitWrapper

SILENT = 1e-8  # a target below this share of the example's target energy is silent


class ThresholdedSNR:
    """The pairwise soft-thresholded SNR loss for SpeechBrain's ``PitWrapper`` (no reduction).

    Parameters
    ----------
    snr_max : float
        The cap in dB (MixIT's SNR_max; 30 dB).

    Example
    -------
    >>> s = torch.randn(1, 800, 2)
    >>> s[..., 1] = 0.0  # one voice alone
    >>> loss, _ = PitWrapper(ThresholdedSNR(30.0))(s, s.flip(-1))  # right, in the other order
    >>> round(float(loss), 2)
    -30.0
    >>> loss, _ = PitWrapper(ThresholdedSNR(30.0))(s, s[..., :1].expand(-1, -1, 2))  # the voice in both
    >>> round(float(loss), 2)
    -15.0
    """

    def __init__(self, snr_max: float = 30.0):
        self.tau = 10 ** (-float(snr_max) / 10)

    def __call__(self, targets: torch.Tensor, estimates: torch.Tensor) -> torch.Tensor:
        """Loss of every pair.

        Parameters
        ----------
        targets, estimates : torch.Tensor
            [T, S, S] as ``PitWrapper`` expands one example: time first, every (target, estimate) pair
            on the last two axes, each target repeated along one of them.

        Returns
        -------
        torch.Tensor
            [1, S, S], in dB.
        """
        energy = targets.square().sum(0, keepdim=True)  # [1, S, S]
        # the example's target energy: the pairs hold every target S times, whichever axis repeats it
        total = energy.sum(dim=(-2, -1), keepdim=True) / targets.shape[-1]
        total = total.clamp_min(torch.finfo(targets.dtype).eps)  # an all-silent example: finite, -snr_max at 0
        error = (targets - estimates).square().sum(0, keepdim=True)
        silent = energy <= SILENT * total
        reference = torch.where(silent, total, energy)  # keeps the unused branch finite (no NaN gradients)
        active_loss = 10 * torch.log10((error + self.tau * reference) / reference)
        silent_loss = 10 * torch.log10((estimates.square().sum(0, keepdim=True) + self.tau * total) / total)
        return torch.where(silent, silent_loss, active_loss)


def get_thresholded_snr_with_pitwrapper(source: torch.Tensor, estimate_source: torch.Tensor,
                                        snr_max: float = 30.0) -> torch.Tensor:
    """The permutation-invariant soft-thresholded SNR loss, called as SpeechBrain's
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
    loss, _ = PitWrapper(ThresholdedSNR(snr_max))(source, estimate_source)
    return loss
