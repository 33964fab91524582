"""Chapter 2: embeddings (penultimate features), nearest neighbours, PCA and t-SNE."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from conftest import small_cnn  # noqa: E402
from lib import features, hooks, models, plot, widgets  # noqa: E402
from lib.errors import LayerNotFoundError  # noqa: E402
from lib.models import Bundle  # noqa: E402


@pytest.fixture(scope="module")
def vgg11_bundle():
    return models.load("vgg11", weights=None, device="cpu")


def small_bundle(model=None):
    model = small_cnn() if model is None else model
    return Bundle(name="small", model=model.eval(), classes=("a", "b", "c"), input_size=16,
                  layers={"default": "2", "features": "4"})


# --------------------------------------------------------------------------- embed
def test_embed_is_the_input_of_gapnets_classifier(gapnet, canvases):
    x = canvases.images[:12]
    f = features.embed(gapnet, x)
    assert f.shape == (12, 256) and f.dtype == torch.float32 and f.device.type == "cpu" and not f.requires_grad
    with torch.no_grad():
        acts = gapnet.model.features(gapnet.preprocess(x))                 # features.26: N x 256 x 8 x 8
        by_hand = acts.mean(dim=(2, 3))                                    # global average pooling
        assert torch.allclose(f, by_hand, atol=1e-5)
        assert torch.allclose(gapnet.model.fc(f), gapnet(x), atol=1e-4)   # fc of the features = the logits
    assert hooks.count_hooks(gapnet.model) == 0


def test_batch_size_does_not_change_the_features(gapnet, canvases):
    x = canvases.images[:30]
    small, large = features.embed(gapnet, x, batch_size=7), features.embed(gapnet, x, batch_size=250)
    assert small.shape == large.shape == (30, 256)
    assert torch.allclose(small, large, atol=1e-5)
    one = torch.cat([features.embed(gapnet, x[i:i + 1]) for i in range(3)])
    assert torch.allclose(one, large[:3], atol=1e-5)


def test_embed_named_layer_is_flattened(gapnet, canvases):
    f = features.embed(gapnet, canvases.images[:4], layer="features.26")
    assert f.shape == (4, 256 * 8 * 8)
    with torch.no_grad():
        assert torch.allclose(f, gapnet.model.features(gapnet.preprocess(canvases.images[:4])).flatten(1), atol=1e-5)


def test_embed_torchvision_resnet_pooled_features():
    b = models.load("resnet18", weights=None, device="cpu")
    x = torch.rand(3, 3, 40, 40)
    f = features.embed(b, x)                      # default: avgpool, the input of fc
    m = b.model
    with torch.no_grad():
        h = m.maxpool(m.relu(m.bn1(m.conv1(b.preprocess(x)))))
        h = m.layer4(m.layer3(m.layer2(m.layer1(h))))
        by_hand = torch.flatten(m.avgpool(h), 1)
    assert f.shape == (3, 512)
    assert torch.allclose(f, by_hand, atol=1e-5)
    assert hooks.count_hooks(m) == 0


def test_embed_torchvision_vgg_fc7(vgg11_bundle):
    b = vgg11_bundle
    x = torch.rand(2, 3, 32, 32)
    f = features.embed(b, x)                      # default: classifier.4, fc7 after its ReLU
    m = b.model
    with torch.no_grad():
        by_hand = m.classifier[:5](torch.flatten(m.avgpool(m.features(b.preprocess(x))), 1))
    assert f.shape == (2, 4096)
    assert torch.allclose(f, by_hand, atol=1e-5)
    assert torch.allclose(features.embed(b, x, layer="classifier.4", batch_size=1), f, atol=1e-5)


def test_conv_layer_before_an_inplace_relu_keeps_its_negative_values(vgg11_bundle):
    b = vgg11_bundle                     # features.0 (conv) is followed by ReLU(inplace=True)
    x = torch.rand(2, 3, 16, 16)
    f = features.embed(b, x, layer="features.0")
    with torch.no_grad():
        conv = b.model.features[0](b.preprocess(x)).flatten(1)
    assert torch.allclose(f, conv, atol=1e-5) and (f < 0).any()


def test_unknown_layer_raises_layer_not_found(gapnet, canvases):
    with pytest.raises(LayerNotFoundError, match="fc"):
        features.embed(gapnet, canvases.images[:2], layer="fc7")
    assert hooks.count_hooks(gapnet.model) == 0


def test_layer_that_never_runs_is_reported():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.unused = small_cnn(), nn.Identity()

        def forward(self, x):
            return self.body(x)

    model = Net()
    b = small_bundle(model)
    with pytest.raises(LayerNotFoundError, match="did not run"):
        features.embed(b, torch.rand(2, 3, 8, 8), layer="unused")
    assert hooks.count_hooks(model) == 0


def test_no_hooks_left_when_the_model_raises():
    b = small_bundle()
    b.model.train()
    flags = [p.requires_grad for p in b.model.parameters()]
    with pytest.raises(RuntimeError):
        features.embed(b, torch.rand(2, 1, 8, 8))          # 1 channel: the first conv raises
    assert hooks.count_hooks(b.model) == 0
    assert b.model.training                                  # mode restored
    assert [p.requires_grad for p in b.model.parameters()] == flags


def test_repeated_calls_leave_no_hooks():
    b = small_bundle()
    x = torch.rand(3, 3, 8, 8)
    first = features.embed(b, x)
    for _ in range(100):
        f = features.embed(b, x, batch_size=2)
    assert hooks.count_hooks(b.model) == 0 and torch.allclose(f, first, atol=1e-6)
    assert f.shape == (3, 5)


# --------------------------------------------------------------------------- neighbours
def test_nearest_neighbours_exclude_the_query_even_with_duplicates():
    x = torch.tensor([[0.0], [0.0], [1.0], [3.0], [7.0]])   # rows 0 and 1 are identical
    idx, dist = features.nearest_neighbours(x, k=2)
    assert idx.shape == dist.shape == (5, 2)
    assert not (idx == torch.arange(5)[:, None]).any()
    assert idx[0].tolist() == [1, 2] and idx[1].tolist() == [0, 2]
    assert idx[4].tolist() == [3, 2] and torch.allclose(dist[4], torch.tensor([4.0, 6.0]))
    assert (dist[:, 1] >= dist[:, 0]).all()
    qi, qd = features.nearest_neighbours(x, k=2, queries=[1, 0, 4])
    assert qi.tolist() == [idx[1].tolist(), idx[0].tolist(), idx[4].tolist()]
    assert torch.allclose(qd, dist[[1, 0, 4]])
    with pytest.raises(ValueError):
        features.nearest_neighbours(x, k=5)                  # only 4 other points


def test_nearest_neighbours_are_l2_on_flattened_rows():
    x = torch.rand(20, 3, 4, 4)
    idx, dist = features.nearest_neighbours(x, k=3)
    d = torch.cdist(x.flatten(1).double(), x.flatten(1).double())
    d.fill_diagonal_(float("inf"))
    ref_d, ref_i = d.topk(3, largest=False)
    assert torch.equal(idx, ref_i) and torch.allclose(dist.double(), ref_d, atol=1e-5)


def test_neighbour_agreement_known_answer():
    x = torch.tensor([[0.0], [1.0], [3.0], [4.0]])
    labels = torch.tensor([0, 0, 1, 1])
    nn1, _ = features.nearest_neighbours(x, k=1)
    nn2, _ = features.nearest_neighbours(x, k=2)
    assert features.neighbour_agreement(nn1, labels) == 1.0   # each point's nearest is its partner
    assert features.neighbour_agreement(nn2, labels) == 0.5   # the second is always across the gap
    assert features.neighbour_agreement(nn1, torch.tensor([0, 1, 0, 1])) == 0.0
    q, _ = features.nearest_neighbours(x, k=2, queries=[0])
    assert features.neighbour_agreement(q, labels, queries=[0]) == 0.5
    with pytest.raises(ValueError):
        features.neighbour_agreement(q, labels)               # 1 row of neighbours, 4 labels: which query?
    with pytest.raises(ValueError):
        features.neighbour_agreement(q, labels, queries=[0, 1])


# --------------------------------------------------------------------------- PCA and t-SNE
def test_pca_finds_the_direction_of_largest_variance():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(50, 1, generator=g)
    x = t * torch.tensor([[1.0, 2.0, 2.0]]) + 0.001 * torch.randn(50, 3, generator=g)   # a line in 3-D
    z, model = features.pca(x, return_model=True)
    assert z.shape == (50, 2)
    assert model.explained_variance_ratio_[0] > 0.999
    assert abs(torch.corrcoef(torch.stack([z[:, 0], t[:, 0]]))[0, 1]) > 0.999
    assert torch.equal(features.pca(x), z)


def test_tsne_is_deterministic_and_separates_clusters():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(30, 10, generator=g), torch.randn(30, 10, generator=g) + 20])
    labels = torch.tensor([0] * 30 + [1] * 30)
    a = features.tsne(x, perplexity=10, seed=3, max_iter=500)
    b = features.tsne(x, perplexity=10, seed=3, max_iter=500)
    assert a.shape == (60, 2) and a.dtype == torch.float32
    assert torch.equal(a, b)
    nn_map, _ = features.nearest_neighbours(a, k=5)
    assert features.neighbour_agreement(nn_map, labels) == 1.0
    assert features.tsne(x[:, :3].repeat(1, 30), perplexity=10, max_iter=250).shape == (60, 2)   # through PCA
    with pytest.raises(ValueError, match="perplexity"):
        features.tsne(x[:5], perplexity=30)


# --------------------------------------------------------------------------- plots and widget
def test_neighbour_figure_and_embedding_plot():
    images, labels = torch.rand(12, 3, 16, 16), torch.arange(12) % 3
    idx, _ = features.nearest_neighbours(images, k=4)
    fig = plot.show_neighbours(images, labels, [0, 5], {"feature": idx[[0, 5]], "pixel": idx[[0, 5]]},
                               ["a", "b", "c"], show=False)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 2 * (1 + 4 + 4)
    assert drawn[0].get_title() == "a" and drawn[1].get_title() == "c"       # query 0 (a), first row
    assert plot.show_neighbours(images, labels, [0], {"f": idx[[0]]}, ["a", "b", "c"]) is None
    z = torch.rand(12, 2)
    fig = plot.show_embeddings({"one": z, "two": z}, labels, ["a", "b", "c"], show=False)
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "one"
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["a", "b", "c"]
    fig = plot.show_embeddings({"one": z}, labels, ["a", "b", "c"], images=images, thumbs=5, show=False)
    assert len(fig.axes[0].artists) == 5
    plt.close("all")


def test_neighbour_explorer_redraws_from_precomputed_neighbours():
    images, labels = torch.rand(10, 3, 16, 16), torch.arange(10) % 2
    idx, _ = features.nearest_neighbours(images, k=3)
    w = widgets.neighbour_explorer(images, labels, {"pixels": idx}, ["even", "odd"], query=2)
    slider = w.children[0]
    assert slider.value == 2 and slider.max == 9
    slider.value = 7
    with pytest.raises(ValueError):
        widgets.neighbour_explorer(images, labels, {"pixels": idx[:3]}, ["even", "odd"])
    plt.close("all")
