import pytest
import torch

import lib


@pytest.fixture(autouse=True)
def _seeded():
    lib.seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tests that push many small tensors: on a busy 2-core machine
    OpenMP threads contend and one thread is up to ten times faster (measured: 120 s -> 11 s for
    tests/test_gradcam.py). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``; restored after."""
    with lib.device.torch_threads(1):
        yield


@pytest.fixture(scope="session")
def gapnet():
    from lib import models
    return models.load("gapnet", device="cpu")


@pytest.fixture(scope="session")
def canvases():
    from lib import data
    return data.load_canvases("test")


@pytest.fixture
def vgg11():
    """torchvision VGG-11 with random weights: in-place ReLUs, like the real VGG16."""
    import torchvision
    return torchvision.models.vgg11(weights=None).eval()


def small_cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(inplace=True),
        torch.nn.Conv2d(4, 5, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(5, 3))
