"""sepmamba_sb.losses: the soft-thresholded SNR loss, through SpeechBrain's PitWrapper, against a float64
reference written out per case."""

import math

import pytest
import torch
from speechbrain.nnet.losses import PitWrapper

from sepmamba_sb.losses import ThresholdedSNR, get_thresholded_snr_with_pitwrapper

SNR_MAX = 30.0
TAU = 10 ** (-SNR_MAX / 10)


def reference(targets, estimates):
    """The loss of one example [T, S] with the estimates already in the targets' order (float64)."""
    targets, estimates = targets.double(), estimates.double()
    total = float(targets.square().sum())
    values = []
    for s in range(targets.shape[-1]):
        energy = float(targets[:, s].square().sum())
        if energy <= 1e-8 * total:
            values.append(10 * math.log10((float(estimates[:, s].square().sum()) + TAU * total) / total))
        else:
            error = float((targets[:, s] - estimates[:, s]).square().sum())
            values.append(10 * math.log10((error + TAU * energy) / energy))
    return sum(values) / len(values)


@pytest.fixture
def voices():
    torch.manual_seed(0)
    return torch.randn(3, 1000, 2, dtype=torch.float64)


def test_active_targets_give_minus_the_capped_snr(voices):
    estimates = voices + 0.3 * torch.randn_like(voices)
    loss = get_thresholded_snr_with_pitwrapper(voices, estimates, SNR_MAX)
    for b in range(3):
        assert float(loss[b]) == pytest.approx(reference(voices[b], estimates[b]), abs=1e-9)
    perfect = get_thresholded_snr_with_pitwrapper(voices, voices, SNR_MAX)
    assert torch.allclose(perfect, torch.full((3,), -SNR_MAX, dtype=torch.float64))


def test_silent_targets_ask_for_a_silent_output(voices):
    voices[..., 1] = 0.0  # one voice alone in every example
    right = torch.stack([voices[..., 0], torch.zeros_like(voices[..., 0])], -1)
    assert torch.allclose(get_thresholded_snr_with_pitwrapper(voices, right.flip(-1), SNR_MAX),
                          torch.full((3,), -SNR_MAX, dtype=torch.float64))
    both = voices[..., :1].expand(-1, -1, 2)  # the voice in both outputs: the silent term is about 0 dB
    loss = get_thresholded_snr_with_pitwrapper(voices, both, SNR_MAX)
    for b in range(3):
        assert float(loss[b]) == pytest.approx(reference(voices[b], both[b]), abs=1e-9)
        assert float(loss[b]) == pytest.approx(-SNR_MAX / 2, abs=0.01)
    quiet = torch.stack([voices[..., 0], 0.1 * voices[..., 0]], -1)  # 20 dB below the voice
    assert float(get_thresholded_snr_with_pitwrapper(voices, quiet, SNR_MAX)[0]) == pytest.approx(
        (-SNR_MAX + 10 * math.log10(0.01 + TAU)) / 2, abs=1e-6)


def test_permutation_invariant_and_equal_to_the_pairwise_wrapper(voices):
    estimates = voices + 0.5 * torch.randn_like(voices)
    direct = get_thresholded_snr_with_pitwrapper(voices, estimates)
    assert torch.allclose(direct, get_thresholded_snr_with_pitwrapper(voices, estimates.flip(-1)))
    wrapped, _ = PitWrapper(ThresholdedSNR(SNR_MAX))(voices, estimates)
    assert torch.allclose(direct, wrapped)


def test_gradients_stay_finite_for_silent_targets_and_silent_outputs():
    targets = torch.zeros(2, 400, 2)
    targets[0, :, 0] = torch.randn(400)
    targets[1] = 0.0  # a silent example: every target silent
    estimates = torch.zeros(2, 400, 2, requires_grad=True)
    loss = get_thresholded_snr_with_pitwrapper(targets, estimates).mean()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(estimates.grad).all()
