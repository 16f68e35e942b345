import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest


@pytest.fixture(autouse=True)
def _isolated_instcolor_home(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's weights cache."""
    monkeypatch.setenv("INSTCOLOR_HOME", str(tmp_path_factory.mktemp("instcolor_home")))
    monkeypatch.setenv("INSTCOLOR_OFFLINE", "1")  # the default weights never trigger a real download
