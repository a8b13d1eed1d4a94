import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """CI has two cores shared by the whole suite; the tests' small graphs gain nothing from threads."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
