"""lib.synthesis.dream: DeepDream (octave pyramid over core.optimize) and the guided objective."""
import pytest
import torch

import lib
from lib import hooks, images, models
from lib.synthesis import core
from lib.synthesis.dream import Dream, deepdream, guided_objective, octave_sizes

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def photo():
    """chelsea at 48 x 64: non-square, small enough for many dreams."""
    return images.load("data/images/chelsea.jpg", size=(48, 64))


@pytest.fixture(scope="module")
def photos():
    return {n: images.load(f"data/images/{n}.jpg", size=(64, 64)) for n in ("chelsea", "coffee", "astronaut",
                                                                              "grace_hopper")}


@pytest.fixture(scope="module")
def hed():
    return models.load("vgg16-hed", device="cpu")


def test_octave_sizes():
    assert octave_sizes((128, 192), 3, 1.4) == [(65, 98), (91, 137), (128, 192)]
    assert octave_sizes((48, 64), 1) == [(48, 64)]
    assert octave_sizes((32, 32), 5, 2.0) == [(16, 16), (32, 32)]       # levels under 16 px are dropped
    with pytest.raises(ValueError, match="at least 1"):
        octave_sizes((32, 32), 0)
    with pytest.raises(ValueError, match="larger than 1"):
        octave_sizes((32, 32), 3, 1.0)


@pytest.mark.parametrize("objective, factor", [("features.13", 5.0), (core.channel("features.13", 5), 2.0)])
def test_dream_raises_objective_keeps_range_and_size(gapnet, photo, objective, factor):
    x = torch.cat([photo, photo.flip(-1)])                              # a batch of 2, 48 x 64
    r = deepdream(gapnet, x, objective, octaves=3, steps=10, step_size=0.01)
    assert isinstance(r, Dream) and isinstance(r, core.Optimized)
    assert r.image.shape == x.shape and r.image.min() >= 0 and r.image.max() <= 1
    assert (r.end > factor * r.start).all(), (r.start, r.end)
    assert [o.size for o in r.octaves] == [(24, 33), (34, 46), (48, 64)]
    assert [tuple(o.image.shape[-2:]) for o in r.octaves] == [(24, 33), (34, 46), (48, 64)]
    assert len(r.history) == 30 and r.model == "gapnet" and r.settings["octaves"] == 3
    assert torch.equal(r.end, r.octaves[-1].end)


def test_dream_of_a_class_score_on_a_canvas(gapnet, canvases):
    x = canvases.images[:2]
    target = 3
    r = deepdream(gapnet, x, core.class_score(target), octaves=3, steps=10, step_size=0.01)
    assert (r.end > r.start + 5).all()
    assert (gapnet.predict(r.image).argmax(1) == target).all()


def test_vgg16_hed_layer_energy(hed, photo):
    r = deepdream(hed, photo, "conv4_3", octaves=3, steps=5, step_size=0.01)
    assert r.objective == "mean(conv4_3^2)"
    assert r.image.shape == photo.shape and 0 <= r.image.min() and r.image.max() <= 1
    assert r.gain.item() > 5


def test_one_octave_is_one_optimize_call(gapnet, photo):
    obj = core.layer_energy("features.13")
    d = deepdream(gapnet, photo, obj, octaves=1, steps=6, step_size=0.02, jitter=3, seed=5)
    o = core.optimize(gapnet, obj, core.PixelImage(photo), steps=6, lr=0.02, optimizer="normalized",
                      transforms=[core.Jitter(3)], seed=5, progress=False)
    assert torch.equal(d.image, o.image)
    assert torch.equal(d.start, o.start) and torch.equal(d.end, o.end) and d.history == o.history


def test_only_the_detail_is_carried_between_octaves(gapnet, photo):
    """An objective with zero gradient changes nothing at any octave: the detail stays zero, so the
    dream is the photo itself, not an upsampled copy of the smallest octave (which would be blurred)."""
    flat = core.Objective(lambda b, x: (x * 0).flatten(1).sum(1), "flat")
    r = deepdream(gapnet, photo, flat, octaves=4, steps=3)
    assert torch.equal(r.image, photo)
    assert not torch.allclose(images.resize(r.octaves[0].image, (48, 64)), photo, atol=0.01)


def test_deterministic_under_seed(gapnet, photo):
    def run():
        lib.seed(0)
        return deepdream(gapnet, photo, "features.13", octaves=3, steps=4, step_size=0.01).image
    assert torch.equal(run(), run())
    other = deepdream(gapnet, photo, "features.13", octaves=3, steps=4, step_size=0.01, seed=1).image
    assert not torch.equal(run(), other)                                # the seed drives the jitter


def test_model_left_as_found(gapnet, photo):
    model = gapnet.model
    model.train()
    params = list(model.parameters())
    params[0].requires_grad_(False)
    flags = [p.requires_grad for p in params]
    try:
        deepdream(gapnet, photo, "features.13", octaves=2, steps=2)
        assert model.training and all(m.training for m in model.modules())
        assert [p.requires_grad for p in params] == flags and hooks.count_hooks(model) == 0
        calls = []

        def fail(b, x):
            calls.append(1)
            core.activation(b, "features.6", x)                          # hooks in place when it fails
            if len(calls) > 4:                                           # inside the second octave
                raise RuntimeError("boom")
            return core.activation(b, "features.6", x).flatten(1).mean(1)
        with pytest.raises(RuntimeError, match="boom"):
            deepdream(gapnet, photo, core.Objective(fail, "fail"), octaves=3, steps=2)
        assert model.training and [p.requires_grad for p in params] == flags and hooks.count_hooks(model) == 0
    finally:
        model.eval()
        params[0].requires_grad_(True)


def test_bad_input(gapnet, photo):
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        deepdream(gapnet, photo[0], "features.13")
    with pytest.raises(ValueError, match="steps"):
        deepdream(gapnet, photo, "features.13", steps=0)


@pytest.mark.parametrize("bundle_name, layer", [("gapnet", "features.13"), ("hed", "conv4_3")])
def test_guided_objective_prefers_the_guide(request, photos, bundle_name, layer):
    bundle = request.getfixturevalue(bundle_name)
    for name, guide in photos.items():
        obj = guided_objective(bundle, layer, guide)
        with torch.no_grad():
            values = {n: obj(bundle, x).item() for n, x in photos.items()}
        assert values[name] == pytest.approx(1.0, abs=1e-4)            # cosine with itself: the maximum
        others = max(v for n, v in values.items() if n != name)
        assert values[name] > others + 0.05, (name, values)


def test_guided_dream_moves_towards_the_guide(gapnet, photos):
    x, guide = photos["chelsea"], photos["coffee"]
    obj = guided_objective(gapnet, "features.13", guide)
    r = deepdream(gapnet, x, obj, octaves=3, steps=10, step_size=0.01)
    assert 1 - r.end.item() < 0.9 * (1 - r.start.item())               # a tenth of the way to the guide's 1, at least
    raw = guided_objective(gapnet, "features.13", guide, normalize=False)
    assert "dot product" in raw.name
    with torch.no_grad():
        assert raw(gapnet, x).shape == (1,)
