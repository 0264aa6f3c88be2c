"""StreamResampler: a stream resampled chunk by chunk equals torchaudio's resampling of the whole signal."""

import random

import pytest
import torch
import torchaudio

from sepmamba_sb.resampling import StreamResampler


@pytest.mark.parametrize("rates", [(44100, 8000), (8000, 44100), (16000, 8000), (8000, 16000), (48000, 16000)])
@pytest.mark.parametrize("length", [1, 37, 4410, 12345])
def test_stream_equals_whole_signal(rates, length):
    signal = torch.randn(2, length, generator=torch.Generator().manual_seed(length))
    expected = torchaudio.functional.resample(signal, *rates)
    resampler = StreamResampler(*rates, channels=2)
    sizes, parts, start = random.Random(0).choices([1, 7, 100, 513, 2000], k=200), [], 0
    while start < length:
        parts.append(resampler(signal[:, start:start + sizes[len(parts)]]))
        start += sizes[len(parts) - 1]
    parts.append(resampler.flush())
    assert torch.equal(torch.cat(parts, dim=1), expected)


def test_outputs_wait_only_for_the_inputs_they_need():
    resampler = StreamResampler(44100, 8000)
    assert resampler(torch.zeros(1, resampler.width + resampler.orig - 1)).shape == (1, 0)  # no frame yet
    assert resampler(torch.zeros(1, resampler.width + 1)).shape == (1, 80)  # the first frame: 441 -> 80
    assert resampler.lookahead_seconds == pytest.approx((resampler.width + 441) / 44100)


def test_bad_chunks_and_rates_are_named():
    with pytest.raises(ValueError, match=r"chunks must be \[channels=2, n\]"):
        StreamResampler(16000, 8000, channels=2)(torch.zeros(1, 10))
    with pytest.raises(ValueError, match="rates must be positive integers"):
        StreamResampler(0, 8000)
