"""Chapter 5: boxes, connected components and GrabCut localisation (Simonyan et al. 2013, Rother et al. 2004)."""
import pytest
import torch

from lib import metrics


def test_box_iou_hand_made():
    a = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 4, 4], [0, 0, 0, 0]])
    b = torch.tensor([[0, 0, 10, 10], [10, 0, 20, 10], [5, 0, 15, 10], [2, 2, 6, 6], [0, 0, 0, 0]])
    iou = metrics.box_iou(a, b)
    # identical; touching but disjoint (x1 exclusive); half overlap 50 / 150; 2x2 of 16 + 16 - 4; empty
    assert torch.allclose(iou, torch.tensor([1.0, 0.0, 1 / 3, 4 / 28, 0.0]))
    assert torch.allclose(metrics.box_iou(b, a), iou), "IoU is symmetric"
    assert torch.allclose(metrics.box_iou(a, torch.tensor([0, 0, 10, 10]))[:3], torch.tensor([1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="N x 4"):
        metrics.box_iou(a[:, :3], b[:, :3])


def test_largest_component_box_two_blobs():
    mask = torch.zeros(20, 30, dtype=torch.bool)
    mask[2:5, 3:6] = True                  # 3 x 3 = 9 px
    mask[8:18, 10:14] = True               # 10 x 4 = 40 px: the largest
    mask[7, 9] = True                      # touches the big blob diagonally: 8-connected, part of it
    assert metrics.largest_component_box(mask).tolist() == [9, 7, 14, 18]
    batch = torch.stack([mask, torch.zeros_like(mask)])
    assert metrics.largest_component_box(batch).tolist() == [[9, 7, 14, 18], [0, 0, 0, 0]]


def test_threshold_box_hand_made_map():
    m = torch.zeros(16, 16)
    m[4:8, 2:6] = 1.0                       # the peak region
    m[10:15, 9:15] = 0.5                    # larger, but weaker
    assert metrics.threshold_box(m, 0.6).tolist() == [2, 4, 6, 8]
    assert metrics.threshold_box(m, 0.4).tolist() == [9, 10, 15, 15]     # now the larger blob wins
    assert metrics.threshold_box(m[None] - 2, 0.2).tolist() == [[2, 4, 6, 8]]   # all negative: the peak's region
    assert metrics.threshold_box(torch.zeros(1, 8, 8), 0.2).tolist() == [[0, 0, 8, 8]]


def _square_scene(seed=0, size=64, box=(20, 14, 44, 38)):
    """A bright textured square on a dark noisy background, and a blurry saliency blob on it."""
    g = torch.Generator().manual_seed(seed)
    img = 0.25 * torch.rand(3, size, size, generator=g)
    x0, y0, x1, y1 = box
    img[:, y0:y1, x0:x1] = 0.7 + 0.25 * torch.rand(3, y1 - y0, x1 - x0, generator=g)
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    cx, cy = (x0 + x1 - 1) / 2 + 3, (y0 + y1 - 1) / 2 - 2           # slightly off-centre, like real maps
    sal = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 8.0 ** 2)) + 0.05 * torch.rand(size, size, generator=g)
    return img, sal, torch.tensor(box)


def test_grabcut_seeds():
    _, sal, _ = _square_scene()
    fg, bg = metrics.grabcut_seeds(sal)
    assert fg.shape == bg.shape == sal.shape and not (fg & bg).any()
    assert fg.sum() == round(0.05 * 64 * 64) and bg.sum() == round(0.30 * 64 * 64)
    assert (sal[fg].min() > sal[~fg].max()) and (sal[bg].max() < sal[~bg].min())


def test_grabcut_box_finds_the_square():
    img, sal, box = _square_scene()
    found = metrics.grabcut_box(img, sal)
    assert metrics.box_iou(found[None], box[None]).item() > 0.8
    # the seeds alone (the top 5 %) cover only the middle of the square: GrabCut grows them
    assert metrics.box_iou(metrics.largest_component_box(metrics.grabcut_seeds(sal)[0])[None], box[None]).item() < 0.5
    assert torch.equal(metrics.grabcut_box(img, sal), found), "seeded: the same result every time"


def test_grabcut_boxes_batch_equals_single_calls():
    scenes = [_square_scene(s, box=b) for s, b in ((0, (20, 14, 44, 38)), (1, (4, 30, 30, 60)), (2, (30, 2, 62, 26)))]
    imgs = torch.stack([s[0] for s in scenes])
    sals = torch.stack([s[1] for s in scenes])
    boxes = metrics.grabcut_boxes(imgs, sals)
    assert boxes.shape == (3, 4) and boxes.dtype == torch.long
    assert torch.equal(boxes, torch.stack([metrics.grabcut_box(i, s) for i, s in zip(imgs, sals)]))


def test_grabcut_edge_cases():
    img, sal, _ = _square_scene()
    flat = metrics.grabcut_mask(img, torch.zeros(64, 64))          # no ranking at all: no GrabCut, all seeds
    assert flat.shape == (64, 64) and flat.dtype == torch.bool
    with pytest.raises(ValueError, match="differ in size"):
        metrics.grabcut_box(img, sal[:32])
    with pytest.raises(ValueError, match="3 x H x W"):
        metrics.grabcut_box(img[:1], sal)
    with pytest.raises(ValueError):
        metrics.grabcut_boxes(img[None], sal)


def test_show_localisation_draws_without_computing():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lib import plot
    img, sal, box = _square_scene()
    fig = plot.show_localisation(img[None], {"saliency": sal[None], "mask": (sal > 0.5)[None]}, truth=box[None],
                                 found=box[None], titles={"input": ["x"]}, show=False)
    assert len(fig.axes) == 3 and len(fig.axes[0].patches) == 2     # ground truth and found box
    plt.close(fig)
