"""Where to compute, and how to make it repeatable."""
from __future__ import annotations

import contextlib
import os
import random
from typing import Iterator

import numpy as np
import torch

__all__ = ["best_device", "seed", "torch_threads"]


def best_device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed(value: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) and switch on deterministic algorithms.

    Seeds alone do not make GPU runs repeatable: cuDNN must also be told to be deterministic
    and not to benchmark. Returns a ``torch.Generator`` seeded with ``value`` for code that
    wants its own stream.
    """
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)  # also seeds every CUDA device
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(value)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Inside the block torch uses ``n`` threads (None: leave it); the old number is restored on exit,
    exceptions included.

    A chain of small operations (one image at 64 px, many small tests) runs faster on one thread: on
    a 2-core machine that is busy with other work, OpenMP threads waiting for each other cost more
    than they save (a gapnet forward pass measured 5 ms on one thread, 300 ms on two, with the other
    core busy). The class explorer and the tests use one.
    """
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
