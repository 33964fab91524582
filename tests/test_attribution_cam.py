import pytest
import torch

from lib import hooks, models
from lib.attribution import cam
from lib.attribution.cam import NotGapModelError


def test_cam_shape_and_score_identity(gapnet, canvases):
    x = canvases.images[:5]
    with torch.no_grad():
        logits = gapnet(x)
    for target in (None, 3, torch.tensor([0, 1, 2, 3, 4])):
        m = cam(gapnet, x, target=target, upsample=False)
        t = logits.argmax(1) if target is None else torch.as_tensor(target).expand(5)
        score = logits.gather(1, t.view(-1, 1))[:, 0]
        assert m.shape == (5, 8, 8)
        assert torch.allclose(m.mean((1, 2)) + gapnet.model.fc.bias[t], score, atol=1e-4)
    up = cam(gapnet, x)
    assert up.shape == (5, 64, 64) and not up.requires_grad
    assert hooks.count_hooks(gapnet.model) == 0


def test_cam_batch_equals_single_calls(gapnet, canvases):
    x = canvases.images[:4]
    batch = cam(gapnet, x, target=2)
    single = torch.cat([cam(gapnet, x[i:i + 1], target=2) for i in range(4)])
    assert torch.allclose(batch, single, atol=1e-5)


def test_cam_errors(gapnet):
    with pytest.raises(ValueError, match="out of range"):
        cam(gapnet, torch.rand(1, 3, 64, 64), target=10)
    vgg = models.load("vgg11", weights=None, device="cpu")
    with pytest.raises(NotGapModelError, match="Grad-CAM"):
        cam(vgg, torch.rand(1, 3, 64, 64))


def test_cam_on_a_torchvision_gap_network():
    """ResNet's head is avgpool -> fc, so CAM applies there too (random weights, labelled so)."""
    b = models.load("resnet18", weights=None, device="cpu")
    x = torch.rand(2, 3, 64, 64)
    m = cam(b, x, target=[5, 7], upsample=False)
    with torch.no_grad():
        logits = b(x)
    assert m.shape == (2, 2, 2)
    assert torch.allclose(m.mean((1, 2)) + b.model.fc.bias[[5, 7]], logits[[0, 1], [5, 7]], atol=1e-4)
