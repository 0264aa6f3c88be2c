"""sepmamba_sb.audio's writer: the one way files are written (atomic, checked, never clipped silently)."""

import numpy as np
import pytest
import soundfile as sf
import torch

from sepmamba_sb.audio import read_audio, write_audio


def test_written_samples_read_back_and_no_temporary_file_is_left(tmp_path):
    samples = np.sin(np.arange(1600) * 0.05) * 0.5
    path = write_audio(tmp_path / "new" / "folder" / "tone.wav", samples, 8000, subtype="FLOAT")
    assert path == tmp_path / "new" / "folder" / "tone.wav"
    audio, rate = read_audio(path)
    assert rate == 8000 and np.abs(audio.numpy() - samples).max() < 1e-7
    assert [p.name for p in path.parent.iterdir()] == ["tone.wav"]
    stereo = torch.stack([torch.zeros(100), torch.full((100,), 0.25)], dim=-1)
    write_audio(tmp_path / "stereo.wav", stereo, 8000)
    assert sf.info(str(tmp_path / "stereo.wav")).channels == 2 and sf.info(str(tmp_path / "stereo.wav")).subtype == \
        "PCM_16"


def test_beyond_full_scale_is_kept_as_float_or_refused(tmp_path):
    loud = np.array([0.5, -2.0, 1.5])
    write_audio(tmp_path / "loud.wav", loud, 8000)
    assert sf.info(str(tmp_path / "loud.wav")).subtype == "FLOAT"
    assert np.allclose(read_audio(tmp_path / "loud.wav")[0].numpy(), loud)
    with pytest.raises(ValueError, match="clip.wav: samples beyond full scale .peak 2. would be clipped in PCM_16"):
        write_audio(tmp_path / "clip.wav", loud, 8000, subtype="PCM_16")
    assert not (tmp_path / "clip.wav").exists()


@pytest.mark.parametrize("samples, match", [(np.array([0.1, np.nan]), "NaN or infinite"),
                                            (np.zeros((2, 3, 4)), r"\[T\] or \[T, channels\]")])
def test_bad_samples_are_named(tmp_path, samples, match):
    with pytest.raises(ValueError, match=f"writing {tmp_path / 'bad.wav'}: .*{match}"):
        write_audio(tmp_path / "bad.wav", samples, 8000)
    assert list(tmp_path.iterdir()) == []
