"""The ipywidgets the chapters use. Each computes once up front, so moving a slider only redraws.

In the published book the widgets render but do not compute (there is no kernel); the static
figure of the default setting sits under each one. In JupyterLab or Colab they are live.
"""
from __future__ import annotations

from typing import Sequence

import torch

from . import plot
from .features import activations

__all__ = ["activation_explorer", "LIVE_NOTE"]

LIVE_NOTE = ("The controls compute live in JupyterLab or Colab. On the book's web page there is no Python "
             "behind them: they show the stored default setting only.")


def _panel(children: list):
    """The widget panel every explorer returns: its controls and output, then a one-line note that
    they compute live only where a kernel runs (the published book stores the widgets' state)."""
    import ipywidgets as W

    note = W.HTML(f"<small><i>{LIVE_NOTE}</i></small>")
    return W.VBox([*children, note])


def activation_explorer(bundle, x: torch.Tensor, layers: Sequence[str], size: float = 2.4):
    """Layer dropdown + channel slider showing one activation map of image ``x`` (1 x 3 x H x W).

    Returns the widget (display it as a cell's last expression).
    """
    import ipywidgets as W

    acts = activations(bundle, x[:1], list(layers))
    layer = W.Dropdown(options=list(layers), value=layers[0], description="layer")
    channel = W.IntSlider(value=0, min=0, max=acts[layers[0]].shape[1] - 1, description="channel",
                          continuous_update=False)

    def on_layer(change):
        channel.max = acts[change["new"]].shape[1] - 1

    layer.observe(on_layer, names="value")

    def draw(layer: str, channel: int):
        a = acts[layer][0, channel]
        plot.show_maps(x[0], a[None], titles=[f"{layer}, channel {channel} ({a.shape[0]}x{a.shape[1]})"],
                       ncols=2, size=size, suptitle=bundle.name)

    out = W.interactive_output(draw, {"layer": layer, "channel": channel})
    return _panel([W.HBox([layer, channel]), out])


# --------------------------------------------------------------------------- chapter 04: occlusion
__all__ += ["occlusion_explorer"]


def occlusion_explorer(bundle, x: torch.Tensor, target: int | None = None, box=None,
                       windows: Sequence[int] = (8, 12, 16, 24), strides: Sequence[int] = (2, 4, 8),
                       fills: Sequence = ("gray", "mean", "blur", 0.0), window: int = 16, stride: int = 8,
                       fill="gray", size: float = 2.4):
    """Window, stride and fill menus for the occlusion map of one image ``x`` (1 x 3 x H x W).

    Every setting costs ``occlusion_passes`` forward passes, too many to precompute all of them
    on a CPU, so each map is computed the first time it is asked for and kept: going back to a
    setting only redraws. Only the default setting is computed when the widget is made. Settings
    with a stride larger than the window are refused with a note (they leave pixels unoccluded).
    """
    import time

    import ipywidgets as W

    from .attribution.occlusion import occlude, occlusion, occlusion_passes

    x = x[:1]
    if target is None:
        with torch.no_grad():
            target = int(bundle(x).argmax(1)[0])
    name = bundle.classes[target] if bundle.classes else str(target)
    cache: dict = {}

    def compute(win, st, fl):
        if (win, st, fl) not in cache:
            t0 = time.perf_counter()
            m = occlusion(bundle, x, target=target, window=win, stride=st, fill=fl)[0]
            cache[win, st, fl] = (m, time.perf_counter() - t0)
        return cache[win, st, fl]

    w_win = W.Dropdown(options=list(windows), value=window, description="window")
    w_st = W.Dropdown(options=list(strides), value=stride, description="stride")
    labels = {"gray": "gray (0.5)", "mean": "image mean", "blur": "blurred image"}
    w_fill = W.Dropdown(options=[(labels.get(f, f"constant {f}") if isinstance(f, str) else f"constant {f}", f)
                                 for f in fills], value=fill, description="fill")
    compute(window, stride, fill)

    def draw(win, st, fl):
        if st > win:
            print(f"stride {st} > window {win}: some pixels would never be occluded; pick a smaller stride")
            return
        m, dt = compute(win, st, fl)
        n = occlusion_passes(x, win, st)
        print(f"{n} occluded copies + 1 forward passes, computed in {dt:.2f} s; max drop {float(m.max()):.3f}")
        plot.show_occlusion(x[0], m, win, st, occluded=occlude(x, 0, 0, win, fl)[0], box=box, size=size,
                            title=f"{bundle.name}: occlusion map for '{name}' (fill {fl})")

    out = W.interactive_output(draw, {"win": w_win, "st": w_st, "fl": w_fill})
    return _panel([W.HBox([w_win, w_st, w_fill]), out])


