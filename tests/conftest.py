import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest

pytest_plugins = ["tests.support.fixtures"]  # shared fixtures (one_torch_thread ...)


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's weights cache or torch hub cache, nor use the network."""
    monkeypatch.setenv("INSTCOLOR_HOME", str(tmp_path_factory.mktemp("instcolor_home")))
    monkeypatch.setenv("INSTCOLOR_OFFLINE", "1")  # the default weights never trigger a real download
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
    monkeypatch.delenv("INSTCOLOR_ALEXNET_WEIGHTS", raising=False)
    monkeypatch.delenv("INSTCOLOR_INCEPTION_WEIGHTS", raising=False)


@pytest.fixture(scope="session")
def random_alexnet(tmp_path_factory):
    """A torchvision AlexNet ``features.*`` state dict with random weights, saved to a file.

    Random weights are fine here because the tests inject them explicitly (the LPIPS code path,
    offline); production code never falls back to them.
    """
    import torch
    from torchvision.models import alexnet

    torch.manual_seed(0)
    state = {k: v for k, v in alexnet(weights=None).state_dict().items() if k.startswith("features.")}
    path = tmp_path_factory.mktemp("alexnet") / "alexnet-random.pth"
    torch.save(state, path)
    return path
