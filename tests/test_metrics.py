import pytest
import torch

from lib import metrics


def _maps_with_peak(points, size=16):
    maps = torch.zeros(len(points), size, size)
    for i, (x, y) in enumerate(points):
        maps[i, y, x] = 1.0
    return maps


def test_map_peaks():
    assert metrics.map_peaks(_maps_with_peak([(3, 5), (15, 0)])).tolist() == [[3, 5], [15, 0]]


def test_pointing_game_hits_misses_and_tolerance():
    boxes = torch.tensor([[2, 2, 6, 6]] * 4)          # pixels 2..5 inclusive
    maps = _maps_with_peak([(2, 2), (5, 5), (6, 5), (8, 9)])
    assert metrics.pointing_game(maps, boxes).tolist() == [True, True, False, False]
    # (6, 5) is 1 px right of the box, (8, 9) is (3, 4) px away: distance 5
    assert metrics.pointing_game(maps, boxes, tolerance=1).tolist() == [True, True, True, False]
    assert metrics.pointing_game(maps, boxes, tolerance=5).tolist() == [True, True, True, True]
    assert metrics.pointing_game(maps, boxes, tolerance=4.9).tolist() == [True, True, True, False]
    with pytest.raises(ValueError):
        metrics.pointing_game(maps[0], boxes)
    with pytest.raises(ValueError):
        metrics.pointing_game(maps, boxes[:, :3])


def test_pointing_game_with_masks_is_stricter_than_boxes():
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[0, 2:10, 2:4] = True                         # a thin vertical bar
    mask[0, 2:4, 2:10] = True                         # and a thin horizontal bar: an L shape
    box = torch.tensor([[2, 2, 10, 10]])
    inside_box_off_mask = _maps_with_peak([(7, 7)])
    assert metrics.pointing_game(inside_box_off_mask, box).item()
    assert not metrics.pointing_game(inside_box_off_mask, mask).item()
    # nearest mask pixel to (7, 7) is (3, 7) or (7, 3): 4 px away
    assert metrics.pointing_game(inside_box_off_mask, mask, tolerance=4).item()
    assert metrics.pointing_game(_maps_with_peak([(3, 9)]), mask).item()
    with pytest.raises(ValueError, match="differ"):
        metrics.pointing_game(inside_box_off_mask, mask[:, :8])


def test_baseline_maps():
    c = metrics.centre_map(2, 9)
    assert c.shape == (2, 9, 9) and metrics.map_peaks(c).tolist() == [[4, 4], [4, 4]]
    img = torch.zeros(1, 3, 32, 32)
    img[:, :, 20:26, 4:10] = 1.0
    assert metrics.pointing_game(metrics.brightness_map(img), torch.tensor([[4, 20, 10, 26]])).item()
    con = metrics.contrast_map(img)
    assert con.shape == (1, 32, 32) and con[0, 0, 31] < con[0, 20, 7]


def test_map_peaks_takes_the_centre_of_a_plateau():
    m = torch.zeros(2, 16, 16)
    m[0, 4:12, 8:16] = 1.0                    # an 8 x 8 block, as occlusion at stride 8 makes
    m[1, 2, 3] = m[1, 2, 5] = 2.0             # two tied pixels: the centroid (4, 2) is not a maximum
    assert metrics.map_peaks(m).tolist() == [[11, 7], [3, 2]]
    box = torch.tensor([[8, 4, 16, 12]])
    assert metrics.pointing_game(m[:1], box, tolerance=0).item()


def test_a_constant_map_is_a_miss():
    m = torch.zeros(2, 8, 8)
    m[1, 4, 4] = 1
    boxes = torch.tensor([[0, 0, 8, 8], [0, 0, 8, 8]])
    assert metrics.pointing_game(m, boxes).tolist() == [False, True]
    assert metrics.pointing_game(m, boxes[:, None, None, :].new_ones(2, 8, 8).bool()).tolist() == [False, True]