# --------------------------------------------------------------------------- chapter 03: max-activating patches
def patch_explorer(bundle, images: torch.Tensor, tops: dict, layer: str | None = None, channel: int = 0,
                   pad_value: float = 0.5, size: float = 1.2):
    """Layer dropdown + channel slider showing a channel's maximally activating patches and where
    they come from (the images with each unit's receptive field boxed).

    ``tops``: {layer: TopActivations over several channels} from ``features.top_activations`` on
    ``images``. All patches and boxes are cropped up front, so moving the slider only redraws.
    ``layer``/``channel``: the setting shown first (``channel`` indexes the searched channels).
    """
    import ipywidgets as W

    from .features import crop_patches, receptive_field

    layers = list(tops)
    rfs = {layer: receptive_field(bundle, layer) for layer in layers}
    patches = {layer: crop_patches(images, rfs[layer], t.indices, t.positions, pad_value) for layer, t in tops.items()}
    boxes = {layer: rfs[layer].boxes(t.positions, images.shape[-2:]).view(*t.indices.shape, 4)
             for layer, t in tops.items()}
    first = layer or layers[0]
    layer = W.Dropdown(options=layers, value=first, description="layer")
    channel = W.IntSlider(value=channel, min=0, max=len(tops[first].channels) - 1, description="channel",
                          continuous_update=False)

    def on_layer(change):
        channel.max = len(tops[change["new"]].channels) - 1

    layer.observe(on_layer, names="value")

    def draw(layer: str, channel: int):
        t, rf = tops[layer], rfs[layer]
        plot.show_top_units(patches[layer][channel], images[t.indices[channel]], boxes[layer][channel],
                            titles=[f"{v:.2f}" for v in t.values[channel].tolist()], size=size,
                            image_titles=[f"image {i}" for i in t.indices[channel].tolist()],
                            suptitle=f"{bundle.name}, {layer}, channel {t.channels[channel]}: top {t.indices.shape[1]} of "
                                     f"{t.n_images} images, receptive field {rf.size[0]} px")

    out = W.interactive_output(draw, {"layer": layer, "channel": channel})
    return _panel([W.HBox([layer, channel]), out])


__all__ += ["patch_explorer"]


# --------------------------------------------------------------------------- chapter 07: CAM
__all__ += ["cam_explorer"]


def cam_explorer(bundle, x: torch.Tensor, boxes: torch.Tensor | None = None, size: float = 2.4):
    """Image slider + class menu showing the CAM of any class for images ``x`` (N x 3 x H x W).

    The maps of every class (``lib.attribution.cam``, not upsampled) and the logits are computed
    up front; moving a control only redraws. Under the panels: the class score y^c next to the
    spatial mean of M_c plus the bias, which are equal for a GAP -> linear head.
    """
    import ipywidgets as W

    from .attribution.cam import cam_all, gap_head

    classes = bundle.require_classes("cam_explorer")
    bias = gap_head(bundle.model).bias
    bias = torch.zeros(len(classes)) if bias is None else bias.detach().cpu()
    with torch.no_grad():
        logits = bundle(x).cpu()
    probs = logits.softmax(1)
    maps = cam_all(bundle, x)                                          # N x C x h x w, every class
    image = W.IntSlider(value=0, min=0, max=len(x) - 1, description="image", continuous_update=False)
    cls = W.Dropdown(options=[(name, c) for c, name in enumerate(classes)], value=int(logits[0].argmax()),
                     description="class")

    def draw(image: int, cls: int):
        m = maps[image, cls]
        rank = int((logits[image] > logits[image, cls]).sum()) + 1
        note = (f"score $y^c$ = {logits[image, cls]:.3f};   mean of $M_c$ = {m.mean():.3f}, $b^c$ = {bias[cls]:.3f},"
                f" sum = {m.mean() + bias[cls]:.3f}")
        plot.show_cam(x[image], m, box=None if boxes is None else boxes[image], note=note, size=size,
                      title=f"{bundle.name}: CAM of '{classes[cls]}' (rank {rank}, p = {probs[image, cls]:.2f})")

    out = W.interactive_output(draw, {"image": image, "cls": cls})
    return _panel([W.HBox([image, cls]), out])


