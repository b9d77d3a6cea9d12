"""Suite-wide settings."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The tests run tiny models: on a 2-core machine one intra-op thread is several times faster than two
    (no spin-waiting threads fighting other processes), and results do not depend on the thread count."""
    torch.set_num_threads(1)
    yield
