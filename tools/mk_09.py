"""Generate notebooks/09_evaluating_explanations.ipynb (then execute it with nbconvert)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from course_cells import SETUP_CELL, Cells  # noqa: E402  the Colab set-up cell and the notebook builder

cells = Cells()
md, code = cells.md, cells.code


md(r"""
# 9. Evaluating explanations

*CS231n lecture 12: "Saliency maps", "Class activation mapping"; and how to tell which map to trust*

Chapters 4 to 8 gave eight ways to answer "where does the network look?", and their pictures
disagree. A picture that *looks* right is not evidence: the reader's eye prefers sharp maps that
trace the object's outline, and a map can trace the outline without having anything to do with the
decision. This chapter measures the maps instead, with four tests that ask different questions:

| test | question | good map |
|---|---|---|
| pointing game {cite}`zhang2016top` | is the map's maximum on the object? | high hit rate |
| localisation (CAM paper {cite}`zhou2016learning`) | does the thresholded map give the object's box? | high fraction of IoU >= 0.5 |
| deletion / insertion {cite}`petsiuk2018rise` | do the pixels the map ranks first actually drive the score? | low deletion AUC, high insertion AUC |
| sanity check {cite}`adebayo2018sanity` | does the map change when the model's weights are destroyed? | yes: it must depend on the model |

The first two need ground truth, which is why the course trains its own model on canvases with
known boxes; the last two need only the model.

**Learning goals**
- Compute and interpret the pointing game, box localisation, and deletion/insertion AUC for any map.
- Know what each test can and cannot tell: localisation rewards maps that find *the object*, even
  where the model used something else; deletion/insertion reward maps that find *what the model
  used*, even off the object.
- Run the cascading randomisation test and recognise a method that fails it.
- Read a comparison table critically: baselines, thresholds chosen on held-out data, cost per image.
""")
code(SETUP_CELL)
code(r"""
import torch
import lib
from lib import attribution as A, data, evaluation, metrics, models, plot, widgets

lib.seed(0)
bundle = models.load("gapnet")
canvases = data.load_canvases("test")
print(bundle)
""")
md(r"""
## The contestants
Eight maps for the class the model predicts, each a plain function of `lib` (chapters 4-8), and two
baselines that know nothing of the model: a **random** map and a **centre Gaussian** (objects tend to
be near the middle of a photo, and of our canvases). Occlusion uses an 8 px grey patch moved in
steps of 8 px and SmoothGrad 16 noisy copies, to keep the table affordable on a laptop CPU;
`evaluation.SETTINGS` holds these choices.
""")
code(r"""
methods = evaluation.default_methods(bundle)     # {name: f(x, target) -> N x H x W maps}
x, boxes = canvases.images[:6], canvases.boxes[:6]
target = bundle.predict(x).argmax(1)
maps = {name: f(x, target) for name, f in methods.items()}
print({name: tuple(m.shape) for name, m in list(maps.items())[:3]}, "...")
""")
code(r"""
titles = {"input": [data.CLASSES[t] for t in target.tolist()]}
plot.show_overlay_rows(x, maps, titles=titles, boxes=boxes, size=1.25,
                       suptitle="every method, for the predicted class (green: the true box)")
""")
md(r"""
## Test 1: the pointing game
Zhang et al. {cite}`zhang2016top` count a **hit** when the map's maximum falls on the object,