# --------------------------------------------------------------------------- chapter 02: feature space
__all__ += ["neighbour_explorer"]


def neighbour_explorer(images: torch.Tensor, labels: torch.Tensor, neighbours: dict[str, torch.Tensor],
                       class_names: Sequence[str], query: int = 0, size: float = 1.3):
    """A slider over the canvases: the chosen query beside its nearest neighbours in each space.

    ``neighbours``: {space name: N x k indices}, the neighbours of *every* image, computed up front
    (``features.nearest_neighbours(x, k)``), so moving the slider only redraws.
    Returns the widget (display it as a cell's last expression).
    """
    import ipywidgets as W

    n = len(images)
    for name, idx in neighbours.items():
        if len(idx) != n:
            raise ValueError(f"neighbours[{name!r}] has {len(idx)} rows, one per image is needed ({n}): "
                             f"compute them for all images with features.nearest_neighbours(x, k)")
    slider = W.IntSlider(value=query, min=0, max=n - 1, description="canvas", continuous_update=False)

    def draw(i: int):
        plot.show_neighbours(images, labels, [i], {name: idx[[i]] for name, idx in neighbours.items()},
                             class_names, size=size, suptitle=f"canvas {i}: {class_names[int(labels[i])]}")

    out = W.interactive_output(draw, {"i": slider})
    return _panel([slider, out])


# --------------------------------------------------------------------------- chapter 05: SmoothGrad
__all__ += ["smoothgrad_explorer"]


def smoothgrad_explorer(bundle, x: torch.Tensor, noises: Sequence[float] = (0.05, 0.1, 0.15, 0.25, 0.4),
                        samples: Sequence[int] = (1, 5, 10, 25), target=None,
                        maps: dict[float, dict[int, torch.Tensor]] | None = None, size: float = 2.2):
    """Noise-level and sample-count sliders showing SmoothGrad of image ``x`` (1 x 3 x H x W) beside
    its vanilla saliency map.

    Every setting is computed up front (``attribution.smoothgrad_steps``, one pass per noise level),
    unless ``maps`` = {noise: {samples: 1 x H x W}} already holds them; moving a slider only redraws.
    Returns the widget (display it as a cell's last expression).
    """
    import ipywidgets as W

    from .attribution.saliency import saliency, smoothgrad_steps

    x = x[:1]
    if maps is None:
        maps = {nz: smoothgrad_steps(bundle, x, target, noise=nz, samples=tuple(samples)) for nz in noises}
    noises, samples = sorted(maps), sorted(next(iter(maps.values())))
    plain = saliency(bundle, x, target)[0]
    default_noise = min(noises, key=lambda v: abs(v - 0.15))
    noise = W.SelectionSlider(options=noises, value=default_noise, description="noise",
                              continuous_update=False)
    count = W.SelectionSlider(options=samples, value=samples[-1], description="samples",
                              continuous_update=False)

    def draw(noise: float, count: int):
        plot.show_maps(x[0], torch.stack([plain, maps[noise][count][0]]), ncols=3, size=size,
                       titles=["saliency (no noise)", f"SmoothGrad: noise {noise:g}, {count} samples"],
                       cmap="gray", suptitle=bundle.name)

    out = W.interactive_output(draw, {"noise": noise, "count": count})
    return _panel([W.HBox([noise, count]), out])


# --------------------------------------------------------------------------- chapters 06 and 08: guided backprop, Grad-CAM
__all__ += ["guided_explorer", "gradcam_explorer"]


