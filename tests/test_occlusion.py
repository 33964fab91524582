"""Occlusion (Zeiler & Fergus 2014): agreement with Captum, analytic cases, batching, cleanup, errors."""
import gc
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from lib import hooks, plot, widgets  # noqa: E402
from lib.attribution import occlusion, occlusion_passes, occlusion_probs, occlusion_windows, occlude  # noqa: E402
from lib.attribution.occlusion import OcclusionSettingsError, fill_image  # noqa: E402
from lib.errors import CourseError, NoClassesError  # noqa: E402
from lib.models import Bundle  # noqa: E402


class RegionModel(nn.Module):
    """Two logits: [a * mean of x over rows y0:y1, columns x0:x1 (all channels), 0]. It sees nothing else."""

    def __init__(self, region=(20, 24, 32, 36), a=6.0):
        super().__init__()
        self.region, self.a = region, a
        self.dummy = nn.Parameter(torch.zeros(1))        # so the bundle knows its device

    def forward(self, x):
        y0, y1, x0, x1 = self.region
        s = self.a * x[:, :, y0:y1, x0:x1].mean((1, 2, 3)) + self.dummy
        return torch.stack([s, torch.zeros_like(s)], 1)


def region_bundle(**kw):
    return Bundle(name="region", model=RegionModel(**kw).eval(), classes=("region", "other"), input_size=64)


