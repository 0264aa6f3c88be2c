import importlib.util
import pathlib
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))

DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _seed_and_backend(monkeypatch):
    """Each test starts from a fixed seed and with the automatic backend choice."""
    monkeypatch.delenv("SEPMAMBA_SCAN_BACKEND", raising=False)
    torch.manual_seed(0)


REPO = pathlib.Path(__file__).resolve().parents[1]
WSJ0MIX = REPO / "recipes" / "WSJ0Mix"

# a tiny wsj0-2mix-layout corpus of real speech; disjoint speakers, 3 in tr for 3-speaker mixing
TINY_SPEAKERS = {"tr": ["en-allison", "it-carlo", "fr-june"], "cv": ["ru-ivrvoice", "ps-austen"],
                 "tt": ["c2-ve9qrp", "c2-vk5qi"]}
TINY_MIXTURES = {"tr": 8, "cv": 3, "tt": 3}


@pytest.fixture(scope="session")
def tiny_corpus():
    """Built from Debian packages once and cached (``$SEPMAMBA_CACHE``); skipped, saying why, where
    apt cannot fetch them."""
    from sepmamba_sb.data.corpus import build_corpus
    from sepmamba_sb.data.speech_sources import SpeechFetchError, cache_dir

    try:
        return build_corpus(cache_dir() / "tests" / "tiny-2mix", TINY_SPEAKERS, TINY_MIXTURES,
                            max_utterances_per_speaker=6)
    except SpeechFetchError as exc:
        pytest.skip(f"real speech from Debian packages unavailable here: {exc}")


def load_recipe_module(relative: str, name: str):
    """Import a recipe script (recipes/WSJ0Mix/...) under a unique module name."""
    spec = importlib.util.spec_from_file_location(name, WSJ0MIX / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