def guided_explorer(bundle, x: torch.Tensor, layers: Sequence[str], layer: str | None = None,
                    channel: int | None = None, size: float = 2.2):
    """Layer menu + channel slider: the gradient image of one unit under each ReLU rule (vanilla,
    guided, deconvnet) for image ``x`` (1 x 3 x H x W).

    Starts at ``layer`` (default: the last of ``layers``) and ``channel`` (default: its most active
    channel). The unit is the channel's strongest activation (``guided_backprop(..., reduce='max')``). Every
    channel of every layer up front would take minutes, so each (layer, channel) is computed the
    first time it is shown (three backward passes) and cached: going back to it only redraws.
    """
    import ipywidgets as W

    from .attribution.guided import RULES, gradient_image, guided_backprop

    x = x[:1]
    acts = activations(bundle, x, list(layers))
    cache: dict = {}
    start = layer if layer is not None else layers[-1]
    if channel is None:
        channel = int(acts[start][0].flatten(1).amax(1).argmax())
    layer = W.Dropdown(options=list(layers), value=start, description="layer")
    channel = W.IntSlider(value=channel, min=0, max=acts[start].shape[1] - 1, description="channel",
                          continuous_update=False)
    layer.observe(lambda change: setattr(channel, "max", acts[change["new"]].shape[1] - 1), names="value")

    def draw(layer: str, channel: int):
        if (layer, channel) not in cache:
            cache[layer, channel] = torch.cat([gradient_image(guided_backprop(bundle, x, layer=layer, channel=channel,
                                                                               rule=rule)) for rule in RULES])
        a = acts[layer][0, channel]
        plot.show_images(torch.cat([x.cpu(), cache[layer, channel]]), ["input", *RULES], ncols=4, size=size,
                         suptitle=f"{bundle.name}: {layer}, channel {channel}, its strongest activation "
                                  f"({float(a.max()):.2f}" + (", inactive)" if float(a.max()) <= 0 else ")"))

    out = W.interactive_output(draw, {"layer": layer, "channel": channel})
    return _panel([W.HBox([layer, channel]), out])


def gradcam_explorer(bundle, x: torch.Tensor, layers: Sequence[str], boxes: torch.Tensor | None = None,
                     size: float = 1.6):
    """Layer menu + class menu: Grad-CAM of images ``x`` (N x 3 x H x W) at one layer for one class
    ("predicted" = each image's own top class), over the images and at the layer's own resolution.

    Grad-CAM for all ``layers`` comes from one forward/backward pass per class
    (``attribution.grad_cam_layers``), computed the first time a class is chosen and cached.
    """
    import ipywidgets as W

    from .attribution.gradcam import grad_cam_layers
    from .images import overlay

    classes = bundle.require_classes("gradcam_explorer")
    with torch.no_grad():
        probs = bundle(x).softmax(1).cpu()
    cache: dict = {}
    layer = W.Dropdown(options=list(layers), value=layers[-1], description="layer")
    cls = W.Dropdown(options=[("predicted", -1)] + [(name, c) for c, name in enumerate(classes)], value=-1,
                     description="class")

    def draw(layer: str, cls: int):
        target = probs.argmax(1) if cls < 0 else torch.full((len(x),), cls)
        if cls not in cache:
            cache[cls] = grad_cam_layers(bundle, x, list(layers), target=target, upsample=False)
        maps = cache[cls][layer]
        h, w = maps.shape[-2:]
        titles = [f"{classes[t]} (p={probs[i, t]:.2f})" for i, t in enumerate(target.tolist())]
        plot.show_image_rows({"over the image": overlay(x.cpu(), maps), f"at the layer ({h}x{w})": maps},
                             titles={"over the image": titles}, boxes=boxes, size=size,
                             suptitle=f"{bundle.name}: Grad-CAM at {layer}")

    out = W.interactive_output(draw, {"layer": layer, "cls": cls})
    return _panel([W.HBox([layer, cls]), out])


# --------------------------------------------------------------------------- chapter 09: evaluation
__all__ += ["threshold_explorer"]


def threshold_explorer(images: torch.Tensor, maps: dict[str, torch.Tensor], boxes: torch.Tensor, size: float = 2.6):
    """Method menu, canvas slider and threshold slider: the box of the largest connected component of
    the map above ``fraction * max`` (red) against the ground-truth box (lime), with their IoU.

    ``maps``: {method: N x H x W} precomputed for ``images`` (N x 3 x H x W), so moving a slider only
    thresholds and redraws."""
    import ipywidgets as W

    from .metrics import box_iou, threshold_box

    method = W.Dropdown(options=list(maps), value=next(iter(maps)), description="method")
    index = W.IntSlider(value=0, min=0, max=len(images) - 1, description="canvas", continuous_update=False)
    fraction = W.FloatSlider(value=0.2, min=0.05, max=0.95, step=0.05, description="fraction",
                             continuous_update=False)

    def draw(method: str, index: int, fraction: float):
        m = maps[method][index:index + 1]
        found = threshold_box(m, fraction)
        iou = box_iou(found, boxes[index:index + 1]).item()
        plot.show_localisation(images[index:index + 1], {method: m, f">= {fraction:.2f} max": m >= fraction * m.max()},
                               truth=boxes[index:index + 1], found=found, size=size,
                               suptitle=f"IoU with the true box: {iou:.2f} ({'hit' if iou >= 0.5 else 'miss'} at 0.5)")

    out = W.interactive_output(draw, {"method": method, "index": index, "fraction": fraction})
    return _panel([W.HBox([method, index, fraction]), out])


