import numpy as np
import torch

from lib.models.gapnet import GapNet
from lib.models.train import train_steps


def repeat(canvases):
    """The same batch forever: (images, labels) of ``canvases``."""
    while True:
        yield canvases.images, canvases.labels


def test_a_few_steps_on_a_small_subset_lower_the_loss(canvases):
    model = GapNet(widths=(8, 16, 16, 32))
    losses = train_steps(model, repeat(canvases[:64]), steps=40, lr=3e-3, progress=False)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert not model.training


def test_the_weight_average_follows_training(canvases):
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    model = GapNet(widths=(8, 8, 8, 8))
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.5), use_buffers=True)
    init = model.fc.weight.detach().clone()
    train_steps(model, repeat(canvases[:32]), steps=5, lr=1e-2, progress=False, ema=ema)
    avg = ema.module.fc.weight
    assert ema.n_averaged.item() == 5
    assert not torch.equal(avg, init) and not torch.equal(avg, model.fc.weight)
