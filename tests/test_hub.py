"""sepmamba_sb.hub: export, check and push of hub folders, on the demo recipe's model (trained briefly)."""

import importlib
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO

from sepmamba_sb.hub import CheckResult, HubCheckError, absolute_paths, check, export, install_line, main, push
from sepmamba_sb.inference import SepMambaSeparation
from sepmamba_sb.lobes import MaskNet, SepMamba
from sepmamba_sb.runs import mean_test_scores

FILES = {"hyperparams.yaml", "encoder.ckpt", "masknet.ckpt", "decoder.ckpt", "custom_interface.py", "README.md",
         "test_mixture.wav"}


@pytest.fixture(scope="module")
def folder(trained_run, tmp_path_factory):
    """The demo's exported folder: recipes/MiniMix/hparams/sepmamba-minimix.yaml, trained briefly."""
    return export(trained_run, tmp_path_factory.mktemp("hub") / "model")


@pytest.fixture
def copy(folder, tmp_path):
    """A copy of the good folder to break."""
    return shutil.copytree(folder, tmp_path / "model")


def direct_run(tmp_path, **config):
    """A Brain-like object holding a tiny direct-form SepMamba, and its test mixture."""
    sf.write(str(tmp_path / "mix.wav"), np.random.default_rng(0).standard_normal(2000).astype("float32") * 0.1, 8000)
    return SimpleNamespace(modules={"sepmamba": SepMamba(dim=8, num_blocks=1, **config)},
                           hparams=SimpleNamespace(sample_rate=8000, num_spks=2, test_data=None))


# ---- export: the model card ---------------------------------------------------------------------------

def test_export_writes_the_hub_layout_and_a_card_without_local_paths(folder, trained_run, tiny_corpus):
    assert {p.name for p in folder.iterdir()} == FILES
    interface = REPO / "sepmamba_sb" / "hub" / "custom_interface.py"  # a linted file of the package, copied
    assert (folder / "custom_interface.py").read_bytes() == interface.read_bytes()
    card = (folder / "README.md").read_text()
    assert absolute_paths(card) == [] and str(tiny_corpus) not in card and str(trained_run) not in card
    assert card.startswith("---\nlibrary_name: speechbrain\n") and "\nlicense: apache-2.0\n" in card
    assert "datasets:\n- MiniMix\n" in card and "(MiniMix, 2 speakers, 8 kHz)" in card
    assert "Recipe: `recipes/MiniMix/hparams/sepmamba-minimix.yaml`" in card
    assert install_line() in card and 'pip install "sepmamba_sb>=' in install_line()
    assert "Conditions: clean, anechoic mixtures" in card and "Offline" in card
    assert f"{mean_test_scores(trained_run)['si-snr_i']:.2f}" in card  # the recipe's measured SI-SNRi
    assert "- Budget: 3 epochs of 32 dynamic mixtures cropped to 1 s (2 minutes of audio)" in card  # the fixture's
    assert "| `dm_num_mixtures` | `32` |" in card and "| `optimizer` | `AdamW` |" in card
    assert 'classname="SepMambaSeparation"' in card and "SepformerSeparation" in card  # the masking form


def test_card_of_own_data_and_a_causal_model_states_its_latency(tmp_path):
    run = direct_run(tmp_path, causal=True)
    out = export(run, tmp_path / "hub", test_mixture=tmp_path / "mix.wav")
    card = (out / "README.md").read_text()
    delay = run.modules["sepmamba"].make_streaming_context(1).delay
    assert delay > 0 and f"a look-ahead of {delay} samples ({1000 * delay / 8000:.1f} ms)" in card
    assert "Causal model" in card and "Data: own data (not a public corpus)." in card and "datasets:" not in card
    assert "No test results were found" in card and "SepformerSeparation" not in card  # the direct form
    licensed = export(run, tmp_path / "other", test_mixture=tmp_path / "mix.wav", corpus="WSJ0-2mix", licence="other")
    card = (licensed / "README.md").read_text()
    assert "\nlicense: other\n" in card and "datasets:\n- WSJ0-2mix\n" in card


