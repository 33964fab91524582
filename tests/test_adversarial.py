"""Adversarial examples and fooling images (lib.synthesis.adversarial)."""
import gc

import pytest
import torch

import lib
from lib import hooks
from lib.models import Bundle
from lib.synthesis import adversarial as A
from lib.synthesis import core

pytestmark = pytest.mark.usefixtures("one_thread")


def _linear(k: int, seed: int = 0) -> Bundle:
    """S(x) = W vec(x) + b on 3 x 8 x 8 images: the gradient of z_t - z_y is w_t - w_y, exactly."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, k)).eval()
    return Bundle(name="linear", model=model, classes=tuple("abcdefgh"[:k]), input_size=8, layers={"default": "1"})


@pytest.fixture(scope="module")
def correct(gapnet, canvases):
    """The first 20 test canvases gapnet classifies correctly, and targets (label + 1) mod 10."""
    idx = A.correctly_classified(gapnet, canvases.images[:60], canvases.labels[:60], 20)
    assert len(idx) == 20
    return canvases.images[idx], canvases.labels[idx], A.next_class(canvases.labels[idx])


def _state(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()])


# ------------------------------------------------------------------------------ FGSM, analytically
@pytest.mark.parametrize("objective", ["margin", "score"])
def test_fgsm_on_a_linear_model_moves_along_sign_of_w_t_minus_w_y(objective):
    """J = z_t - max_{k!=t} z_k: at an image predicted y its gradient is w_t - w_y, so
    x' = clip(x + eps sign(w_t - w_y), 0, 1). With J = z_t the gradient is w_t alone."""
    b = _linear(4)
    x = torch.rand(5, 3, 8, 8, generator=lib.seed(1))
    eps = 0.1
    y = b(x).argmax(1)
    t = (y + 1) % 4
    a = A.fgsm(b, x, t, eps=eps, objective=objective)
    w = b.model[1].weight.detach()
    g = w[t] - w[y] if objective == "margin" else w[t]
    expected = (x + eps * g.sign().view(5, 3, 8, 8)).clamp(0, 1)
    assert ((x + eps * g.sign().view(5, 3, 8, 8)) > 1).any()      # the clamp matters for some pixels
    assert torch.allclose(a.image, expected, atol=1e-6)
    assert a.targeted and torch.equal(a.target, t) and a.budget == 1


def test_fgsm_log_prob_on_two_classes_and_untargeted():
    """With two classes grad log p_t = (1 - p_t)(w_t - w_y): the same sign. Untargeted FGSM ascends
    the cross-entropy of the predicted class y, -log p_y, whose gradient has the same sign too."""
    b = _linear(2, seed=3)
    x = torch.rand(6, 3, 8, 8, generator=lib.seed(2))
    y = b(x).argmax(1)
    w = b.model[1].weight.detach()
    expected = (x + 0.05 * (w[1 - y] - w[y]).sign().view(6, 3, 8, 8)).clamp(0, 1)
    assert torch.allclose(A.fgsm(b, x, 1 - y, eps=0.05).image, expected, atol=1e-6)
    u = A.fgsm(b, x, eps=0.05)                                     # untargeted: away from y
    assert torch.allclose(u.image, expected, atol=1e-6) and not u.targeted and torch.equal(u.target, y)
    assert torch.equal(u.success, u.pred != y)


def test_fgsm_linf_is_eps_where_not_clamped(gapnet, correct):
    x, _, t = correct
    eps = 3 / 255
    d = A.fgsm_direction(gapnet, x, t)
    a = A.fgsm(gapnet, x, t, eps=eps, direction=d)
    free = (x >= eps) & (x <= 1 - eps) & (d != 0)                  # pixels the clip cannot touch
    assert free.float().mean() > 0.5
    assert torch.allclose(a.delta.abs()[free], torch.full_like(a.delta[free], eps), atol=1e-6)
    assert (a.linf <= eps + 1e-6).all() and torch.allclose(a.linf, torch.full((len(x),), eps), atol=1e-6)
    assert a.image.min() >= 0 and a.image.max() <= 1
    assert torch.equal(a.image, A.fgsm(gapnet, x, t, eps=eps).image)      # the direction is the same gradient


