import os

import pytest
import torch
from hypothesis import settings

# CI must be reproducible: the same examples on every run (locally, hypothesis explores new ones).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """CI has two cores shared by the whole suite; the tests' small graphs gain nothing from threads."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
