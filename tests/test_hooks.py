import pytest
import torch
from torch import nn

from lib import hooks
from lib.errors import LayerNotFoundError

from conftest import small_cnn


class Boom(RuntimeError):
    pass


def test_capture_records_the_layer_output():
    m = small_cnn().eval()
    x = torch.rand(2, 3, 8, 8)
    with hooks.capture(m, ["1", "3"]) as rec:
        m(x)
    expected = torch.relu(m[0](x))
    assert torch.allclose(rec["1"], expected)
    assert rec["3"].shape == (2, 5, 8, 8)
    assert hooks.count_hooks(m) == 0


def test_gradient_capture_works_with_inplace_relu(vgg11):
    # module backward hooks break on in-place ReLU (pytorch#61519); tensor hooks do not
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    with hooks.capture(vgg11, "features.1", gradients=True) as rec:
        vgg11(x)[:, 3].sum().backward()
    a, g = rec.activations["features.1"], rec.gradients["features.1"]
    assert g.shape == a.shape == (2, 64, 32, 32)
    # check against autograd directly on the captured tensor
    with hooks.capture(vgg11, "features.1") as rec2:
        out = vgg11(x)[:, 3].sum()
    (g2,) = torch.autograd.grad(out, rec2["features.1"])
    assert torch.allclose(g, g2, atol=1e-6)
    assert hooks.count_hooks(vgg11) == 0


def test_capture_removes_hooks_after_an_exception():
    m = small_cnn()
    with pytest.raises(Boom):
        with hooks.capture(m, ["0", "3"], gradients=True):
            m(torch.rand(1, 3, 8, 8))
            raise Boom
    assert hooks.count_hooks(m) == 0


def test_unknown_layer_lists_close_matches(vgg11):
    with pytest.raises(LayerNotFoundError, match=r"no layer 'featurs\.1'.*'features\.1'"):
        with hooks.capture(vgg11, "featurs.1"):
            pass
    with pytest.raises(LayerNotFoundError, match="list_layers"):
        hooks.resolve_layer(vgg11, "layer4")
    assert hooks.count_hooks(vgg11) == 0


def test_resolve_layer_by_module_object(vgg11):
    assert hooks.resolve_layer(vgg11, vgg11.features[3]) == ("features.3", vgg11.features[3])
    with pytest.raises(LayerNotFoundError, match="not part of"):
        hooks.resolve_layer(vgg11, nn.ReLU())
    with pytest.raises(TypeError):
        hooks.resolve_layer(vgg11, 3)


def test_patch_swaps_and_restores_even_after_an_exception(vgg11):
    original = vgg11.features[1]
    with hooks.patch(vgg11, {"features.1": nn.Identity()}):
        assert isinstance(vgg11.features[1], nn.Identity)
    assert vgg11.features[1] is original
    with pytest.raises(Boom):
        with hooks.patch(vgg11, {"features.1": nn.Identity(), "classifier.0": nn.Identity()}):
            raise Boom
    assert vgg11.features[1] is original and isinstance(vgg11.classifier[0], nn.Linear)


def test_patch_restores_the_ones_done_when_a_later_name_is_wrong(vgg11):
    original = vgg11.features[1]
    with pytest.raises(LayerNotFoundError):
        with hooks.patch(vgg11, {"features.1": nn.Identity(), "nope": nn.Identity()}):
            pass
    assert vgg11.features[1] is original


def test_frozen_restores_modes_and_flags_even_after_an_exception():
    m = small_cnn().train()
    m[2].weight.requires_grad_(False)  # a mixed state to restore exactly
    m[0].eval()
    before = ({n: mm.training for n, mm in m.named_modules()},
              {n: p.requires_grad for n, p in m.named_parameters()})
    with pytest.raises(Boom):
        with hooks.frozen(m):
            assert not m.training and not any(p.requires_grad for p in m.parameters())
            raise Boom
    after = ({n: mm.training for n, mm in m.named_modules()},
             {n: p.requires_grad for n, p in m.named_parameters()})
    assert before == after


def test_detached_capture_survives_a_following_inplace_relu(vgg11):
    x = torch.randn(1, 3, 32, 32)
    with hooks.capture(vgg11, "features.0", detach=True) as rec:
        vgg11(x)
    expected = vgg11.features[0](x)
    assert rec["features.0"].min() < 0
    assert torch.allclose(rec["features.0"], expected, atol=1e-5)


def test_leaf_capture_starts_the_graph_at_the_layer_and_survives_inplace_ops(vgg11):
    """leaf=True: features.0 (followed by an in-place ReLU) is recorded as a leaf holding the conv's
    output; nothing below it is in the graph, and its gradient is the one autograd gives otherwise."""
    x = torch.randn(2, 3, 32, 32)
    vgg11.requires_grad_(False)
    try:
        with hooks.capture(vgg11, ["features.0", "features.3"], leaf=True) as rec:
            out = vgg11(x)[:, 3].sum()
        a, b = rec["features.0"], rec["features.3"]
        assert a.is_leaf and a.requires_grad and a.min() < 0          # not overwritten by the ReLU
        assert torch.allclose(a, vgg11.features[0](x), atol=1e-5)
        assert not b.is_leaf                                           # above a captured layer: kept in the graph
        (g,) = torch.autograd.grad(out, a)
        with hooks.capture(vgg11, "features.1") as ref:               # the ReLU's output, as usual, with x a leaf
            out2 = vgg11(x.clone().requires_grad_(True))[:, 3].sum()
        (g2,) = torch.autograd.grad(out2, ref["features.1"])
        assert torch.allclose(g, g2 * (a > 0), atol=1e-6)              # chain rule through the ReLU
    finally:
        vgg11.requires_grad_(True)
    assert hooks.count_hooks(vgg11) == 0


def test_stop_after_ends_the_pass_and_cleans_up():
    model = small_cnn()
    calls = []
    model[4].register_forward_pre_hook(lambda m, i: calls.append("pool"))
    x = torch.rand(2, 3, 8, 8)
    with hooks.capture(model, "1", detach=True) as rec, hooks.stop_after(model, ["0", "1"]) as seen:
        with pytest.raises(hooks.StopForward):
            model(x)
        assert seen == {"0", "1"}
    assert calls == [] and rec["1"].shape == (2, 4, 8, 8)
    assert hooks.count_hooks(model) == 1                      # only the test's own pre-hook is left
    out = hooks.output_of(model, "2", x)
    assert torch.allclose(out, model[2](model[1](model[0](x))))
    assert out.requires_grad                                  # differentiable: not detached


def test_output_of_a_layer_the_model_never_runs():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x):
            return self.used(x)

    m = Skips()
    with pytest.raises(LayerNotFoundError, match="never ran"):
        hooks.output_of(m, "unused", torch.rand(1, 2))
    assert hooks.count_hooks(m) == 0