# --------------------------------------------------------------------------- chapter 11: adversarial examples
__all__ += ["attack_explorer"]


def attack_explorer(bundle, x: torch.Tensor, target: int | None = None,
                    epsilons: Sequence[float] = (1 / 255, 2 / 255, 4 / 255, 8 / 255), eps: float = 4 / 255,
                    steps: int = 4, size: float = 1.8):
    """Method (FGSM or iterative FGSM), target class, eps and step sliders for one image ``x``
    (1 x 3 x H x W): the original, its change (magnified) and the result, with the predictions.

    FGSM's direction towards every other class is one gradient for the batch, computed up front.
    Per eps, an iterative-FGSM run towards every class at once (alpha = 1.25 eps / steps, not
    stopped at success), kept after each step, is computed the first time that eps is shown and
    cached, so only the default eps costs anything when the widget is made; moving the target or
    step slider only redraws.
    """
    import ipywidgets as W

    from .synthesis.adversarial import _probs, fgsm_direction, iterative_fgsm

    names = bundle.require_classes("attack_explorer")
    x = x[:1].detach().cpu().float()
    p0 = _probs(bundle, x)[0]
    pred = int(p0.argmax())
    targets = [c for c in range(len(names)) if c != pred]
    tt = torch.tensor(targets)
    xs = x.expand(len(targets), -1, -1, -1).contiguous()
    direction = fgsm_direction(bundle, xs, tt)
    results: dict = {}

    def compute(e: float) -> None:
        if ("FGSM", e) in results:
            return
        adv = (xs + e * direction).clamp(0, 1)
        results["FGSM", e] = (adv[None], _probs(bundle, adv)[None])
        traj: list = []
        iterative_fgsm(bundle, xs, tt, eps=e, steps=steps, stop_at_success=False, trajectory=traj)
        traj_t = torch.stack(traj[1:])                                       # steps x T x 3 x H x W
        probs = _probs(bundle, traj_t.flatten(0, 1)).view(steps, len(targets), -1)
        results["iterative FGSM", e] = (traj_t, probs)

    w_method = W.ToggleButtons(options=["FGSM", "iterative FGSM"], value="iterative FGSM", description="method")
    w_target = W.Dropdown(options=[(names[c], c) for c in targets],
                          value=target if target in targets else targets[0], description="target")
    w_eps = W.SelectionSlider(options=[(f"{255 * e:g}/255", e) for e in epsilons],
                              value=min(epsilons, key=lambda e: abs(e - eps)), description="eps",
                              continuous_update=False)
    w_step = W.IntSlider(value=steps, min=1, max=steps, description="steps", continuous_update=False)
    w_method.observe(lambda change: setattr(w_step, "disabled", change["new"] == "FGSM"), names="value")
    compute(w_eps.value)

    def draw(method: str, target: int, eps: float, step: int):
        compute(eps)
        j = targets.index(target)
        images, probs = results[method, eps]
        k = 0 if method == "FGSM" else step - 1
        adv, p = images[k, j:j + 1], probs[k, j]
        q = int(p.argmax())
        label = method if method == "FGSM" else f"{method}, {step} step{'s' if step > 1 else ''}"
        d = (adv - x).flatten()
        print(f"p({names[target]}): {p0[target]:.3f} -> {p[target]:.3f};  predicted: {names[q]} ({p[q]:.2f})"
              f"{'  = the target' if q == target else ''};  change: Linf {255 * float(d.abs().max()):.1f}/255, "
              f"L2 {float(d.norm()):.3f}")
        plot.show_adversarial(x, {label: adv}, size=size,
                              titles={"original": [f"{names[pred]} {p0[pred]:.2f}"], label: [f"{names[q]} {p[q]:.2f}"]},
                              suptitle=f"{bundle.name}: towards '{names[target]}', eps {255 * eps:g}/255")

    out = W.interactive_output(draw, {"method": w_method, "target": w_target, "eps": w_eps, "step": w_step})
    return _panel([W.HBox([w_method, w_target]), W.HBox([w_eps, w_step]), out])