# ------------------------------------------------------------------------------ iterative attacks on gapnet
def test_targeted_ascent_flips_95_percent_and_raises_log_p_target(gapnet, correct):
    x, y, t = correct
    a = A.targeted_ascent(gapnet, x, t, steps=30, lr=0.003)
    assert a.success.float().mean() >= 0.95
    assert ((a.steps >= 1) & (a.steps <= 30))[a.success].all() and (a.steps[~a.success] == -1).all()
    lp0 = A._probs(gapnet, x).gather(1, t[:, None]).log()[:, 0]
    lp1 = a.probs.gather(1, t[:, None]).log()[:, 0]
    assert (lp1 > lp0 + 1.0).all()                                  # p_target grew by more than e-fold
    assert torch.allclose(a.probs, A._probs(gapnet, a.image), atol=1e-4)   # the record matches the images
    assert a.image.min() >= 0 and a.image.max() <= 1
    assert (a.linf[a.success] < 16 / 255).all()                     # a small change, not a new image
    assert a.model == "gapnet" and a.passes < 20 * 30               # images left the batch once flipped


def test_iterative_fgsm_stays_in_the_ball_and_beats_one_step(gapnet, correct):
    x, _, t = correct
    eps = 4 / 255
    it = A.iterative_fgsm(gapnet, x, t, eps=eps, steps=5)
    one = A.fgsm(gapnet, x, t, eps=eps)
    assert (it.linf <= eps + 1e-6).all() and it.image.min() >= 0 and it.image.max() <= 1
    assert it.success.float().mean() >= 0.9 and it.success.float().mean() > one.success.float().mean()
    assert ((it.steps >= 1) & (it.steps <= 5))[it.success].all()


def test_first_success_step_is_recorded(gapnet, correct):
    """Without stopping, the step recorded for each image is the first step of its trajectory at
    which the network predicts the target."""
    x, _, t = correct
    x, t = x[:6], t[:6]
    traj = []
    a = A.iterative_fgsm(gapnet, x, t, eps=4 / 255, steps=5, stop_at_success=False, trajectory=traj)
    assert len(traj) == 6 and torch.equal(traj[-1], a.image)
    preds = torch.stack([A._probs(gapnet, im).argmax(1) for im in traj])   # 6 steps x 6 images
    hit = preds == t
    first = torch.where(hit.any(0), hit.float().argmax(0), torch.full_like(t, -1))
    assert torch.equal(a.steps, first)


def test_fooling_images_from_noise_reach_99_percent(gapnet):
    f = A.fooling_images(gapnet, [0, 4, 8], steps=100, lr=0.05, generator=lib.seed(0))
    assert f.success.all() and (f.prob >= 0.99).all() and torch.equal(f.pred, torch.tensor([0, 4, 8]))
    assert f.image.shape == (3, 3, 64, 64) and f.image.min() >= 0 and f.image.max() <= 1
    assert (f.original != f.image).any()


def test_deterministic_under_seed(gapnet, correct):
    x, _, t = correct
    def run():
        g = lib.seed(0)
        return (A.fooling_images(gapnet, [1, 2], steps=5, generator=g).image,
                A.targeted_ascent(gapnet, x[:4], t[:4], steps=3).image)
    (f1, a1), (f2, a2) = run(), run()
    assert torch.equal(f1, f2) and torch.equal(a1, a2)


def test_batch_equals_single_calls(gapnet, correct):
    x, _, t = correct
    batch = A.targeted_ascent(gapnet, x[:3], t[:3], steps=8)
    singles = [A.targeted_ascent(gapnet, x[i:i + 1], t[i:i + 1], steps=8) for i in range(3)]
    assert torch.equal(batch.steps, torch.cat([s.steps for s in singles]))
    assert torch.allclose(batch.image, torch.cat([s.image for s in singles]), atol=1e-4)


# ------------------------------------------------------------------------------ the model is left as found
class _Boom(torch.nn.Module):
    """Runs ``inner`` ``ok`` times, then raises."""

    def __init__(self, inner, ok):
        super().__init__()
        self.inner, self.ok, self.calls = inner, ok, 0

    def forward(self, x):
        self.calls += 1
        if self.calls > self.ok:
            raise RuntimeError("boom")
        return self.inner(x)


