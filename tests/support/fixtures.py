"""Fixtures shared by tests in several folders, registered for the whole suite by the root
``conftest.py`` (``pytest_plugins``); a module opts in with ``pytest.mark.usefixtures``."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """On a shared 2-core machine, intra-op threads mostly wait for each other: run on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