# --------------------------------------------------------------------------- chapter 13: DeepDream
__all__ += ["dream_explorer"]


def dream_explorer(bundle, image: torch.Tensor, layers: Sequence[str], layer: str | None = None, octaves: int = 4,
                   steps: int = 10, step_size: float = 0.002,
                   step_sizes: Sequence[float] = (0.001, 0.002, 0.003, 0.005, 0.01, 0.015, 0.02),
                   known: Sequence = (),
                   model_name: str | None = None, size: float = 3.2):
    """Layer menu and octaves, steps and step-size sliders dreaming ``image`` (1 x 3 x H x W) with
    ``lib.synthesis.dream.deepdream`` on mean(A^2) of the chosen layer.

    A dream costs seconds, too much to precompute every setting on a CPU: each setting is computed
    when the sliders stop (``continuous_update=False``) and kept, so going back to it only redraws.
    ``known``: ``Dream`` records already computed (e.g. the default setting, made earlier in the
    notebook), used instead of computing them again.
    """
    import ipywidgets as W

    from .synthesis.core import layer_energy
    from .synthesis.dream import deepdream

    x = image[:1]
    cache = {(d.objective, d.settings["octaves"], d.settings["steps"], d.settings["step_size"]): d for d in known}

    def compute(lay, n_oct, n_steps, ss):
        key = (layer_energy(lay).name, n_oct, n_steps, ss)
        if key not in cache:
            cache[key] = deepdream(bundle, x, lay, octaves=n_oct, steps=n_steps, step_size=ss)
        return cache[key]

    if step_size not in step_sizes:
        step_sizes = sorted({*step_sizes, step_size})
    w_layer = W.Dropdown(options=list(layers), value=layer or layers[0], description="layer")
    w_oct = W.IntSlider(value=octaves, min=1, max=6, description="octaves", continuous_update=False)
    w_steps = W.IntSlider(value=steps, min=2, max=30, step=2 if steps % 2 == 0 else 1, description="steps",
                          continuous_update=False)
    w_ss = W.SelectionSlider(options=list(step_sizes), value=step_size, description="step size",
                             continuous_update=False)

    def draw(lay, n_oct, n_steps, ss):
        d = compute(lay, n_oct, n_steps, ss)
        print(f"{d.objective}: {float(d.start[0]):.3g} -> {float(d.end[0]):.3g} (x{float(d.gain[0]):.1f}), "
              f"{len(d.octaves)} octaves x {n_steps} steps in {d.seconds:.1f} s")
        plot.show_dreams(x, [d], labels=[f"{lay}, {n_oct} octaves, {n_steps} steps of {ss:g}"], size=size,
                         suptitle=f"DeepDream with {model_name or bundle.name}")

    out = W.interactive_output(draw, {"lay": w_layer, "n_oct": w_oct, "n_steps": w_steps, "ss": w_ss})
    return _panel([W.HBox([w_layer, w_oct]), W.HBox([w_steps, w_ss]), out])


# --------------------------------------------------------------------------- chapter 10: class models
__all__ += ["regulariser_explorer"]


