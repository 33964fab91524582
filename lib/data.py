"""Data for the course: Fashion-MNIST, background photos, and the canvases the shipped model sees.

A *canvas* is a 64x64 RGB image with one Fashion-MNIST item, randomly scaled and tinted,
pasted on a random crop of a natural photo. Its ground-truth box and mask are recorded, so
later chapters can *measure* whether an explanation points at the object.

Everything the notebooks and tests need is committed (``data/canvases/test.npz.xz``). Only the
training script needs outside data, and it takes it from Debian's package archive
(``apt-get download`` + ``dpkg -x``), the one source reachable offline here.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "CLASSES", "DATA_DIR", "Canvases", "CanvasGenerator", "DataNotFoundError",
    "background_photos", "fashion_mnist", "fetch_debian", "load_canvases", "sample_image",
    "save_canvases", "SAMPLE_IMAGES",
]

#: The ten Fashion-MNIST classes, in label order.
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

REPO_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_DIR / "data"
CACHE_DIR = Path(os.environ.get("CNNVIS_CACHE", Path.home() / ".cache" / "cnnvis"))


class DataNotFoundError(FileNotFoundError):
    """Raised when a data file is missing; the message says how to get it."""


# --------------------------------------------------------------------------- Debian data
def fetch_debian(package: str, cache: Path | None = None) -> Path:
    """Download a Debian package with ``apt-get download`` and unpack it; returns the unpacked root.

    The result is cached under ``~/.cache/cnnvis/debian/<package>`` (or ``$CNNVIS_CACHE``).
    """
    root = (cache or CACHE_DIR) / "debian" / package
    if (root / ".done").exists():
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise DataNotFoundError(
            f"Debian package {package!r} is needed, but apt-get/dpkg are not available. "
            f"On another system, download {package} from packages.debian.org and unpack it "
            f"into {root} (e.g. `dpkg -x {package}_*.deb {root}`).")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{package}_*.deb"))
        if run.returncode != 0 or not debs:
            raise DataNotFoundError(
                f"`apt-get download {package}` failed ({run.stderr.strip()[-300:]}). "
                f"Run `apt-get update` first, or unpack the package into {root} by hand.")
        subprocess.run(["dpkg", "-x", str(debs[0]), str(root)], check=True)
    (root / ".done").touch()
    return root


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(split: str = "train", root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images (N x 28 x 28 uint8) and labels (N,) for ``split`` in {'train', 'test'}.

    Looked up in ``root``, ``$FASHION_MNIST_DIR``, ``/usr/share/datasets/fashion-mnist`` (Debian's
    ``dataset-fashion-mnist`` installed), and the download cache; fetched from Debian otherwise.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    prefix = "train" if split == "train" else "t10k"
    candidates = [Path(p) for p in (root, os.environ.get("FASHION_MNIST_DIR")) if p]
    candidates.append(Path("/usr/share/datasets/fashion-mnist"))
    candidates.append(CACHE_DIR / "debian" / "dataset-fashion-mnist" / "usr/share/datasets/fashion-mnist")
    for d in candidates:
        if (d / f"{prefix}-images-idx3-ubyte.gz").exists():
            break
    else:
        d = fetch_debian("dataset-fashion-mnist") / "usr/share/datasets/fashion-mnist"
    return _read_idx(d / f"{prefix}-images-idx3-ubyte.gz"), _read_idx(d / f"{prefix}-labels-idx1-ubyte.gz")


# --------------------------------------------------------------------------- background photos
# Photos from Debian's opencv-doc (examples/data) and mate-backgrounds, and those bundled with
# scikit-image, scikit-learn and matplotlib. Test photos are never used for training.
_OPENCV = "usr/share/doc/opencv-doc/examples/data/"
_MATE = "usr/share/backgrounds/mate/"
_PHOTOS_TRAIN = [
    "cv:aero1.jpg", "cv:aloeL.jpg", "cv:apple.jpg", "cv:baboon.jpg", "cv:basketball1.png",
    "cv:board.jpg", "cv:box_in_scene.png", "cv:building.jpg", "cv:chicky_512.png",
    "cv:ela_original.jpg", "cv:graf1.png", "cv:home.jpg", "cv:leuvenA.jpg", "cv:messi5.jpg",
    "cv:orange.jpg", "cv:pca_test1.jpg", "cv:rubberwhale1.png", "cv:smarties.png",
    "cv:stuff.jpg", "cv:sudoku.png", "cv:left01.jpg", "cv:licenseplate_motion.jpg",
    "mate:nature/Garden.jpg", "mate:nature/Dune.jpg", "mate:nature/Wood.jpg",
    "mate:nature/Aqua.jpg", "mate:nature/Storm.jpg", "mate:nature/GreenMeadow.jpg",
    "mate:nature/RainDrops.jpg", "mate:nature/Blinds.jpg", "mate:nature/LadyBird.jpg",
    "mate:abstract/Elephants.jpg", "mate:abstract/Silk.png", "mate:abstract/Waves.png",
    "sk:astronaut", "sk:camera", "sk:coins", "sk:grass", "sk:moon", "sk:rocket",
    "sk:hubble_deep_field", "sk:page", "sk:text", "sk:clock", "sk:stereo_motorcycle",
    "skl:china.jpg", "mpl:grace_hopper.jpg",
]
_PHOTOS_TEST = [
    "cv:aero3.jpg", "cv:butterfly.jpg", "cv:fruits.jpg", "cv:graf3.png", "cv:leuvenB.jpg",
    "cv:squirrel_cls.jpg", "cv:text_defocus.jpg", "cv:starry_night.jpg",
    "mate:nature/TwoWings.jpg", "mate:nature/FreshFlower.jpg", "mate:nature/YellowFlower.jpg",
    "mate:abstract/Flow.png",
    "sk:chelsea", "sk:coffee", "sk:brick", "sk:gravel", "sk:immunohistochemistry",
    "skl:flower.jpg",
]


def _load_photo(key: str) -> np.ndarray:
    """One background photo as H x W x 3 uint8."""
    from PIL import Image

    src, name = key.split(":", 1)
    if src == "cv":
        path = fetch_debian("opencv-doc") / _OPENCV / name
    elif src == "mate":
        path = fetch_debian("mate-backgrounds") / _MATE / name
    elif src == "skl":
        import sklearn.datasets
        path = Path(sklearn.datasets.__file__).parent / "images" / name
    elif src == "mpl":
        import matplotlib
        path = Path(matplotlib.get_data_path()) / "sample_data" / name
    elif src == "sk":
        import skimage.data
        arr = getattr(skimage.data, name)()
        if name == "stereo_motorcycle":
            arr = arr[0]
        arr = np.asarray(arr)
        if arr.dtype != np.uint8:
            arr = (255 * (arr - arr.min()) / max(float(arr.max() - arr.min()), 1e-8)).astype(np.uint8)
        return arr if arr.ndim == 3 else np.repeat(arr[..., None], 3, axis=2)
    else:
        raise ValueError(key)
    return np.asarray(Image.open(path).convert("RGB"))


def background_photos(split: str = "train", short_side: int = 128) -> list[np.ndarray]:
    """The background photos of a split, each resized once so its short side is ``short_side``.

    Pre-scaling once (not per canvas) keeps the canvas generator fast.
    """
    import cv2

    keys = {"train": _PHOTOS_TRAIN, "test": _PHOTOS_TEST}[split]
    out = []
    for key in keys:
        arr = _load_photo(key)[..., :3]
        h, w = arr.shape[:2]
        s = short_side / min(h, w)
        out.append(cv2.resize(arr, (max(short_side, round(w * s)), max(short_side, round(h * s))),
                               interpolation=cv2.INTER_AREA))
    return out


# --------------------------------------------------------------------------- canvases
@dataclass
class Canvases:
    """A set of canvases: display-space images N x 3 x H x W in [0, 1], labels, boxes, masks.

    ``boxes`` are (x0, y0, x1, y1) in pixels, x1/y1 exclusive; ``masks`` are N x H x W bool.
    """
    images: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx) -> "Canvases":
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return Canvases(self.images[idx], self.labels[idx], self.boxes[idx], self.masks[idx])


class CanvasGenerator:
    """Makes canvases: a Fashion-MNIST item, scaled, tinted and pasted on a photo crop.

    Parameters: ``items`` (N x 28 x 28 uint8) and ``labels``; ``photos`` (list of H x W x 3 uint8,
    pre-scaled); ``size`` of the canvas; item side drawn from ``scale`` (pixels); ``seed``.
    The item's colour is drawn at random and flipped to the opposite brightness when it would
    be too close to the background under it, so it is always visible but not always the
    brightest thing on the canvas (a brightness detector must not solve localisation).
    """

    def __init__(self, items: np.ndarray, labels: np.ndarray, photos: list[np.ndarray],
                 size: int = 64, scale: tuple[int, int] = (28, 44), seed: int = 0):
        self.items, self.labels, self.photos = items, np.asarray(labels), photos
        self.size, self.scale = size, scale
        self.rng = np.random.default_rng(seed)

    def sample(self, n: int) -> dict[str, np.ndarray]:
        """``n`` canvases as numpy arrays: images (n, H, W, 3) uint8, labels, boxes, masks."""
        import cv2

        rng, s = self.rng, self.size
        images = np.empty((n, s, s, 3), np.uint8)
        masks = np.zeros((n, s, s), bool)
        boxes = np.empty((n, 4), np.int64)
        idx = rng.integers(len(self.items), size=n)
        for i, j in enumerate(idx):
            photo = self.photos[rng.integers(len(self.photos))]
            y, x = rng.integers(photo.shape[0] - s + 1), rng.integers(photo.shape[1] - s + 1)
            bg = photo[y:y + s, x:x + s].astype(np.float32) / 255
            if rng.random() < 0.5:
                bg = bg[:, ::-1]
            side = int(rng.integers(self.scale[0], self.scale[1] + 1))
            alpha = cv2.resize(self.items[j], (side, side), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
            oy, ox = rng.integers(s - side + 1), rng.integers(s - side + 1)
            region = bg[oy:oy + side, ox:ox + side]
            ink = alpha > 0.05
            colour = rng.random(3).astype(np.float32)
            lum = lambda c: c @ np.array([0.299, 0.587, 0.114], np.float32)  # noqa: E731
            if abs(lum(colour) - lum(region[ink].mean(0))) < 0.3:
                colour = np.clip(1.0 - colour, 0, 1)
                if abs(lum(colour) - lum(region[ink].mean(0))) < 0.3:
                    colour = np.full(3, 1.0 if lum(region[ink].mean(0)) < 0.5 else 0.0, np.float32)
            # shading keeps the item's texture: dark pixels of the item are darker versions of the tint
            shade = 0.55 + 0.45 * alpha[..., None]
            a = np.clip(alpha * 2.0, 0, 1)[..., None]
            bg[oy:oy + side, ox:ox + side] = region * (1 - a) + colour * shade * a
            images[i] = np.clip(bg * 255 + 0.5, 0, 255).astype(np.uint8)
            masks[i, oy:oy + side, ox:ox + side] = a[..., 0] > 0.5
            ys, xs = np.nonzero(masks[i])
            boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        return {"images": images, "labels": self.labels[idx].astype(np.int64), "boxes": boxes, "masks": masks}


def to_canvases(arrays: dict[str, np.ndarray]) -> Canvases:
    """Numpy canvases (as ``CanvasGenerator.sample`` returns them) -> a ``Canvases`` of tensors."""
    return Canvases(
        images=torch.from_numpy(np.ascontiguousarray(arrays["images"])).permute(0, 3, 1, 2).float().div(255),
        labels=torch.from_numpy(arrays["labels"]).long(),
        boxes=torch.from_numpy(arrays["boxes"]).long(),
        masks=torch.from_numpy(arrays["masks"]).bool(),
    )


def save_canvases(arrays: dict[str, np.ndarray], path: str | Path) -> str:
    """Store canvases as an .npz inside LZMA (masks bit-packed); returns the sha256.

    LZMA's large window finds the background photos repeated across canvases: 4.6 MB, where
    ``np.savez_compressed`` (zlib) needs 18.6 MB for the 2,000 test canvases.
    """
    path = Path(path)
    buf = io.BytesIO()
    np.savez(buf, images=arrays["images"], labels=arrays["labels"].astype(np.uint8),
             boxes=arrays["boxes"].astype(np.uint8), masks=np.packbits(arrays["masks"], axis=-1))
    path.write_bytes(lzma.compress(buf.getvalue(), preset=6))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def load_canvases(name: str = "test", n: int | None = None) -> Canvases:
    """The committed canvases (``data/canvases/<name>.npz.xz``), optionally only the first ``n``."""
    path = DATA_DIR / "canvases" / f"{name}.npz.xz"
    if not path.exists():
        raise DataNotFoundError(f"{path} is missing. It is committed with the repository; "
                                f"`python -m lib.models.train --canvases-only` regenerates it.")
    with np.load(io.BytesIO(lzma.decompress(path.read_bytes()))) as z:
        sl = slice(None) if n is None else slice(0, n)
        images = z["images"][sl]
        arrays = {"images": images, "labels": z["labels"][sl], "boxes": z["boxes"][sl],
                  "masks": np.unpackbits(z["masks"][sl], axis=-1, count=images.shape[2]).astype(bool)}
    return to_canvases(arrays)


# --------------------------------------------------------------------------- sample photos
#: Photos committed under data/images (see data/images/ATTRIBUTION.md).
SAMPLE_IMAGES = {
    "chelsea": "chelsea.jpg", "coffee": "coffee.jpg", "astronaut": "astronaut.jpg",
    "grace_hopper": "grace_hopper.jpg",
}


def sample_image(name: str, size: int | None = None) -> torch.Tensor:
    """A committed sample photo as a 1 x 3 x H x W display-space tensor (short side ``size``)."""
    from . import images

    if name not in SAMPLE_IMAGES:
        raise KeyError(f"no sample image {name!r}; available: {sorted(SAMPLE_IMAGES)}")
    return images.load(DATA_DIR / "images" / SAMPLE_IMAGES[name], size=size)