$$ \text{hit}(M) = \big[\, \operatorname{arg\,max}_{(i,j)} M(i,j) \in \text{box} \oplus r \,\big],
\qquad \text{hit rate} = \frac{\#\text{hits}}{\#\text{images}}, $$

where $\oplus\, r$ grows the box by a tolerance of $r$ pixels (15 px at 224 px in the paper, about
4 px on our 64 px canvases). It asks only where the peak is, so it is blind to the map's shape and
cannot be fooled by a blurry map; but it *can* be passed by a baseline that bets on the centre.
""")
code(r"""
for name in ("random", "centre Gaussian", "saliency", "CAM"):
    hits = metrics.pointing_game(maps[name], boxes)
    print(f"{name:16s} peaks in the box: {hits.int().tolist()}")
""")
md(r"""
## Test 2: a box from the map
The CAM paper {cite}`zhou2016learning` turns a map into a box: keep the pixels above 20 % of the
map's maximum, take the largest connected region, and box it; the map localises the object when that
box overlaps the true one with $\text{IoU} = |A \cap B| / |A \cup B| \ge 0.5$. The 20 % was chosen for
CAMs of 224 px photos; on our canvases it is no method's best: CAM's and Grad-CAM's boxes come out
too large (best near 40 %), the gradient maps' and occlusion's too small (best at 5 to 15 %). A fair comparison
lets every method have its best threshold, **chosen on a validation half** of the canvases and
scored on the other half (choosing it on the test data would flatter every method).
""")
code(r"""
cam20 = metrics.threshold_box(maps["CAM"], 0.2)
cam50 = metrics.threshold_box(maps["CAM"], 0.5)
print("IoU at 20 %:", [round(v, 2) for v in metrics.box_iou(cam20, boxes).tolist()])
print("IoU at 50 %:", [round(v, 2) for v in metrics.box_iou(cam50, boxes).tolist()])
plot.show_localisation(x, {"CAM": maps["CAM"], "CAM >= 20 % max": maps["CAM"] >= 0.2 * maps["CAM"].amax((1, 2), keepdim=True)},
                       truth=boxes, found=cam20, suptitle="CAM thresholded at 20 % (red) against the truth (green)")
""")
md(r"""
Try every method, canvas and threshold (in JupyterLab or Colab the sliders are live; the book shows
the default setting below it):
""")
code(r"""
widgets.threshold_explorer(x, maps, boxes)
""", tags=["nbval-ignore-output"])
code(r"""
plot.show_localisation(x[:1], {"CAM": maps["CAM"][:1]}, truth=boxes[:1], found=cam20[:1], size=2.6,
                       suptitle=f"IoU with the true box: {metrics.box_iou(cam20[:1], boxes[:1]).item():.2f}")
""")
md(r"""
## Test 3: deletion and insertion
Localisation asks whether the map finds the *object*. Petsiuk et al. {cite}`petsiuk2018rise` ask
whether it finds what the *model* uses. Rank the pixels by the map; **delete** them in that order
(set to black), a fraction $t$ at a time, and follow the class probability; or **insert** them into
a blurred copy of the image. If the map is faithful, deleting its top pixels destroys the score at
once and inserting them restores it at once:

$$ \text{deletion AUC} = \int_0^1 p_c\big(x \text{ without its top } t \text{ pixels}\big)\, dt \;(\downarrow),
\qquad \text{insertion AUC} = \int_0^1 p_c\big(\text{blur} + \text{top } t \text{ pixels of } x\big)\, dt \;(\uparrow). $$

Both use only the model, not the box: a model that classifies by the background would make a
background-pointing map win here and lose the localisation tests.
""")
code(r"""
show = ["random", "saliency", "occlusion", "CAM"]
curves = {mode: {name: metrics.perturbation_curves(bundle, x[:1], maps[name][:1], target[:1], mode=mode, steps=16)[0]
                 for name in show} for mode in ("deletion", "insertion")}
for mode, lines in curves.items():
    print(mode, {name: round(metrics.curve_auc(c[None]).item(), 3) for name, c in lines.items()})
plot.show_curves({f"{mode} (AUC: {'lower' if mode == 'deletion' else 'higher'} is better)": lines
                  for mode, lines in curves.items()},
                 x=torch.linspace(0, 1, 17), xlabel="fraction of pixels changed", ylabel=f"p({data.CLASSES[target[0]]})")
""")
md(r"""
## The whole table
`lib.evaluation.evaluate` runs all of the above for every method over the committed test canvases.
That takes the better part of an hour on a laptop CPU, far too long for a notebook, so `python -m lib.evaluation`
computed it once and stored it in `data/results/explanations.json`, with the sha256 of the weights it
used; the check below fails if the model has changed since. The pointing game and localisation are
over all 2,000 canvases, deletion/insertion over the first 500. The time per image was measured on
the idle 2-core CPU the course targets, in batches of 100 (`python -m lib.evaluation --ms-only`
re-times it): SmoothGrad (16 noisy copies) costs about 17 saliency maps and occlusion (64 squares)
about 35, while CAM and Grad-CAM cost about one forward pass, less than a gradient map, whose
backward pass runs all the way down to the pixels. The random and centre maps cost nothing.
""")
code(r"""
import json
results = json.loads(evaluation.RESULTS.read_text())
assert results["weights_sha256"] == evaluation.weights_sha256("gapnet"), "the table is stale: run python -m lib.evaluation"
print(f"{results['canvases']} canvases ({results['curve_canvases']} for deletion/insertion), settings {results['settings']}\n")
print(evaluation.format_table(results["table"]))
""")
md(r"""
The same code on the first 40 canvases, live (expect noisier numbers, and times from your machine):

```python
small = evaluation.evaluate(bundle, canvases[:40], curves=20)
print(evaluation.format_table(small))
```
""")
code(r"""
t = results["table"]
best = lambda col, sign=1: max(t, key=lambda m: sign * t[m][col])
print("best pointing game:       ", best("pointing"))
print("best localisation (best fraction):", best("loc_best"))
print("lowest deletion AUC:      ", best("deletion", -1))
print("highest insertion AUC:    ", best("insertion"))
beaten = [m for m in t if m not in ("random", "centre Gaussian") and t[m]["pointing"] <= t["centre Gaussian"]["pointing"]]
print("methods no better than the centre baseline at pointing:", beaten or "none")
""")
md(r"""
## Test 4: sanity checks
Adebayo et al. {cite}`adebayo2018sanity` ask a question none of the tests above asks: *would the map
look the same if the model had learned nothing?* They re-initialise the weights of the model's
layers one after another **from the top** (cascading randomisation) and compare each new map with
the original one by Spearman rank correlation of $|M|$. A map that explains the model must change
once the layers that make the decision are random; a map that stays put is showing the image (its
edges), not the model. We randomise `gapnet` a stage at a time (the classifier and stage 4 first),
on a few canvases.
""")
code(r"""
checked = {
    "saliency": lambda b, x, t: A.saliency(b, x, t),
    "SmoothGrad": lambda b, x, t: A.smoothgrad(b, x, t, samples=8),
    "guided backprop": lambda b, x, t: A.gradient_map(A.guided_backprop(b, x, t)),
    "occlusion": lambda b, x, t: A.occlusion(b, x, t, window=16, stride=8),
    "Grad-CAM features.26": lambda b, x, t: A.grad_cam(b, x, t, layer="features.26"),
    "Guided Grad-CAM": lambda b, x, t: A.gradient_map(A.guided_grad_cam(b, x, t, layer="features.26")),
}
groups = evaluation.stage_groups(bundle.model)                # [stage 1, ..., stage 4 + fc]: 4 steps
steps, corr = evaluation.sanity_check(bundle, canvases.images[:8], checked, groups, progress=False)
names = ["stage 4 + fc", "+ stage 3", "+ stage 2", "+ stage 1"]
print(f"{'randomised:':22s}", "  ".join(f"{n:>12s}" for n in names))
for name, c in corr.items():
    print(f"{name:22s}", "  ".join(f"{v:12.2f}" for v in c.nanmean(1).tolist()))
""")
code(r"""
plot.show_curves({"rank correlation with the trained model's map": {n: c.nanmean(1) for n, c in corr.items()}},
                 xticks=["randomised: " + names[0]] + names[1:], ylabel="Spearman (|map|)", ylim=(-0.1, 1.0), size=5)
after_top = {n: c[0].nanmean().item() for n, c in corr.items()}
fails = [n for n, v in after_top.items() if v > 0.5]
print("still correlated above 0.5 with the top stage and classifier random (fails the check):", fails or "none")
""")
md(r"""
## What to notice
- **The centre baseline is strong.** On canvases, as on ImageNet, objects sit near the middle; any
  pointing-game number means little until it is compared with the centre map's. A method that does
  not beat it has shown nothing.
- **Thresholds matter as much as methods.** At the CAM paper's 20 % CAM's boxes are larger than
  our items and the gradient maps' smaller; with its own threshold, chosen on held-out canvases, every method's localisation
  changes, and so can the ranking.
- **Localisation and faithfulness can disagree.** Deletion and insertion reward the pixels the model
  uses; the pointing game rewards the pixels of the object. Where they rank methods differently, the
  model is using something other than the object, or the map is finding the object without the model.
- **Sharp is not faithful.** Guided backpropagation draws the crispest outlines of the object, and
  in the sanity check its maps barely change when the top of the network is random: it behaves
  largely like an edge detector {cite}`adebayo2018sanity,nie2018theoretical`. Grad-CAM and saliency
  change, as an explanation of the model must. Guided Grad-CAM inherits some of both.
- **Cost.** Occlusion needs one forward pass per patch position, SmoothGrad one backward per noisy
  copy; CAM and Grad-CAM cost about one forward pass (chapter 8 measures it). The table's last
  column, taken on a shared CPU, gives each answer's price only to an order of magnitude.

## Exercises
1. Add a "blurred brightness" baseline (`metrics.brightness_map`) to `evaluation.default_methods` and
   rerun the table on 200 canvases. Where does it rank, and why is it weak on photo backgrounds?
2. Deletion with a black baseline creates images the model never saw. Recompute the deletion curves
   with `baseline="blur"` and compare the ranking of methods.
3. Run the sanity check with `groups=None` (one layer at a time, 17 steps) for saliency and guided
   backprop and plot where each map stops changing.
4. The 20 % threshold: plot localisation accuracy against the fraction for CAM and for SmoothGrad
   (`evaluation.localisation` returns the best; write the loop over `evaluation.FRACTIONS`).
5. Evaluate `models.load("vgg16-cam")` with the same code (its input is 112 px: resize the canvases
   with `lib.images.resize`, and the maps back to 64 px before scoring). Does a deeper ImageNet
   backbone localise better?

## References
- {cite}`zhang2016top` (pointing game), {cite}`zhou2016learning` (CAM, box localisation),
  {cite}`petsiuk2018rise` (deletion and insertion), {cite}`adebayo2018sanity` (sanity checks),
  {cite}`nie2018theoretical` (why guided backpropagation reconstructs the image),
  {cite}`cs231n2017lecture12`.
""")

cells.write(ROOT / "notebooks/09_evaluating_explanations.ipynb")