def test_export_command(trained_run, tmp_path, capsys):
    assert main(["export", str(trained_run), str(tmp_path / "hub"), "--corpus", "my recordings", "--recipe",
                 "my.yaml"]) == 0
    assert f"next: python -m sepmamba_sb.hub check {tmp_path / 'hub'}" in capsys.readouterr().out
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "(my recordings, 2 speakers" in card and "Recipe: `my.yaml`" in card
    assert main(["export", str(tmp_path), str(tmp_path / "other")]) == 2
    assert f"{tmp_path} is not a training run folder" in capsys.readouterr().err


def test_absolute_paths_finds_local_paths_and_spares_urls():
    text = ("Trained on /home/alice/wsj0 and ~/data/x, or C:\\corpora\\wsj0; see https://arxiv.org/abs/2410.20997 "
            "and huggingface.co/user/model, recipes/MiniMix/hparams/a.yaml, and/or 1/2 of SI-SNR/s.\n`/tmp/x.wav`")
    assert absolute_paths(text) == ["line 1: /home/alice/wsj0", "line 1: ~/data/x", "line 1: C:\\corpora\\wsj0",
                                    "line 2: /tmp/x.wav"]


# ---- loading: foreign_class and the check in fresh processes -----------------------------------------

def test_foreign_class_loads_the_folder(folder, tmp_path):
    from speechbrain.inference.interfaces import foreign_class

    model = foreign_class(source=str(folder), pymodule_file="custom_interface.py", classname="SepMambaSeparation",
                          savedir=str(tmp_path / "fc"))
    ours = SepMambaSeparation.from_hparams(source=str(folder), savedir=str(tmp_path / "ours"))
    assert type(model).__name__ == "SepMambaSeparation"
    mix = torch.randn(1, 4000)
    assert torch.allclose(model.separate_batch(mix), ours.separate_batch(mix), atol=1e-6)
    assert model.separate_file(folder / "test_mixture.wav", progress=False).shape == (
        1, sf.info(str(folder / "test_mixture.wav")).frames, 2)


