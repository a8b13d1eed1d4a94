import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # the learning tests run many tiny ops; extra threads only add contention on a shared CI machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
