import torch

from lib import data, hooks, models
from lib.images import resize


def test_vgg16_cam_bundle_score_identity_and_accuracy(canvases):
    """vgg16-cam: GAP head exact (score = mean CAM + bias) and the reported accuracy reached."""
    import json

    from lib.models import vgg16_cam
    from lib.models.train import accuracy

    b = models.load("vgg16-cam", device="cpu")
    assert b.classes == data.CLASSES and b.input_size == 112 and not b.model.training
    x = resize(canvases.images[:3], (112, 112))
    with torch.no_grad(), hooks.capture(b.model, b.layer("cam")) as rec:
        logits = b(x)
    f = rec[b.layer("cam")]
    assert f.shape[-2:] == (14, 14)
    cam = torch.einsum("ck,nkhw->nchw", b.model.fc.weight, f)
    assert torch.allclose(cam.mean((2, 3)) + b.model.fc.bias, logits, atol=1e-3)
    reported = json.loads(vgg16_cam.WEIGHTS.with_suffix(".json").read_text())["accuracy"]
    acc = accuracy(b, canvases, size=112)
    assert abs(acc - reported) <= 0.002, (acc, reported)
