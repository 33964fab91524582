import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from lib import hooks, models, plot, widgets  # noqa: E402


def test_plots_return_figures_only_when_not_shown():
    imgs = torch.rand(3, 3, 16, 16)
    fig = plot.show_images(imgs, ["a", "b", "c"], ncols=2, boxes=torch.tensor([[1, 1, 5, 5]] * 3), show=False)
    assert len([ax for ax in fig.axes if ax.images]) == 3
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    assert len(fig.axes[0].patches) == 1                       # the box
    assert plot.show_images(imgs) is None                      # shown: nothing returned (nbval)
    fig = plot.show_maps(imgs[0], torch.rand(4, 8, 8), titles=list("wxyz"), show=False)
    assert len([ax for ax in fig.axes if ax.images]) == 5
    fig = plot.show_map_rows({"l1": torch.rand(3, 8, 8), "l2": torch.rand(2, 4, 4)}, show=False)
    assert len(fig.axes) == 6 and fig.axes[0].get_ylabel() == "l1"
    fig = plot.show_grid(torch.randn(8, 3, 3, 3), nrow=4, normalize_each=True, show=False)
    assert len(fig.axes) == 1
    plt.close("all")


def test_activation_explorer_follows_the_layer():
    b = models.load("vgg11", weights=None, device="cpu")
    w = widgets.activation_explorer(b, torch.rand(1, 3, 32, 32), ["features.1", "features.4"])
    layer, channel = w.children[0].children
    assert channel.max == 63
    layer.value = "features.4"
    assert channel.max == 127
    assert hooks.count_hooks(b.model) == 0
    plt.close("all")


def test_every_explorer_ends_with_the_live_note():
    """The published page shows a widget's stored state only: each panel says so in its last line."""
    import inspect

    b = models.load("vgg11", weights=None, device="cpu")
    w = widgets.activation_explorer(b, torch.rand(1, 3, 32, 32), ["features.1"])
    assert widgets.LIVE_NOTE in w.children[-1].value
    explorers = [f for n, f in vars(widgets).items() if n.endswith("_explorer") and inspect.isfunction(f)]
    assert len(explorers) >= 16
    for f in explorers:     # every explorer builds its panel with _panel (no VBox of its own)
        src = inspect.getsource(f)
        assert "return _panel(" in src and "W.VBox(" not in src, f.__name__
    plt.close("all")
