import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # CI has 2 cores shared by many test processes; small graphs gain nothing from threads
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
