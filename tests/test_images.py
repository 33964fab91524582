import gzip
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from lib import images as I
from lib.errors import ImageConversionWarning, ImageLoadError

RNG = np.random.default_rng(0)


def _rgb(h=40, w=50):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _check(x, h, w):
    assert x.shape == (1, 3, h, w) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1


def test_rgb_png_loads_exactly_without_warning(tmp_path):
    arr = _rgb()
    Image.fromarray(arr).save(tmp_path / "a.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = I.load(tmp_path / "a.png")
    _check(x, 40, 50)
    assert torch.allclose(x[0].permute(1, 2, 0) * 255, torch.from_numpy(arr).float(), atol=1e-4)


@pytest.mark.parametrize("mode, note", [("L", "grayscale"), ("P", "palette"), ("CMYK", "CMYK"),
                                        ("RGBA", "transparency"), ("LA", "grayscale")])
def test_odd_modes_convert_with_a_note(tmp_path, mode, note):
    img = Image.fromarray(_rgb()).convert(mode)
    path = tmp_path / ("a.jpg" if mode == "CMYK" else "a.png")
    img.save(path)
    with pytest.warns(ImageConversionWarning, match=note) as record:
        x = I.load(path)
    _check(x, 40, 50)
    assert {r.filename for r in record} == {__file__}           # the note points at the reader's line


def test_grayscale_becomes_three_equal_channels(tmp_path):
    Image.fromarray(_rgb()[..., 0]).save(tmp_path / "g.png")
    with pytest.warns(ImageConversionWarning):
        x = I.load(tmp_path / "g.png")
    assert torch.equal(x[0, 0], x[0, 1]) and torch.equal(x[0, 1], x[0, 2])


def test_rgba_is_composited_on_white(tmp_path):
    arr = np.zeros((20, 20, 4), np.uint8)
    arr[..., 0] = 255
    arr[:, :10, 3] = 255  # left half opaque red, right half transparent
    Image.fromarray(arr, "RGBA").save(tmp_path / "t.png")
    with pytest.warns(ImageConversionWarning):
        x = I.load(tmp_path / "t.png")[0]
    assert torch.allclose(x[:, 5, 5], torch.tensor([1.0, 0, 0]))
    assert torch.allclose(x[:, 5, 15], torch.tensor([1.0, 1, 1]))


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    arr = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    with pytest.warns(ImageConversionWarning, match="16-bit"):
        x = I.load(tmp_path / "d.png")
    _check(x, 32, 32)
    assert x.max() == pytest.approx(1.0) and x.min() == 0
    assert 0.4 < x.mean() < 0.6  # not saturated at 255/65535 nor clipped to 1


def test_numpy_and_tensor_inputs():
    arr = _rgb(20, 30)
    a = I.load(arr)
    b = I.load(torch.from_numpy(arr).permute(2, 0, 1).float() / 255)
    _check(a, 20, 30)
    assert torch.allclose(a, b, atol=1e-6)
    with pytest.warns(ImageConversionWarning, match="16-bit"):
        I.load((arr.astype(np.uint16) * 257))
    batch = I.load(np.stack([arr, arr]))
    assert batch.shape == (2, 3, 20, 30)


def test_float_out_of_range_is_refused_with_advice():
    with pytest.raises(ImageLoadError, match="deprocess"):
        I.load(np.full((20, 20, 3), 2.0, np.float32))


def test_tiny_image_refused(tmp_path):
    Image.fromarray(_rgb(8, 8)).save(tmp_path / "s.png")
    with pytest.raises(ImageLoadError, match="8x8.*minimum"):
        I.load(tmp_path / "s.png")


def test_large_image_downscaled_with_note(tmp_path):
    Image.fromarray(_rgb(300, 100)).save(tmp_path / "l.png")
    with pytest.warns(ImageConversionWarning, match="downscaled"):
        x = I.load(tmp_path / "l.png", max_side=150)
    assert x.shape == (1, 3, 150, 50)


def test_huge_image_refused_before_decoding(tmp_path, monkeypatch):
    Image.fromarray(_rgb(100, 100)).save(tmp_path / "h.png")
    monkeypatch.setattr(I, "MAX_PIXELS", 5000)
    with pytest.raises(ImageLoadError, match="over the limit"):
        I.load(tmp_path / "h.png")


def test_missing_truncated_and_non_images(tmp_path):
    with pytest.raises(ImageLoadError, match="does not exist"):
        I.load(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="folder"):
        I.load(tmp_path)
    (tmp_path / "x.jpg").write_text("this is not an image")
    with pytest.raises(ImageLoadError, match="not an image"):
        I.load(tmp_path / "x.jpg")
    Image.fromarray(_rgb(200, 200)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="truncated"):
        I.load(tmp_path / "cut.jpg")
    with gzip.open(tmp_path / "z.png", "wb") as f:
        f.write(b"junk")
    with pytest.raises(ImageLoadError):
        I.load(tmp_path / "z.png")
    with pytest.raises(ImageLoadError, match="cannot load"):
        I.load(42)


def test_resize_short_side_and_maps():
    x = torch.rand(2, 3, 40, 80)
    assert I.resize(x, 20).shape == (2, 3, 20, 40)
    assert I.resize(x, (10, 12)).shape == (2, 3, 10, 12)
    assert I.resize(torch.rand(2, 8, 8), (64, 64)).shape == (2, 64, 64)


def test_normalize_round_trip_and_values():
    x = torch.rand(2, 3, 8, 8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    y = I.normalize(x, mean, std)
    assert torch.allclose(y[:, 1], (x[:, 1] - 0.456) / 0.224)
    assert torch.allclose(I.denormalize(y, mean, std), x, atol=1e-6)


def test_normalize_map_is_per_map_and_handles_constant_maps():
    m = torch.stack([torch.arange(16.).view(4, 4), torch.full((4, 4), 3.0)])
    n = I.normalize_map(m)
    assert n[0].min() == 0 and n[0].max() == 1
    assert torch.all(n[1] == 0)
    assert torch.equal(m[0], torch.arange(16.).view(4, 4))  # input untouched


def test_overlay_shapes_range_and_colormap():
    img = torch.zeros(2, 3, 32, 32)
    hm = torch.zeros(2, 8, 8)
    hm[:, 0, 0] = 1.0
    out = I.overlay(img, hm, alpha=1.0, colormap="jet")
    assert out.shape == (2, 3, 32, 32) and 0 <= out.min() and out.max() <= 1
    # jet: high values are red, low values blue
    assert out[0, 0, 0, 0] > 0.4 and out[0, 2, 0, 0] < 0.1
    assert out[0, 2, 31, 31] > 0.4 and out[0, 0, 31, 31] < 0.1
    with pytest.raises(ValueError, match="unknown colormap"):
        I.overlay(img, hm, colormap="rainbowz")
    with pytest.raises(ValueError, match="maps for"):
        I.overlay(img, hm[:1])


def test_grid_and_to_numpy():
    g = I.grid(torch.rand(10, 3, 5, 5), nrow=5, padding=1)
    assert g.shape == (3, 2 * 6 + 1, 5 * 6 + 1)
    filters = torch.randn(4, 3, 3, 3) * 5
    g = I.grid(filters, normalize_each=True, padding=0, nrow=4)
    assert g.min() >= 0 and g.max() <= 1
    assert I.to_numpy(torch.rand(1, 3, 4, 5)).shape == (4, 5, 3)
    with pytest.raises(ValueError):
        I.to_numpy(torch.rand(2, 3, 4, 5))


def test_8000x8000_photo_is_downscaled_with_a_note(tmp_path):
    """A real 8000x8000 file (64 megapixels, under MAX_PIXELS): decoded once, then downscaled."""
    Image.new("RGB", (8000, 8000), (200, 30, 30)).save(tmp_path / "big.png")
    with pytest.warns(ImageConversionWarning, match="8000x8000.*downscaled"):
        x = I.load(tmp_path / "big.png")
    assert x.shape == (1, 3, I.MAX_SIDE, I.MAX_SIDE)
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([200, 30, 30]) / 255, atol=1e-3)
