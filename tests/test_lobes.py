"""sepmamba_sb.lobes: SepMamba (direct), its SpeechBrain encoder/masknet/decoder form, causality."""

import pytest
import soundfile as sf
import torch
from conftest import DATA
from speechbrain.inference.separation import SepformerSeparation
from speechbrain.nnet.losses import get_si_snr_with_pitwrapper
from speechbrain.utils.checkpoints import Checkpointer

from sepmamba_sb.lobes import CONFIGS, Decoder, Encoder, MaskingSeparator, MaskNet, SepMamba, separate
from sepmamba_sb.profiling import count_macs, count_parameters

TINY = {"dim": 8, "num_blocks": 1}

# the seed paper's table and the authors' model code (sepmamba-original.md)
PAPER = {"S": (7_253_826, 12.46), "M": (22_249_090, 37.0), "S-causal": (7_253_826, None),
         "M-causal": (22_249_090, None)}


@pytest.mark.parametrize("name", list(PAPER))
def test_parameter_counts_are_the_papers(name):
    params = count_parameters(SepMamba(**CONFIGS[name]))
    expected, _ = PAPER[name]
    assert abs(params - expected) / expected < 0.01
    assert params == expected  # in fact exact: the same modules as the authors' code


@pytest.mark.parametrize("name", ["S", "M"])
def test_macs_per_second_within_ten_percent_of_the_paper(name):
    macs = count_macs(SepMamba(**CONFIGS[name]).eval(), num_samples=32000)  # 4 s at 8 kHz
    _, paper = PAPER[name]
    assert abs(macs.per_second(8000) - paper) / paper < 0.10
    assert 0.03 < macs.scan / macs.total < 0.2  # the selective scan is counted, and is not the bulk


@pytest.mark.parametrize("num_spks", [2, 3])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("length", [1, 2, 15, 16, 17, 8001, 32000])
def test_output_is_batch_time_sources_for_any_length(length, batch, num_spks):
    model = SepMamba(**TINY, num_spks=num_spks).eval()
    with torch.no_grad():
        out = model(torch.randn(batch, length))
    assert out.shape == (batch, length, num_spks)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(PAPER))
def test_16k_configurations_see_the_8k_frame_rates(name):
    """Level 0's conv twice as long with twice the stride: a second at 16 kHz makes, at every level, the
    frames a second makes at 8 kHz, and only the first conv and the output conv grow (16 more taps)."""
    low, high = SepMamba(**CONFIGS[name]), SepMamba(**CONFIGS[f"{name}-16k"])
    frames = {}
    for model, rate in ((low, 8000), (high, 16000)):
        length, frames[rate] = rate, []
        for level in range(3):
            length = model.frames(length, level)
            frames[rate].append(length)
    assert frames[8000] == frames[16000] == [3993, 1989, 987]
    assert count_parameters(high) == count_parameters(low) + 16 * CONFIGS[name]["dim"] * (1 + 2)


def test_16k_s_costs_per_second_what_the_8k_s_costs():
    low = count_macs(SepMamba(**CONFIGS["S"]).eval(), num_samples=8000).per_second(8000)
    high = count_macs(SepMamba(**CONFIGS["S-16k"]).eval(), num_samples=16000).per_second(16000)
    assert abs(high - low) / low < 0.02  # the same frames per second everywhere; only the outer convs double


def test_even_lengths_are_not_padded_so_the_original_behaviour_is_kept():
    model = SepMamba(**TINY)
    assert model.valid_length(32000, first_level=0) == 32000
    assert model.valid_length(8001, first_level=0) == 8002  # the original would lose the last sample
    assert model.valid_length(1, first_level=0) == 106  # the shortest input the unpadded convs take


def _dependence(model, length, ts):
    """For each t: index of the last input sample that output sample t depends on (by gradient)."""
    x = torch.randn(1, length, requires_grad=True)
    out = model(x)
    last = {}
    for t in ts:
        (grad,) = torch.autograd.grad(out[0, t].sum(), x, retain_graph=True)
        last[t] = int(grad[0].nonzero().max())
    return x, out, last