def small_bundle():
    """A tiny CNN with batch norm and dropout (so eval vs train mode matters), 3 classes, 16 px."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                          nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    return Bundle(name="small", model=model.eval(), classes=("a", "b", "c"), input_size=16)


# ----------------------------------------------------------------------------- Captum agreement
@pytest.mark.parametrize("window, stride, fill, n", [
    (32, 16, "gray", 2),     # windows tile the 64 px canvas exactly: (64 - 32) / 16 = 2
    (20, 9, "mean", 1),      # they do not: (64 - 20) / 9 = 4.9, the last window is cut off at the border
    (24, 12, "blur", 1),
    (28, 28, 0.0, 1),        # stride = window, no overlap; (64 - 28) / 28 = 1.3, cut off too
])
def test_equals_captum_occlusion(gapnet, canvases, window, stride, fill, n):
    from captum.attr import Occlusion

    x = canvases.images[:n]
    target = [3, 7][:n]
    ours = occlusion(gapnet, x, target=target, window=window, stride=stride, fill=fill, batch_size=64)
    ref = Occlusion(lambda z: gapnet(z).softmax(1)).attribute(
        x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
        baselines=fill_image(x, fill, window), target=target, perturbations_per_eval=64)
    assert ours.shape == (n, 64, 64) and ours.dtype == torch.float32
    assert torch.allclose(ref[:, 0], ref[:, 2])              # Captum spreads the same value over channels
    assert (ours - ref[:, 0]).abs().max() < 1e-5
    assert ours.abs().max() > 1e-4                           # not trivially zero
    assert hooks.count_hooks(gapnet.model) == 0


# ----------------------------------------------------------------------------- windows and passes
def test_passes_and_windows():
    assert occlusion_passes(64, 8, 4) == 15 * 15
    assert occlusion_passes(64, 16, 8) == 7 * 7
    assert occlusion_passes(64, 12, 5) == 12 * 12            # ceil(52 / 5) + 1 = 12 (last one cut off)
    assert occlusion_passes(64, 64, 1) == 1
    assert occlusion_passes((48, 64), (8, 16), (4, 8)) == 11 * 7
    assert occlusion_passes(torch.zeros(1, 3, 64, 64), 16, 8) == 49
    # halving the stride roughly quadruples the cost: about (H / stride)^2
    assert occlusion_passes(224, 16, 4) / occlusion_passes(224, 16, 8) == pytest.approx(4, rel=0.1)
    for size, window, stride in [(64, 12, 5), ((48, 64), (8, 16), (4, 8)), (30, 7, 7)]:
        h, w = (size, size) if isinstance(size, int) else size
        wh, ww = (window, window) if isinstance(window, int) else window
        covered = torch.zeros(h, w, dtype=torch.bool)
        for top, left in occlusion_windows(size, window, stride):
            assert 0 <= top < h and 0 <= left < w
            covered[top:top + wh, left:left + ww] = True
        assert covered.all()                                 # every pixel is occluded at least once


# ----------------------------------------------------------------------------- analytic cases
def test_model_that_sees_one_region():
    """Only windows that overlap the region change the output, so the map is non-zero exactly on the
    pixels some such window covers, and zero elsewhere."""
    b = region_bundle(region=(20, 24, 32, 36), a=6.0)
    x = torch.ones(1, 3, 64, 64)                             # white; the gray fill lowers the score
    m = occlusion(b, x, target=0, window=8, stride=4)[0]
    expected = torch.zeros(64, 64, dtype=torch.bool)
    for top, left in occlusion_windows(64, 8, 4):
        if top < 24 and top + 8 > 20 and left < 36 and left + 8 > 32:
            expected[top:top + 8, left:left + 8] = True
    assert torch.equal(m != 0, expected)
    assert (m[expected] > 0).all()                           # hiding the region lowers p(region)
    assert (m[~expected] == 0).all()


def test_aligned_windows_give_the_exact_drop():
    """Window = stride = the 4x4 region: one window hides it all, so inside the region
    M = sigmoid(a) - sigmoid(a / 2) (the mean goes from 1 to 0.5), and 0 everywhere else."""
    a = 6.0
    b = region_bundle(region=(20, 24, 32, 36), a=a)
    m = occlusion(b, torch.ones(1, 3, 64, 64), target=0, window=4, stride=4)[0]
    drop = torch.sigmoid(torch.tensor(a)) - torch.sigmoid(torch.tensor(a / 2))
    assert torch.allclose(m[20:24, 32:36], drop.expand(4, 4), atol=1e-6)
    m[20:24, 32:36] = 0
    assert (m == 0).all()
    # the other class gains exactly what the first lost (two classes: the probabilities sum to 1)
    m1 = occlusion(b, torch.ones(1, 3, 64, 64), target=1, window=4, stride=4)[0]
    assert torch.allclose(m1[20:24, 32:36], -drop.expand(4, 4), atol=1e-6)


def test_fill_equal_to_the_image_changes_nothing(gapnet):
    x = torch.full((1, 3, 64, 64), 0.5)
    for fill in ("gray", "mean", "blur", 0.5):
        assert occlusion(gapnet, x, window=32, stride=32, fill=fill).abs().max() < 1e-5   # float rounding only


# ----------------------------------------------------------------------------- fills
def test_fills():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    assert (fill_image(x, "gray") == 0.5).all()
    assert (fill_image(x, 0.0) == 0).all() and (fill_image(x, 1) == 1).all()
    mean = fill_image(x, "mean")
    assert torch.allclose(mean[:, :, 5, 7], x.mean((2, 3)))  # each image's own mean colour
    assert torch.allclose(mean.std((2, 3)), torch.zeros(2, 3))
    blur = fill_image(x, "blur", window=8)
    assert blur.shape == x.shape
    assert blur.diff(dim=-1).abs().mean() < 0.2 * x.diff(dim=-1).abs().mean()     # detail removed
    assert torch.allclose(blur.mean((2, 3)), x.mean((2, 3)), atol=0.03)          # colour kept
    assert fill_image(x, "blur", window=32).shape == x.shape                      # huge kernel: clamped
    y = occlude(x, 4, 8, window=6, fill="gray")
    assert (y[:, :, 4:10, 8:14] == 0.5).all()
    y[:, :, 4:10, 8:14] = x[:, :, 4:10, 8:14]
    assert torch.equal(y, x)                                 # nothing else touched, x not modified


# ----------------------------------------------------------------------------- batching, probs
def test_batch_equals_single_calls(gapnet, canvases):
    x = canvases.images[:3]
    batch = occlusion(gapnet, x, window=32, stride=32, batch_size=5)     # 4 windows: batches mix images
    single = torch.cat([occlusion(gapnet, x[i:i + 1], window=32, stride=32) for i in range(3)])
    assert torch.allclose(batch, single, atol=1e-6)
    t = occlusion(gapnet, x, target=[1, 2, 3], window=32, stride=32)
    assert torch.allclose(t[1], occlusion(gapnet, x[1], target=2, window=32, stride=32)[0], atol=1e-6)


def test_probs_grid_matches_the_map(gapnet, canvases):
    x = canvases.images[:2]
    p0, grid = occlusion_probs(gapnet, x, window=16, stride=16)
    assert p0.shape == (2, 10) and grid.shape == (2, 4, 4, 10)
    assert torch.allclose(grid.sum(-1), torch.ones(2, 4, 4), atol=1e-5)
    c = p0.argmax(1)
    drops = p0[torch.arange(2), c][:, None, None] - grid[torch.arange(2), :, :, c]   # 2 x 4 x 4
    m = occlusion(gapnet, x, window=16, stride=16)
    expected = drops.repeat_interleave(16, 1).repeat_interleave(16, 2)               # no overlap: blocks
    assert torch.allclose(m, expected, atol=1e-6)


# ----------------------------------------------------------------------------- cleanup
def test_modes_flags_and_hooks_restored():
    b = small_bundle()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        b.model.eval()
        expected_logits = b(x)
    eval_map = occlusion(b, x, window=4, stride=4)
    b.model.train()
    b.model[0].weight.requires_grad_(False)                  # a mix of flags to restore
    train_map = occlusion(b, x, window=4, stride=4)
    assert torch.allclose(train_map, eval_map, atol=1e-6)    # ran in eval mode (batch norm, dropout)
    assert all(m.training for m in b.model.modules())
    assert not b.model[0].weight.requires_grad and b.model[0].bias.requires_grad
    with pytest.raises(ValueError, match="out of range"):    # an error inside: still restored
        occlusion(b, x, target=5, window=4, stride=4)
    assert all(m.training for m in b.model.modules())
    assert not b.model[0].weight.requires_grad and b.model[-1].weight.requires_grad
    assert hooks.count_hooks(b.model) == 0
    assert not eval_map.requires_grad and eval_map.device.type == "cpu"
    b.model.eval()
    with torch.no_grad():
        assert torch.allclose(b(x), expected_logits)


def _live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():            # isinstance on deprecated torch objects warns
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def test_hundred_calls_leave_no_hooks_and_no_tensors():
    b = small_bundle()
    x = torch.rand(2, 3, 16, 16)
    occlusion(b, x, window=8, stride=4, fill="blur")         # warm-up (lazy imports, caches)
    before = _live_tensors()
    for _ in range(100):
        occlusion(b, x, window=8, stride=8, fill="blur")
    assert hooks.count_hooks(b.model) == 0
    assert _live_tensors() <= before


def test_progress_bar_runs(capsys):
    b = small_bundle()
    m = occlusion(b, torch.rand(1, 3, 16, 16), window=4, stride=2, batch_size=10, progress=True)
    assert m.shape == (1, 16, 16)
    assert "occlusion" in capsys.readouterr().err


# ----------------------------------------------------------------------------- errors
def test_bad_arguments_give_clear_errors():
    b = small_bundle()
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(OcclusionSettingsError, match="larger than the 16x16 image"):
        occlusion(b, x, window=20)
    with pytest.raises(OcclusionSettingsError, match="stride must be at least 1"):
        occlusion(b, x, window=4, stride=0)
    with pytest.raises(OcclusionSettingsError, match="larger than the window"):
        occlusion(b, x, window=4, stride=6)
    with pytest.raises(OcclusionSettingsError, match="unknown fill 'grey'.*'gray'"):
        occlusion(b, x, window=4, stride=4, fill="grey")
    with pytest.raises(OcclusionSettingsError, match=r"\[0, 1\]"):
        occlusion(b, x, window=4, stride=4, fill=2.0)
    with pytest.raises(OcclusionSettingsError, match="batch_size"):
        occlusion(b, x, window=4, stride=4, batch_size=0)
    with pytest.raises(OcclusionSettingsError, match="whole pixels"):
        occlusion(b, x, window=4.5, stride=4)
    with pytest.raises(ValueError, match="out of range"):
        occlusion(b, x, target=3, window=4, stride=4)
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        occlusion(b, torch.rand(1, 1, 16, 16), window=4, stride=4)
    assert issubclass(OcclusionSettingsError, CourseError) and issubclass(OcclusionSettingsError, ValueError)
    nocls = Bundle(name="features", model=b.model, classes=None, input_size=16)
    with pytest.raises(NoClassesError):
        occlusion(nocls, x, window=4, stride=4)
    assert hooks.count_hooks(b.model) == 0


# ----------------------------------------------------------------------------- plots and widget
def test_plots_and_widget(canvases):
    b = small_bundle()
    x = torch.rand(2, 3, 16, 16)
    m = occlusion(b, x, window=4, stride=2)
    p0, grid = occlusion_probs(b, x, window=4, stride=2)
    box = torch.tensor([[2, 2, 10, 10]] * 2)
    fig = plot.show_overlays(x, m, boxes=box, peaks=torch.tensor([[3, 4], [5, 6]]), titles=["a", "b"], show=False)
    assert len([ax for ax in fig.axes if ax.images]) == 2 and len(fig.axes[0].patches) == 1
    fig = plot.show_signed_maps(m, titles=["a", "b"], boxes=box, show=False)
    lo, hi = fig.axes[0].images[0].get_clim()
    assert lo == -hi                                         # centred on zero
    fig = plot.show_occlusion(x[0], m[0], 4, 2, occluded=occlude(x[:1], 0, 0, 4)[0], box=box[0], show=False)
    assert len([ax for ax in fig.axes if ax.images]) == 3
    fig = plot.show_occluder_positions(x[0], grid[0], 1, b.classes, 4, 2, box=box[0], show=False)
    assert len([ax for ax in fig.axes if ax.images]) == 3
    assert plot.show_signed_maps(m) is None
    w = widgets.occlusion_explorer(b, x[:1], windows=(4, 8), strides=(2, 4), window=4, stride=2)
    win, stride, fill = w.children[0].children
    assert (win.value, stride.value, fill.value) == (4, 2, "gray")
    fill.value = "blur"
    win.value = 8
    assert hooks.count_hooks(b.model) == 0
    plt.close("all")
