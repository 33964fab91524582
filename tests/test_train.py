import numpy as np
import torch

from lib.models.gapnet import GapNet
from lib.models.train import train_steps


def test_a_few_steps_on_a_small_subset_lower_the_loss(canvases):
    sub = canvases[:64]

    def batches():
        while True:
            yield sub.images, sub.labels

    model = GapNet(widths=(8, 16, 16, 32))
    losses = train_steps(model, batches(), steps=40, lr=3e-3, progress=False)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert not model.training