@pytest.mark.parametrize("form", ["direct", "masking"])
def test_strict_causal_has_exactly_zero_gradient_from_the_future(form):
    torch.manual_seed(0)
    if form == "direct":
        model = SepMamba(**TINY, causal=True, strict_causal=True)
    else:
        model = MaskingSeparator(Encoder(out_channels=8, strict_causal=True),
                                 MaskNet(**TINY, causal=True, strict_causal=True), Decoder(8), 2)
    length = 700
    x = torch.randn(1, length, requires_grad=True)
    out = model(x)
    assert out.shape == (1, length, 2)
    for t in (0, 1, 57, 250, 251, 600):
        (grad,) = torch.autograd.grad(out[:, : t + 1].sum(), x, retain_graph=True)
        assert torch.count_nonzero(grad[:, t + 1:]) == 0, t
        assert torch.count_nonzero(grad[:, : t + 1]) > 0, t


def test_causal_without_strict_looks_ahead_98_to_105_samples():
    """The paper's causal model (unpadded convs): output t sees input up to 8*floor(t/8) + 105, i.e.
    98-105 samples (12.3-13.1 ms at 8 kHz) ahead, cycling with t mod 8 (three stride-2 levels)."""
    torch.manual_seed(0)
    model = SepMamba(**TINY, causal=True)
    ts = range(200, 216)
    _, _, last = _dependence(model, 800, ts)
    lookahead = {t: last[t] - t for t in ts}
    assert min(lookahead.values()) == 98 and max(lookahead.values()) == 105
    assert all(lookahead[t] == 8 * (t // 8) + 105 - t for t in ts)


def test_bidirectional_model_depends_on_the_whole_input():
    _, _, last = _dependence(SepMamba(**TINY), 600, [10])
    assert last[10] == 599


def test_causal_variants_drop_only_the_backward_stacks():
    keys = SepMamba(**CONFIGS["S-causal"]).state_dict().keys()
    assert not any("backward_mamba_block" in k for k in keys)
    assert sum("mamba_blocks.7.norm.weight" in k for k in keys) == 5  # 8 blocks in each of 5 layers


def test_strict_causal_keeps_the_parameters():
    loose = SepMamba(**TINY, causal=True)
    strict = SepMamba(**TINY, causal=True, strict_causal=True)
    assert {k: v.shape for k, v in loose.state_dict().items()} == {k: v.shape for k, v in strict.state_dict().items()}


def test_bad_configurations_and_inputs_are_named():
    with pytest.raises(ValueError, match="strict_causal=True needs causal=True"):
        SepMamba(**TINY, strict_causal=True)
    with pytest.raises(ValueError, match="act_fn"):
        SepMamba(**TINY, act_fn="tanh")
    with pytest.raises(ValueError, match="equally long"):
        SepMamba(**TINY, kernel_sizes=(16, 16), strides=(2, 2, 2))
    with pytest.raises(ValueError, match="kernel size must be >= its stride"):
        SepMamba(**TINY, kernel_sizes=(1, 16, 16))
    with pytest.raises(ValueError, match=r"\[batch, time\]"):
        SepMamba(**TINY)(torch.randn(2, 1, 100))
    with pytest.raises(ValueError, match="time >= 1"):
        SepMamba(**TINY)(torch.randn(2, 0))
    with pytest.raises(ValueError, match="time >= 1"):
        Encoder(out_channels=8)(torch.randn(2, 0))
    with pytest.raises(ValueError, match=r"MaskNet expects \[batch, 8, frames\]"):
        MaskNet(**TINY)(torch.randn(2, 9, 100))


@pytest.mark.parametrize("act_fn", ["relu", "silu", "mish", "prelu"])
def test_activations(act_fn):
    model = SepMamba(**TINY, act_fn=act_fn)
    assert model(torch.randn(1, 300)).shape == (1, 300, 2)
    assert ("down.0.act.weight" in model.state_dict()) == (act_fn == "prelu")


# ---- SpeechBrain's separation contract --------------------------------------------------------------

def masking_triple(num_spks=2, **kwargs):
    return Encoder(out_channels=8), MaskNet(**TINY, num_spks=num_spks, **kwargs), Decoder(8)


@pytest.mark.parametrize("length", [1, 15, 16, 17, 333, 8000])
def test_contract_shapes_and_nonnegative_masks(length):
    encoder, masknet, decoder = masking_triple(num_spks=3)
    mix = torch.randn(2, length)
    mix_w = encoder(mix)
    frames = max(0, length - 16) // 2 + 1
    assert mix_w.shape == (2, 8, frames)
    masks = masknet(mix_w)
    assert masks.shape == (3, 2, 8, frames)
    assert masks.min() >= 0 and masks.max() > 0
    decoded = decoder(mix_w * masks[0])
    assert decoded.shape == (2, (frames - 1) * 2 + 16)
    assert separate(encoder, masknet, decoder, mix, 3).shape == (2, length, 3)


def test_triple_runs_unchanged_in_speechbrains_own_separation_pipeline():
    """SpeechBrain's SepformerSeparation.separate_batch (the recipe's forward) with our modules."""
    encoder, masknet, decoder = masking_triple()
    modules = {"encoder": encoder, "masknet": masknet, "decoder": decoder}
    separator = SepformerSeparation(modules=modules, hparams={"num_spks": 2}, run_opts={"device": "cpu"})
    mix = torch.randn(2, 4001)
    ours = MaskingSeparator(encoder, masknet, decoder, 2).eval()
    with torch.no_grad():
        theirs = separator.separate_batch(mix)
        assert theirs.shape == (2, 4001, 2)
        assert torch.equal(theirs, ours(mix))


def test_masknet_and_direct_model_share_the_unet_names():
    direct = set(SepMamba(**TINY).state_dict())
    masknet = set(MaskNet(**TINY).state_dict())
    assert masknet - direct == {"mask_head.weight", "mask_head.bias"}
    assert direct - masknet == {"down.0.conv1d.weight", "down.0.conv1d.bias", "decoder.weight", "decoder.bias"}


# ---- learning and checkpoints -----------------------------------------------------------------------

def real_two_speaker_mixture():
    """0.5 s of a woman (English) and a man (Italian) at 8 kHz (tests/data/LICENSES.md)."""
    s1 = torch.tensor(sf.read(DATA / "speech-f-allison-en.wav", dtype="float32")[0])
    s2 = torch.tensor(sf.read(DATA / "speech-m-carlo-it.wav", dtype="float32")[0])
    sources = torch.stack([s1, s2], dim=-1).unsqueeze(0)  # [1, 4000, 2]
    return sources.sum(-1), sources


@pytest.mark.parametrize("form", ["direct", "masking"])
def test_tiny_model_overfits_one_real_mixture(form):
    """A real learning test: 120 Adam steps on one 0.5 s two-speaker mixture give > 10 dB SI-SNRi."""
    torch.manual_seed(0)
    mix, sources = real_two_speaker_mixture()
    model = SepMamba(**TINY) if form == "direct" else MaskingSeparator(*masking_triple(), num_spks=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    baseline = -get_si_snr_with_pitwrapper(sources, torch.stack([mix, mix], dim=-1)).item()
    for _ in range(120):
        optimizer.zero_grad()
        loss = get_si_snr_with_pitwrapper(sources, model(mix)).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    with torch.no_grad():
        si_snri = -get_si_snr_with_pitwrapper(sources, model(mix)).item() - baseline
    assert si_snri > 10.0


def test_checkpointer_round_trip_gives_identical_outputs(tmp_path):
    model = SepMamba(**TINY, act_fn="prelu").eval()
    with torch.no_grad():
        model.down[0].act.weight.fill_(0.1)  # something the fresh model does not have
    Checkpointer(tmp_path, recoverables={"model": model}).save_checkpoint()
    fresh = SepMamba(**TINY, act_fn="prelu").eval()
    mix = torch.randn(2, 1000)
    assert not torch.equal(fresh(mix), model(mix))
    assert Checkpointer(tmp_path, recoverables={"model": fresh}).recover_if_possible() is not None
    assert torch.equal(fresh(mix), model(mix))
