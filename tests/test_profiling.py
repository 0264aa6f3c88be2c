"""sepmamba_sb.profiling: MAC counts against hand counts, memory and time helpers."""

import math
import os
import pathlib
import subprocess
import sys

import pytest
import torch.nn as nn

from sepmamba_sb.lobes import Decoder, Encoder, MaskingSeparator, MaskNet
from sepmamba_sb.nnet import Mamba
from sepmamba_sb.profiling import count_macs, count_parameters, scan_macs, time_call, time_forward

REPO = pathlib.Path(__file__).resolve().parents[1]


class Wrap(nn.Module):
    """[1, T] -> a module's input layout."""

    def __init__(self, module, layout):
        super().__init__()
        self.module, self.layout = module, layout

    def forward(self, mix):
        return self.module(self.layout(mix))


def test_convolutions_are_counted_by_hand():
    conv, convT = nn.Conv1d(1, 4, 16, 2), nn.ConvTranspose1d(4, 3, 16, 2)
    model = Wrap(nn.Sequential(conv, convT), lambda m: m.unsqueeze(1))
    frames = (1000 - 16) // 2 + 1
    assert count_macs(model, 1000).total == 4 * 16 * frames + 4 * 3 * 16 * frames


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_a_mamba_block_is_counted_by_hand_whatever_the_backend(backend, monkeypatch):
    """in_proj + depthwise conv + x_proj + dt_proj + out_proj + the scan formula, exactly; the
    reference backend's PyTorch ops must not be counted twice. (The PyTorch conv computes
    d_conv - 1 extra outputs that the causal slice drops: they are counted, being computed.)"""
    monkeypatch.setenv("SEPMAMBA_SCAN_BACKEND", backend)
    d_model, length = 24, 300
    mixer = Mamba(d_model)
    e, r, n = mixer.d_inner, mixer.dt_rank, mixer.d_state
    conv = e * mixer.d_conv * (length + mixer.d_conv - 1)
    by_hand = length * (d_model * 2 * e + e * (r + 2 * n) + r * e + e * d_model) + conv + scan_macs(1, length, e, n)
    macs = count_macs(Wrap(mixer, lambda m: m.unsqueeze(-1).expand(-1, -1, d_model)), length)
    assert macs.total == by_hand
    assert macs.scan == length * e * (4 * n + 3)


def test_per_second_scales_by_the_sample_rate():
    model = Wrap(nn.Conv1d(1, 2, 4, 4, bias=False), lambda m: m.unsqueeze(1))
    macs = count_macs(model, 8000)
    assert macs.total == 2 * 4 * 2000
    assert math.isclose(macs.per_second(8000), 2 * 4 * 2000 / 1e9)
    assert math.isclose(macs.per_second(16000), 2 * 2 * 4 * 2000 / 1e9)


def test_speechbrain_contract_models_are_profiled_through_the_wrapper():
    model = MaskingSeparator(Encoder(out_channels=8), MaskNet(dim=8, num_blocks=1), Decoder(8), num_spks=2)
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())
    macs = count_macs(model, 4000)
    assert macs.scan > 0 and macs.total > macs.scan
    assert time_forward(model, 4000, repeats=3) > 0


@pytest.mark.slow
def test_peak_memory_sees_a_temporary_buffer():
    """In a process of its own, as track_memory_exactly changes malloc for the whole process."""
    code = (
        "import torch\n"
        "from sepmamba_sb.profiling import peak_memory, track_memory_exactly\n"
        "track_memory_exactly()\n"
        "torch.ones(10_000_000).sum()  # what malloc keeps from this must not hide the next peak\n"
        "big = peak_memory(lambda: torch.ones(10_000_000).sum(), 'cpu')\n"
        "print(big, peak_memory(lambda: torch.ones(10).sum(), 'cpu'))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    big, small = (int(v) for v in done.stdout.split())
    size = 4 * 10_000_000  # bytes of the temporary buffer
    assert 0.95 * size <= big <= 1.5 * size
    assert small < size / 10


def test_lstm_layers_are_counted_by_hand():
    """The LSTM's fused CPU kernel is invisible to PyTorch's flop counter: the hook counts it."""
    lstm = nn.LSTM(6, 5, num_layers=2, batch_first=True, bidirectional=True)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lstm

        def forward(self, mix):
            return self.lstm(mix.view(1, -1, 6))[0]

    macs = count_macs(Model(), 60)  # 10 steps
    per_layer = [10 * 2 * 4 * 5 * (6 + 5), 10 * 2 * 4 * 5 * (10 + 5)]
    assert macs.total == sum(per_layer) and macs.scan == 0


def test_speechbrain_attention_is_counted_in_full():
    """SpeechBrain's MultiheadAttention (SepFormer's) is seen whole: projections and attention products."""
    from speechbrain.nnet.attention import MultiheadAttention

    attention = MultiheadAttention(nhead=4, d_model=16)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = attention

        def forward(self, mix):
            x = mix.view(1, -1, 16)
            return self.attention(x, x, x)[0]

    macs = count_macs(Model(), 16 * 50)  # 50 steps of 16 features
    projections = 4 * 50 * 16 * 16  # q, k, v and out
    products = 2 * 50 * 50 * 16  # q k^T and the weighted sum of v, over all heads
    assert macs.total == projections + products


def test_time_call_runs_exactly_the_warmup_and_timed_calls_on_cpu():
    """The CUDA-only minimum warm-up time adds no calls on the CPU."""
    calls = []
    median = time_call(lambda: calls.append(1), "cpu", repeats=4, warmup=3)
    assert len(calls) == 7 and median >= 0
