"""sepmamba_sb.losses: the silence-aware SI-SNR loss, through SpeechBrain's PitWrapper, against a float64
reference written out per case."""

import math

import pytest
import torch
from speechbrain.nnet.losses import PitWrapper, get_si_snr_with_pitwrapper

from sepmamba_sb.losses import SilenceAwareSISNR, get_silence_aware_si_snr_with_pitwrapper

SNR_MAX = 30.0
TAU = 10 ** (-SNR_MAX / 10)


def reference(targets, estimates):
    """The loss of one example [T, S] with the estimates already in the targets' order (float64)."""
    targets = targets.double() - targets.double().mean(0)
    estimates = estimates.double() - estimates.double().mean(0)
    total, outputs = float(targets.square().sum()), float(estimates.square().sum())
    values = []
    for s in range(targets.shape[-1]):
        t, y = targets[:, s], estimates[:, s]
        if float(t.square().sum()) <= 1e-8 * total:
            values.append(10 * math.log10(float(y.square().sum()) / outputs + TAU))
        else:
            projection = float((y * t).sum()) / float(t.square().sum()) * t
            kept, error = float(projection.square().sum()), float((y - projection).square().sum())
            values.append(10 * math.log10((error + TAU * kept) / kept))
    return sum(values) / len(values)


@pytest.fixture
def voices():
    torch.manual_seed(0)
    return torch.randn(3, 1000, 2, dtype=torch.float64)


def test_active_targets_give_minus_the_capped_si_snr(voices):
    estimates = 2.0 * voices + 0.3 * torch.randn_like(voices)
    loss = get_silence_aware_si_snr_with_pitwrapper(voices, estimates, SNR_MAX)
    for b in range(3):
        assert float(loss[b]) == pytest.approx(reference(voices[b], estimates[b]), abs=1e-9)
    # far below the cap it is SpeechBrain's SI-SNR loss
    noisy = voices + 2.0 * torch.randn_like(voices)
    assert torch.allclose(get_silence_aware_si_snr_with_pitwrapper(voices, noisy), get_si_snr_with_pitwrapper(
        voices, noisy), atol=0.01)
    perfect = get_silence_aware_si_snr_with_pitwrapper(voices, 0.5 * voices, SNR_MAX)
    assert torch.allclose(perfect, torch.full((3,), -SNR_MAX, dtype=torch.float64), atol=1e-6)


def test_silent_targets_ask_for_an_empty_output_beside_the_voice(voices):
    voices[..., 1] = 0.0  # one voice alone in every example
    right = torch.stack([voices[..., 0], torch.zeros_like(voices[..., 0])], -1)
    assert torch.allclose(get_silence_aware_si_snr_with_pitwrapper(voices, 0.1 * right.flip(-1), SNR_MAX),
                          torch.full((3,), -SNR_MAX, dtype=torch.float64), atol=1e-6)
    both = voices[..., :1].expand(-1, -1, 2)  # the voice in both outputs: the silent term is -3 dB
    loss = get_silence_aware_si_snr_with_pitwrapper(voices, both, SNR_MAX)
    for b in range(3):
        assert float(loss[b]) == pytest.approx(reference(voices[b], both[b]), abs=1e-9)
    assert float(loss[0]) == pytest.approx((-SNR_MAX + 10 * math.log10(0.5 + TAU)) / 2, abs=1e-6)
    quiet = torch.stack([voices[..., 0], 0.1 * torch.randn_like(voices[..., 0])], -1)  # 20 dB below
    for b in range(3):
        assert float(get_silence_aware_si_snr_with_pitwrapper(voices, quiet)[b]) == pytest.approx(
            reference(voices[b], quiet[b]), abs=1e-9)
    # scale-invariant: shrinking every output does not meet the silent term
    assert torch.allclose(get_silence_aware_si_snr_with_pitwrapper(voices, 1e-3 * both), loss)


def test_permutation_invariant_and_equal_to_the_pairwise_wrapper(voices):
    estimates = voices + 0.5 * torch.randn_like(voices)
    direct = get_silence_aware_si_snr_with_pitwrapper(voices, estimates)
    assert torch.allclose(direct, get_silence_aware_si_snr_with_pitwrapper(voices, estimates.flip(-1)))
    wrapped, _ = PitWrapper(SilenceAwareSISNR(SNR_MAX))(voices, estimates)
    assert torch.allclose(direct, wrapped)


def test_gradients_stay_finite_for_silent_targets_and_silent_outputs():
    targets = torch.zeros(2, 400, 2)
    targets[0, :, 0] = torch.randn(400)
    estimates = torch.zeros(2, 400, 2)
    estimates[0, :, 0] = torch.randn(400)
    estimates.requires_grad_()
    loss = get_silence_aware_si_snr_with_pitwrapper(targets, estimates).mean()  # example 1: all silent
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(estimates.grad).all()