def test_model_left_as_found_also_after_an_exception(gapnet, correct):
    x, _, t = correct
    model = gapnet.model
    model.train()
    model.fc.weight.requires_grad_(False)
    try:
        before = _state(model)
        A.fgsm(gapnet, x[:2], t[:2])
        A.iterative_fgsm(gapnet, x[:2], t[:2], steps=2)
        A.targeted_ascent(gapnet, x[:2], t[:2], steps=2)
        A.fooling_images(gapnet, [3], steps=2)
        assert _state(model) == before and hooks.count_hooks(model) == 0
        for ok in (0, 1, 2, 3):                        # fails at the first, second, ... forward pass
            boom = Bundle(name="boom", model=_Boom(model, ok), classes=gapnet.classes, input_size=64)
            if ok < 2:                                 # FGSM: the gradient, then the prediction
                with pytest.raises(RuntimeError, match="boom"):
                    A.fgsm(boom, x[:2], t[:2])
                boom.model.calls = 0
            with pytest.raises(RuntimeError, match="boom"):
                A.iterative_fgsm(boom, x[:2], t[:2], steps=3, stop_at_success=False)
            assert _state(model) == before and hooks.count_hooks(model) == 0
    finally:
        model.fc.weight.requires_grad_(True)
        model.eval()
    assert all(p.requires_grad for p in model.parameters()) and not model.training


def test_repeated_calls_leave_no_hooks_and_no_tensors(gapnet, correct):
    x, _, t = correct
    b = _linear(4)
    xs = torch.rand(2, 3, 8, 8)
    for _ in range(5):
        A.fgsm(b, xs, [1, 2])
        A.iterative_fgsm(b, xs, [1, 2], steps=2)
    gc.collect()
    n = sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects())
    for _ in range(100):
        A.fgsm(b, xs, [1, 2])
        A.iterative_fgsm(b, xs, [1, 2], steps=2)
    gc.collect()
    assert sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects()) <= n
    assert hooks.count_hooks(b.model) == 0 and all(p.requires_grad for p in b.model.parameters())


# ------------------------------------------------------------------------------ errors, helpers, the table
def test_bad_targets_and_inputs_raise_specific_errors(gapnet, correct):
    x, _, _ = correct
    with pytest.raises(A.AttackTargetError, match="out of range"):
        A.fgsm(gapnet, x[:2], 10)
    with pytest.raises(A.AttackTargetError, match="one class per image"):
        A.targeted_ascent(gapnet, x[:3], [1, 2], steps=1)
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        A.fgsm(gapnet, x[0], 1)
    with pytest.raises(ValueError, match="'margin'"):
        A.iterative_fgsm(gapnet, x[:1], 1, objective="hinge")
    assert issubclass(A.AttackTargetError, lib.errors.CourseError)
    hed_like = Bundle(name="features only", model=torch.nn.Identity(), classes=None)
    with pytest.raises(lib.errors.NoClassesError):
        A.fgsm(hed_like, x[:1], 1)


def test_targets_objectives_and_table(gapnet, correct):
    x, y, t = correct
    assert torch.equal(A.next_class(torch.tensor([0, 9])), torch.tensor([1, 0]))
    ll = A.least_likely(gapnet, x[:4])
    assert torch.equal(ll, A._probs(gapnet, x[:4]).argmin(1))
    # the margin objective is positive exactly when the network predicts the target
    m = A.adversarial_objective(t[:4], "margin")(gapnet, x[:4])
    assert (m < 0).all()
    assert (A.adversarial_objective(y[:4], "margin")(gapnet, x[:4]) > 0).all()
    # and it plugs into the shared loop
    r = core.optimize(gapnet, A.adversarial_objective(t[:2], "margin"), core.PixelImage(x[:2]), steps=5, lr=0.01,
                      progress=False)
    assert (r.end > r.start).all()
    a = A.iterative_fgsm(gapnet, x[:4], t[:4], steps=3)
    assert len(a[1:3]) == 2 and torch.equal(a[1:3].image, a.image[1:3])
    s = a.summary()
    assert s["n"] == 4 and 0 <= s["success"] <= 1
    table = A.attack_table({"iterative FGSM": a}, note="a note")
    assert "iterative FGSM" in table and "gapnet" in table and table.endswith("a note")
