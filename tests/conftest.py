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