@pytest.mark.slow
def test_the_demo_folder_passes_the_check(folder):
    """`python -m sepmamba_sb.hub check` on the demo recipe's exported folder: exit 0, all three ways load."""
    done = subprocess.run([sys.executable, "-m", "sepmamba_sb.hub", "check", str(folder)], capture_output=True,
                          text=True, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"hub check {folder}: ready to share" in done.stdout
    for way in ("foreign_class", "SepMambaSeparation", "SepformerSeparation"):
        assert f"ok: {way} loads it in a fresh process and separates test_mixture.wav into 2 sources" in done.stdout
    assert {p.name for p in folder.iterdir()} == FILES  # the check leaves nothing behind


def break_checkpoint(model):
    torch.save(MaskNet(dim=16, num_blocks=1).state_dict(), model / "masknet.ckpt")


def break_card(model):
    with open(model / "README.md", "a") as f:
        f.write("\nTrained on /home/alice/wsj0-mix/2speakers.\n")


def break_yaml(model):
    path = model / "hyperparams.yaml"
    path.write_text(path.read_text().replace("modules:\n", "modules: [\n"))


def write_stray_file(model):
    (model / "save").mkdir()
    (model / "save" / "optimizer.ckpt").write_bytes(b"\0" * 2_000_000)


def resample_test_mixture(model):
    sf.write(str(model / "test_mixture.wav"), np.zeros(1600, dtype="float32"), 16000)


@pytest.mark.parametrize("damage, named", [
    (lambda m: (m / "masknet.ckpt").unlink(), "masknet.ckpt is missing: the pretrainer in hyperparams.yaml loads "
                                              "`masknet` from it"),
    (break_checkpoint, "masknet.ckpt does not load into `masknet`: RuntimeError: Error(s) in loading state_dict"),
    (break_card, "README.md (the model card) names local paths: line"),
    (break_yaml, "hyperparams.yaml does not load: "),
    (lambda m: (m / "custom_interface.py").unlink(), "custom_interface.py is missing"),
    (write_stray_file, "save/optimizer.ckpt (2.0 MB) is not needed by the model"),
    (resample_test_mixture, "test_mixture.wav is at 16000 Hz, the model at 8000 Hz"),
], ids=["missing-checkpoint", "wrong-checkpoint", "absolute-path-in-card", "broken-yaml", "no-interface",
        "stray-large-file", "test-mixture-rate"])
def test_check_fails_naming_the_problem(copy, damage, named, capsys):
    damage(copy)
    result = check(copy)
    assert not result.ok and len(result.problems) == 1 and named in result.problems[0], result.problems
    assert main(["check", str(copy)]) == 1
    assert named in capsys.readouterr().err
    if damage is break_card:
        assert "/home/alice/wsj0-mix/2speakers" in result.problems[0]


@pytest.mark.slow
def test_check_reports_a_folder_that_fails_to_load_in_a_fresh_process(tmp_path):
    out = export(direct_run(tmp_path), tmp_path / "hub", test_mixture=tmp_path / "mix.wav")
    interface = out / "custom_interface.py"
    interface.write_text(interface.read_text().replace("__all__", "raise RuntimeError('broken interface')\n__all__"))
    result = check(out, progress=False)
    assert result.problems == ["loading with foreign_class in a fresh process failed: RuntimeError: broken interface"]
    assert "ok: SepMambaSeparation loads it in a fresh process and separates test_mixture.wav into 2 sources" in \
        result.report()


def test_check_of_a_path_that_is_not_a_folder(tmp_path):
    assert check(tmp_path / "nowhere").problems == [f"{tmp_path / 'nowhere'} is not a folder"]


# ---- push: up to the upload call ----------------------------------------------------------------------

class StandIn:
    """Records what push asks of huggingface_hub.HfApi (no network)."""

    calls = []

    def __init__(self, token=None, fail=False):
        self.token, self.fail = token, fail

    def create_repo(self, **kwargs):
        StandIn.calls.append(("create_repo", kwargs))

    def upload_folder(self, **kwargs):
        StandIn.calls.append(("upload_folder", kwargs))
        if self.fail:
            raise OSError("401 Client Error: Unauthorized")
        return SimpleNamespace(commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/0123")


def test_push_checks_then_uploads_only_the_checked_files(folder, monkeypatch, capsys):
    import huggingface_hub

    StandIn.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", StandIn)
    assert main(["push", str(folder), "--repo", "alice/sepmamba-minimix", "--private"]) == 0
    assert "https://huggingface.co/alice/sepmamba-minimix/commit/0123" in capsys.readouterr().out
    (create, kwargs), (upload, upload_kwargs) = StandIn.calls
    assert create == "create_repo" and kwargs == {"repo_id": "alice/sepmamba-minimix", "repo_type": "model",
                                                  "private": True, "exist_ok": True}
    assert upload == "upload_folder" and upload_kwargs["folder_path"] == str(folder)
    assert upload_kwargs["repo_id"] == "alice/sepmamba-minimix" and sorted(upload_kwargs["allow_patterns"]) == \
        sorted(FILES)


def test_push_uploads_nothing_from_a_bad_folder_or_to_a_bad_repo(copy, monkeypatch, capsys):
    import huggingface_hub

    StandIn.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", StandIn)
    assert main(["push", str(copy), "--repo", "not a repo id"]) == 2
    assert "--repo must be USER/NAME" in capsys.readouterr().err
    (copy / "masknet.ckpt").unlink()
    assert main(["push", str(copy), "--repo", "alice/model"]) == 1
    assert "masknet.ckpt is missing" in capsys.readouterr().err and StandIn.calls == []
    with pytest.raises(HubCheckError, match="masknet.ckpt is missing"):
        push(copy, "alice/model", api=StandIn())
    assert StandIn.calls == []


def test_push_reports_a_failed_upload_in_one_line(tmp_path, monkeypatch, capsys):
    out = export(direct_run(tmp_path), tmp_path / "hub", test_mixture=tmp_path / "mix.wav")
    pushing = importlib.import_module("sepmamba_sb.hub.push")  # the module (sepmamba_sb.hub.push is the function)
    monkeypatch.setattr(pushing, "check", lambda folder, progress=True: CheckResult(out, files=["README.md"]))
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: StandIn(token, fail=True))
    assert main(["push", str(out), "--repo", "alice/model", "--token", "hf_x"]) == 1
    err = capsys.readouterr().err
    assert "uploading to alice/model failed: OSError: 401 Client Error: Unauthorized" in err and "hf auth login" in err
