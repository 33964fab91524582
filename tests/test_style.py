"""Style transfer by optimisation (lib.synthesis.style)."""
import pytest
import torch

from lib import hooks, images
from lib.data import DATA_DIR
from lib.synthesis import style as ST


@pytest.fixture(scope="module")
def hed():
    from lib import models
    return models.load("vgg16-hed", device="cpu")


@pytest.fixture(scope="module")
def pair():
    return (images.load(DATA_DIR / "images" / "chelsea.jpg", size=40),
            images.load(DATA_DIR / "images" / "starry_night.jpg", size=40))


def test_style_transfer_lowers_style_loss_and_keeps_content(hed, pair):
    content, style = pair
    start = ST.style_transfer(hed, content, style, steps=0, progress=False).parts
    r = ST.style_transfer(hed, content, style, steps=25, progress=False)
    assert start["content"].item() == 0   # it starts from the photo
    assert r.parts["style"].item() < start["style"].item() / 3
    assert r.parts["content"].item() < 1.0   # the relative content error stays bounded
    assert r.image.shape == content.shape and 0 <= r.image.min() and r.image.max() <= 1
    assert not hed.model.training and all(p.requires_grad for p in hed.model.parameters())
    assert hooks.count_hooks(hed.model) == 0


def test_luminance_only_transfer_keeps_the_photo_chroma(hed, pair):
    content, style = pair
    r = ST.style_transfer(hed, content, style, steps=5, colour="luminance", progress=False)
    yiq = lambda x: torch.einsum("dc,nchw->ndhw", ST._YIQ, x)
    inside = (r.image > 0.02).all(1) & (r.image < 0.98).all(1)   # clamping changes chroma at the bounds
    assert torch.allclose(yiq(r.image)[:, 1:][:, :, inside[0]], yiq(content)[:, 1:][:, :, inside[0]], atol=1e-3)


def test_luminance_roundtrip_and_histogram_matching(pair):
    content, style = pair
    assert torch.allclose(ST.with_luminance(content, content), content, atol=1e-5)
    gray = ST.luminance(content)
    assert gray.shape == content.shape and torch.equal(gray[:, 0], gray[:, 2])
    matched = ST.match_colours(style, content)
    for c in range(3):   # each channel now has the photo's median
        assert abs(matched[0, c].median() - content[0, c].median()) < 0.02


def test_bad_colour_option(hed, pair):
    with pytest.raises(ValueError, match="luminance"):
        ST.style_transfer(hed, *pair, colour="lab", steps=1, progress=False)


def test_transfer_losses_agree_with_style_transfer(hed, pair):
    content, style = pair
    r = ST.style_transfer(hed, content, style, steps=3, progress=False)
    parts = ST.transfer_losses(hed, r.image, content, style)
    assert parts["content"] == pytest.approx(r.parts["content"].item(), rel=1e-4)
    assert parts["style"] == pytest.approx(r.parts["style"].item(), rel=1e-4)
    assert ST.transfer_losses(hed, content, content, style)["content"] == 0


def test_style_explorer_uses_the_precomputed_default_and_caches(hed, pair, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lib import widgets
    content, style = pair
    calls = []
    orig = ST.style_transfer

    def counting(bundle, c, s, **kw):
        calls.append((kw["style_weight"], kw["style_size"]))
        return orig(bundle, c, s, **kw)

    monkeypatch.setattr(ST, "style_transfer", counting)
    done = orig(hed, content, style, style_weight=10, style_size=80, steps=2, progress=False)
    w = widgets.style_explorer(hed, content, {"starry": style}, weights=(1.0, 10.0), style_sizes=(40, 80), steps=2,
                               done={("starry", 10.0, 80): done})
    _, weight, size = w.children[0].children
    assert calls == []                                          # the default setting was given
    weight.value = 1.0
    assert calls == [(1.0, 80)]
    size.value = 40
    weight.value = 10.0
    assert calls == [(1.0, 80), (1.0, 40), (10.0, 40)]
    size.value = 80                                             # back to the default: no compute
    assert len(calls) == 3
    assert hooks.count_hooks(hed.model) == 0
    plt.close("all")
