import numpy as np
import torch

import lib


def test_best_device_is_cpu_without_accelerator():
    dev = lib.best_device()
    assert isinstance(dev, torch.device)
    if not torch.cuda.is_available():
        assert dev.type in ("cpu", "mps")
    else:
        assert dev.type == "cuda"


def test_seed_repeats_every_generator_and_sets_determinism():
    lib.seed(123)
    a = (torch.rand(3), np.random.rand(3))
    lib.seed(123)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    g = lib.seed(5)
    assert torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=torch.Generator().manual_seed(5)))


def test_torch_threads_sets_and_restores_even_after_an_exception():
    n = torch.get_num_threads()
    with lib.device.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == n
    try:
        with lib.device.torch_threads(1):
            raise KeyError("boom")
    except KeyError:
        pass
    assert torch.get_num_threads() == n
    with lib.device.torch_threads(None):                 # None: leave it as it is
        assert torch.get_num_threads() == n
