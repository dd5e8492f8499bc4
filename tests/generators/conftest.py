"""Generator tests run tiny models: intra-op threads only add overhead there, and on a busy
2-core machine they stall, so every test here runs torch on one thread."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
