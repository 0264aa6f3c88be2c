"""sepmamba_sb.data.archives: speech read out of game data files (a queen.1c table, Drascula's .ALS clips)."""

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from sepmamba_sb.data.archives import ALS_RATE, extract


def _queen(path, clips):
    """A queen.1c: QTBL, version, compression byte, entry count, 21-byte entries, then the data."""
    header = b"QTBL" + b"CEM10\0" + b"\0\0" + b"\1" + struct.pack(">H", len(clips))
    offset = len(header) + 21 * len(clips)
    table, data = b"", b""
    for name, payload in clips.items():
        table += name.encode().ljust(12, b"\0") + b"\0" + struct.pack(">II", offset + len(data), len(payload))
        data += payload
    path.write_bytes(header + table + data)


def _wav_bytes(samples, rate):
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def test_queen_entries_become_wavs(tmp_path):
    package = tmp_path / "pkg" / "usr" / "share" / "scummvm" / "fotaq"
    package.mkdir(parents=True)
    joe = np.sin(np.arange(1100) / 5).astype("float32") * 0.5
    _queen(package / "queen.1c", {"JOE00001.SB": _wav_bytes(joe, 11025), "ROOM1.BBK": b"not speech",
                                  "0200A4P1.SB": _wav_bytes(-joe, 11025)})
    out = extract("queen", tmp_path / "pkg", tmp_path / "out")
    assert sorted(p.name for p in out.glob("*.wav")) == ["0200A4P1.wav", "JOE00001.wav"]
    audio, rate = sf.read(str(out / "JOE00001.wav"), dtype="float32")
    assert rate == 11025 and np.allclose(audio, joe)
    (out / "JOE00001.wav").unlink()
    assert extract("queen", tmp_path / "pkg", out) == out and not (out / "JOE00001.wav").exists()  # done once


def test_als_clips_are_unsigned_8_bit(tmp_path):
    clip = tmp_path / "pkg" / "usr" / "share" / "scummvm" / "drascula" / "en" / "VB12.ALS"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(bytes([128, 255, 0, 192]))
    (clip.parent / "13.ALS").symlink_to(tmp_path / "missing.ALS")  # a link into another package: skipped
    out = extract("als", tmp_path / "pkg", tmp_path / "out")
    audio, rate = sf.read(str(out / "usr/share/scummvm/drascula/en/VB12.wav"), dtype="float32")
    assert rate == ALS_RATE
    assert np.allclose(audio, [0.0, 127 / 128, -1.0, 0.5], atol=1 / 32768)


def test_bad_archives_are_named(tmp_path):
    (tmp_path / "pkg").mkdir()
    with pytest.raises(ValueError, match="holds no queen.1c"):
        extract("queen", tmp_path / "pkg", tmp_path / "out")
    (tmp_path / "pkg" / "queen.1c").write_bytes(b"RIFF....")
    with pytest.raises(ValueError, match="not a Flight of the Amazon Queen"):
        extract("queen", tmp_path / "pkg", tmp_path / "out")
    with pytest.raises(ValueError, match="unknown archive kind"):
        extract("zip", tmp_path / "pkg", tmp_path / "out")