def regulariser_explorer(bundle, classes, steps: int = 30, lr: float = 0.05, strengths: dict | None = None,
                         on=tuple(), results: dict | None = None, size: float = 1.6):
    """A checkbox per regulariser of ``lib.synthesis.class_models.class_model`` (L2 decay, blur, norm
    clip, contribution clip, jitter): the class models of ``classes`` (one image each) with the
    ticked ones on, at ``strengths`` (``class_model`` keywords), with each image's score and p(class).

    Each setting is optimised the first time it is ticked (one ``class_model`` call, ``steps`` steps)
    and cached; ``results`` = {tuple of regulariser names: Optimized} seeds the cache (e.g. with the
    runs of a figure), so only settings never seen are computed. ``on``: the setting shown first.
    """
    import ipywidgets as W

    from .synthesis import class_models as CM

    names = bundle.require_classes("regulariser_explorer")
    classes = [int(c) for c in classes]
    strengths = dict(strengths or {})
    order = list(CM.REGULARISERS)
    labels = {"l2": "L2 decay", "blur": "blur", "norm": "norm clip", "contrib": "contribution clip",
              "jitter": "jitter"}
    cache: dict = {}
    for key, r in (results or {}).items():
        key = tuple(k for k in order if k in key)
        cache[key] = (r, CM.class_report(bundle, r.image, classes))

    def compute(key):
        if key not in cache:
            r = CM.class_model(bundle, classes, steps=steps, lr=lr, **CM.settings(strengths, key))
            cache[key] = (r, CM.class_report(bundle, r.image, classes))
        return cache[key]

    boxes = [W.Checkbox(value=name in on, description=labels[name], indent=False, layout=W.Layout(width="auto"))
             for name in order]
    compute(tuple(k for k in order if k in on))

    def draw(**ticks):
        key = tuple(k for k in order if ticks[k])
        r, rep = compute(key)
        titles = [f"{names[c]}\nS={t:.1f}, p={p:.2f}" for c, t, p in zip(classes, rep.target.tolist(),
                                                                          rep.prob.tolist())]
        plot.show_images(r.image, titles, ncols=len(classes), size=size,
                         suptitle=f"{bundle.name}: class models, {CM.describe(**CM.settings(strengths, key))}")

    out = W.interactive_output(draw, dict(zip(order, boxes)))
    return _panel([W.HBox(boxes), out])


# --------------------------------------------------------------------------- chapter 12: feature inversion
__all__ += ["inversion_explorer"]


def inversion_explorer(bundle, image: torch.Tensor, layers: Sequence[str], tv_weights: Sequence[float],
                       layer: str | None = None, tv_weight: float | None = None, known: dict | None = None,
                       model_name: str | None = None, size: float = 2.8, **invert_kwargs):
    """Layer menu and TV-weight slider showing ``image`` (1 x 3 x H x W) reconstructed from its
    features at that layer (``lib.synthesis.invert(bundle, image, layer, tv_weight, **invert_kwargs)``).

    An inversion costs seconds on a CPU, too much to precompute the whole grid: each setting is
    computed when the slider stops (``continuous_update=False``) and kept, so going back to it only
    redraws. ``known``: {(layer, tv_weight): Optimized} already computed (e.g. the runs of the
    chapter's figures), used instead of computing them again.
    """
    import ipywidgets as W

    from .synthesis.inversion import invert, inversion_errors

    x = image[:1]
    layer = layer or layers[0]
    tv_weight = tv_weights[0] if tv_weight is None else tv_weight
    if tv_weight not in tv_weights:
        tv_weights = sorted({*tv_weights, tv_weight})
    cache = {key: (r, inversion_errors(bundle, r, x, key[0])) for key, r in (known or {}).items()}

    def compute(lay, tv):
        if (lay, tv) not in cache:
            r = invert(bundle, x, lay, tv_weight=tv, **invert_kwargs)
            cache[lay, tv] = (r, inversion_errors(bundle, r, x, lay))
        return cache[lay, tv]

    w_layer = W.Dropdown(options=list(layers), value=layer, description="layer")
    w_tv = W.SelectionSlider(options=list(tv_weights), value=tv_weight, description="TV weight",
                             continuous_update=False)

    def draw(lay, tv):
        r, e = compute(lay, tv)
        plot.show_inversions(x, [r], labels=[f"{lay}, TV weight {tv:g}"], errors=[e], size=size,
                             suptitle=f"inverted with {model_name or r.model}")

    out = W.interactive_output(draw, {"lay": w_layer, "tv": w_tv})
    return _panel([W.HBox([w_layer, w_tv]), out])


# --------------------------------------------------------------------------- chapters 14-15: texture, style
__all__ += ["texture_explorer", "style_explorer", "stylenet_explorer"]


