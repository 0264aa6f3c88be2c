"""sepmamba_sb.robustness: the conversations, the turn measure, and a whole table for a trained run."""

import numpy as np
import pytest
import soundfile as sf

from sepmamba_sb import robustness


@pytest.fixture
def voices(tmp_path):
    rng = np.random.default_rng(1)
    for speaker in ("a", "b", "c"):
        for u in range(3):
            path = tmp_path / speaker / f"{u}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), (rng.standard_normal(8000 + 2000 * u) * 0.1).astype("float32"), 8000)
    from sepmamba_sb.audio import list_speakers

    return list_speakers(tmp_path)


def test_conversations_take_turns_and_sum(voices):
    mixture, tracks, turns = robustness.conversation(voices, np.random.default_rng(1), 8000, 20.0)
    assert mixture.shape == (160000,) and tracks.shape == (2, 160000)
    assert np.allclose(mixture, tracks.sum(0), atol=1e-6)
    assert [v for v, _, _ in turns][:4] in ([0, 1, 0, 1], [1, 0, 1, 0])  # voices alternate
    assert any(after[1] < before[2] for before, after in zip(turns[:-1], turns[1:], strict=True))  # some overlap
    assert turns[-1][1] < 160000 and all(stop <= 160000 for _, _, stop in turns)


def test_turn_consistency(voices):
    _, tracks, turns = robustness.conversation(voices, np.random.default_rng(1), 8000, 20.0)
    assert robustness.turn_consistency(tracks.T, tracks, turns) == (1.0, True)
    assert robustness.turn_consistency(tracks[::-1].T, tracks, turns) == (1.0, True)  # either order
    swapped = tracks.T.copy()
    half = swapped.shape[0] // 2
    swapped[half:] = swapped[half:, ::-1]  # the outputs trade places halfway: a chunk permutation error
    share, stayed = robustness.turn_consistency(swapped, tracks, turns)
    assert 0.3 < share < 0.8 and not stayed
    same = np.stack([tracks.sum(0), 0.01 * tracks.sum(0)], -1)  # both voices in one output
    share, stayed = robustness.turn_consistency(same, tracks, turns)
    assert share < 0.75 and not stayed  # the outputs are equal up to scale: turns fall on either at random


def test_table_for_a_trained_run(trained_run, tiny_corpus, tmp_path):
    from sepmamba_sb.hub import export
    from sepmamba_sb.inference import SepMambaSeparation

    folder = export(trained_run, tmp_path / "model")
    model = SepMambaSeparation.from_hparams(source=str(folder), savedir=str(folder))
    settings = robustness.Settings(mixtures=3, seconds=1.0, recordings=1, recording_seconds=8.0)
    results = robustness.evaluate(model, tiny_corpus, settings, progress=False)
    assert len(results) == 9
    for value, half, count in results.values():
        assert np.isfinite(value) and (half is None or half >= 0) and count in (1, 3)
    table = robustness.format_table({"a": results, "b": results})
    assert table.count("\n") == 10 and "| a | b |" in table.splitlines()[0]
