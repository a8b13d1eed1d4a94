import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matmuls: one thread is fastest, and the CI machine's two cores are shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
