import pytest

from tests.support.helpers import tiny_weights_file


@pytest.fixture()
def weights(tmp_path):
    """A tiny weights file for the CLI commands' ``--weights``."""
    return tiny_weights_file(tmp_path / "tiny.safetensors")