def texture_explorer(bundle, samples: dict[str, torch.Tensor], layer_sets: dict[str, Sequence[str]],
                     sizes: Sequence[int] = (48, 64, 96, 128), steps: int = 100,
                     done: dict | None = None, size: float = 2.6):
    """Sample and layer-set menus and an output-size slider for ``synthesis.synthesize_texture``.

    A synthesis costs seconds: each setting is computed when the controls stop and kept, so going
    back to it only redraws. ``done``: results already computed, keyed by (sample name, layer-set
    name, size), e.g. the default setting made earlier.
    """
    import ipywidgets as W

    from .images import resize
    from .synthesis.texture import synthesize_texture

    cache = dict(done or {})
    w_sample = W.Dropdown(options=list(samples), description="sample")
    w_layers = W.Dropdown(options=list(layer_sets), value=list(layer_sets)[-1], description="layers")
    w_size = W.SelectionSlider(options=list(sizes), value=64 if 64 in sizes else sizes[0], description="size (px)",
                               continuous_update=False)

    def draw(sample, layers, px):
        key = (sample, layers, px)
        if key not in cache:
            cache[key] = synthesize_texture(bundle, samples[sample], layer_sets[layers], size=px, steps=steps,
                                            progress=False)
        r = cache[key]
        plot.show_image_rows({"": torch.cat([resize(samples[sample], (px, px)), r.image])},
                             {"": ["sample (resized)", f"{layers}: loss {-r.start.item():.2g} -> {-r.end.item():.2g}"]},
                             size=size, suptitle=f"texture synthesis with {bundle.name}")

    out = W.interactive_output(draw, {"sample": w_sample, "layers": w_layers, "px": w_size})
    return _panel([W.HBox([w_sample, w_layers, w_size]), out])


def style_explorer(bundle, content: torch.Tensor, styles: dict[str, torch.Tensor],
                   weights: Sequence[float] = (1.0, 3.0, 10.0, 30.0, 100.0), style_sizes: Sequence[int] | None = None,
                   steps: int = 60, done: dict | None = None, size: float = 3.0):
    """Style menu, style-weight and style-size sliders for ``synthesis.style_transfer`` of ``content``.

    Each setting is computed when the controls stop and kept. ``done``: results already computed,
    keyed by (style name, style weight, style size), e.g. the default setting made earlier.
    """
    import ipywidgets as W

    from .synthesis.style import style_transfer

    cache = dict(done or {})
    long_side = max(content.shape[-2:])
    style_sizes = list(style_sizes or (long_side // 2, long_side, 2 * min(content.shape[-2:])))
    w_style = W.Dropdown(options=list(styles), description="style")
    w_weight = W.SelectionSlider(options=[float(w) for w in weights], value=10.0 if 10.0 in weights else weights[0],
                                 description="style weight", continuous_update=False)
    w_size = W.SelectionSlider(options=sorted(set(style_sizes)), value=max(style_sizes), description="style px",
                               continuous_update=False)

    def draw(style, weight, style_px):
        key = (style, weight, style_px)
        if key not in cache:
            cache[key] = style_transfer(bundle, content, styles[style], style_weight=weight, style_size=style_px,
                                        steps=steps, progress=False)
        r = cache[key]
        parts = {k: round(v.item(), 3) for k, v in r.parts.items()}
        plot.show_images(torch.cat([content.cpu(), r.image]),
                         ["content", f"{style}, weight {weight:g}, style at {style_px} px\n{parts}"], ncols=2,
                         size=size, suptitle=f"style transfer with {bundle.name}")

    out = W.interactive_output(draw, {"style": w_style, "weight": w_weight, "style_px": w_size})
    return _panel([W.HBox([w_style, w_weight, w_size]), out])


def stylenet_explorer(net, photo: torch.Tensor, size: float = 3.0):
    """One slider per style of a ``models.stylenet.StyleNet``: the mix of normalisation parameters
    (weights normalised to sum to 1) applied to ``photo``. A forward pass takes milliseconds, so it
    runs on every move."""
    import ipywidgets as W

    sliders = {name: W.FloatSlider(value=1.0 if i == 0 else 0.0, min=0, max=1, step=0.05, description=name)
               for i, name in enumerate(net.styles)}

    def draw(**mix):
        w = torch.tensor([mix[n] for n in net.styles])
        w = w / w.sum() if w.sum() > 0 else torch.full_like(w, 1 / len(w))
        with torch.no_grad():
            y = net(photo.to(next(net.parameters()).device), w).cpu()
        label = " + ".join(f"{v:.2f} {n}" for n, v in zip(net.styles, w.tolist()) if v > 0)
        plot.show_images(y, [f"stylenet: {label}"], ncols=1, size=size)

    out = W.interactive_output(draw, sliders)
    return _panel([W.HBox(list(sliders.values())), out])
