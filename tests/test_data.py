import gzip
import hashlib

import numpy as np
import torch

from lib import data


def test_idx_reader(tmp_path):
    imgs = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28).astype(np.uint8)
    header = bytes([0, 0, 8, 3]) + b"".join(int(v).to_bytes(4, "big") for v in imgs.shape)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(header + imgs.tobytes())
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (2).to_bytes(4, "big") + bytes([7, 3]))
    x, y = data.fashion_mnist("train", root=tmp_path)
    assert np.array_equal(x, imgs) and list(y) == [7, 3]


def test_generator_boxes_match_masks_and_items_are_visible():
    rng = np.random.default_rng(0)
    items = np.zeros((5, 28, 28), np.uint8)
    items[:, 6:22, 8:20] = 200
    photos = [rng.integers(0, 256, (80, 100, 3), dtype=np.uint8), np.full((70, 70, 3), 128, np.uint8)]
    gen = data.CanvasGenerator(items, np.arange(5), photos, size=64, seed=1)
    s = gen.sample(50)
    assert s["images"].shape == (50, 64, 64, 3) and s["images"].dtype == np.uint8
    for img, box, mask in zip(s["images"], s["boxes"], s["masks"]):
        ys, xs = np.nonzero(mask)
        assert tuple(box) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert 0 <= box[0] < box[2] <= 64 and 0 <= box[1] < box[3] <= 64
        inside = img[mask].astype(float).mean(0)
        ring = img[~mask].astype(float).mean(0)
        assert np.abs(inside - ring).max() > 10  # the item differs from the background
    # the same seed gives the same canvases
    s2 = data.CanvasGenerator(items, np.arange(5), photos, size=64, seed=1).sample(50)
    assert np.array_equal(s["images"], s2["images"])


def test_committed_canvases(canvases):
    assert len(canvases) == 2000
    assert canvases.images.shape == (2000, 3, 64, 64)
    assert 0 <= canvases.images.min() and canvases.images.max() <= 1
    assert set(canvases.labels.tolist()) == set(range(10))
    ys, xs = torch.nonzero(canvases.masks[0], as_tuple=True)
    assert canvases.boxes[0].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    path = data.DATA_DIR / "canvases" / "test.npz.xz"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == (path.parent / "test.npz.xz.sha256").read_text().split()[0]
    assert len(canvases[:5]) == 5 and len(canvases[3]) == 1


def test_sample_images_load():
    x = data.sample_image("chelsea", size=64)
    assert x.shape[:2] == (1, 3) and min(x.shape[-2:]) == 64
