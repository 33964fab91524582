"""The feed-forward multi-style network (lib.models.stylenet)."""
import pytest
import torch

from lib import data
from lib.models import stylenet as SN


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    n = SN.StyleNet()
    with torch.no_grad():   # distinct styles, so interpolation is a real test
        for m in n.modules():
            if isinstance(m, SN.CondInstanceNorm):
                m.gamma.normal_(1, 0.3)
                m.beta.normal_(0, 0.3)
    return n.eval()


def test_output_has_the_input_size_and_is_in_range(net):
    for shape in ((2, 3, 64, 64), (1, 3, 50, 70)):
        y = net(torch.rand(shape), style=1)
        assert y.shape == shape and 0 <= y.min() and y.max() <= 1


def test_interpolation_at_0_and_1_equals_the_single_styles(net):
    x = torch.rand(1, 3, 32, 32)
    a, b = net(x, 0), net(x, 2)
    assert not torch.allclose(a, b)
    assert torch.allclose(net(x, [1.0, 0.0, 0.0]), a, atol=1e-6)
    assert torch.allclose(net(x, [0.0, 0.0, 1.0]), b, atol=1e-6)
    assert torch.allclose(net(x, "truchet"), b, atol=1e-6)
    mid = net(x, [0.5, 0.0, 0.5])
    assert not torch.allclose(mid, a) and not torch.allclose(mid, b)


def test_bad_styles_say_what_exists(net):
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="starry_night"):
        net(x, "monet")
    with pytest.raises(ValueError, match="3 styles"):
        net(x, 7)
    with pytest.raises(ValueError, match="3 weights"):
        net(x, [0.5, 0.5])


def test_training_lowers_the_loss():
    photos = data.background_photos("train", short_side=64)[:3]
    _, record = SN.train(steps=40, batch_size=2, size=32, style_size=64, photos=photos, device="cpu",
                         progress=False, curve_every=10)
    curve = [c[0] for c in record["loss_curve"]]   # mean total loss over steps 1-10, 11-20, ...
    assert len(curve) == 4 and curve[-1] < 0.7 * curve[0], curve


def test_committed_weights_load_when_present():
    if not SN.WEIGHTS.exists():
        pytest.skip("stylenet weights not trained yet")
    net = SN.load_stylenet("cpu")
    assert not net.training and net.styles == SN.STYLES
