import torch

from lib import features, hooks, models


def test_activations_shapes_and_cleanup():
    b = models.load("vgg11", weights=None, device="cpu")
    x = torch.rand(2, 3, 64, 64)
    acts = features.activations(b, x, ["features.1", "features.19"])
    assert acts["features.1"].shape == (2, 64, 64, 64)
    assert acts["features.19"].shape == (2, 512, 4, 4)
    assert not acts["features.1"].requires_grad
    assert hooks.count_hooks(b.model) == 0 and not b.model.training


def test_filter_responses_equal_the_first_conv_output():
    b = models.load("vgg11", weights=None, device="cpu")
    x = torch.rand(1, 3, 32, 32)
    r = features.filter_responses(b, x, channels=[0, 5])
    with torch.no_grad():
        full = b.model.features[0](b.preprocess(x))
    assert torch.allclose(r, full[:, [0, 5]], atol=1e-5)
    assert features.first_conv(b) is b.model.features[0]
