"""Chapter 9's evaluation: the table's plumbing on a few canvases, and the committed table's provenance."""
import json

import pytest
import torch

from lib import evaluation, metrics


def test_the_committed_table_was_computed_with_the_committed_weights():
    info = json.loads(evaluation.RESULTS.read_text())
    assert info["weights_sha256"] == evaluation.weights_sha256("gapnet"), \
        "data/results/explanations.json is stale: run python -m lib.evaluation"
    assert info["canvases"] == 2000 and len(info["table"]) == 10
    for row in info["table"].values():
        assert 0 <= row["pointing"] <= row["pointing_tol4"] <= 1
        assert 0 <= row["deletion"] <= 1 and 0 <= row["insertion"] <= 1


def test_evaluate_on_a_few_canvases(gapnet, canvases):
    methods = evaluation.default_methods(gapnet)
    small = {name: methods[name] for name in ("random", "centre Gaussian", "CAM")}
    table = evaluation.evaluate(gapnet, canvases[:6], small, curves=2, steps=4, progress=False)
    assert list(table) == list(small)
    for row in table.values():
        assert set(row) == {"pointing", "pointing_tol4", "loc_20", "best_fraction", "loc_best", "deletion",
                            "insertion", "ms"}
        assert row["best_fraction"] in evaluation.FRACTIONS
    # CAM points at the item on these canvases more often than a random map
    assert table["CAM"]["pointing"] >= table["random"]["pointing"]
    text = evaluation.format_table(table)
    assert "CAM" in text and " ms" in text


def test_ms_only_updates_the_time_column_and_keeps_the_scores(tmp_path, gapnet):
    names = list(evaluation.default_methods(gapnet))
    rows = json.loads(evaluation.RESULTS.read_text())["table"]
    info = {"weights_sha256": evaluation.weights_sha256("gapnet"), "canvases": 4,
            "table": {n: dict(rows[n], pointing=0.5, ms=-1.0) for n in names}}
    out = tmp_path / "t.json"
    out.write_text(json.dumps(info))
    evaluation.main(["--n", "4", "--ms-only", "--out", str(out)])
    new = json.loads(out.read_text())
    assert all(new["table"][n]["pointing"] == 0.5 and new["table"][n]["ms"] >= 0 for n in names)
    assert new["table"]["SmoothGrad"]["ms"] > new["table"]["CAM"]["ms"]       # 16 gradients against one pass
    assert new["ms_timed"]["threads"] == torch.get_num_threads()
    with pytest.raises(SystemExit, match="other weights or canvases"):     # never times into another table
        evaluation.main(["--n", "3", "--ms-only", "--out", str(out)])


def test_random_map_is_per_image_and_reproducible(gapnet, canvases):
    rnd = evaluation.default_methods(gapnet)["random"]
    x = canvases.images[:3]
    a = rnd(x, None)
    assert torch.equal(a, torch.cat([rnd(x[i:i + 1], None) for i in range(3)]))
    assert not torch.equal(a[0], a[1])


def test_localisation_picks_the_threshold_on_the_first_half():
    maps = torch.zeros(4, 16, 16)
    maps[:, 4:8, 4:8] = 1.0
    maps[:, 0:16, 0:16] += 0.3               # a weak glow everywhere: a low threshold boxes the whole image
    boxes = torch.tensor([[4, 4, 8, 8]] * 4)
    out = evaluation.localisation(maps, boxes)
    assert out["loc_20"] == 0.0 and out["loc_best"] == 1.0
    assert out["best_fraction"] == 0.25          # the lowest fraction above the glow (0.3 / 1.3), nearest 20 %


def test_stage_groups_of_gapnet(gapnet):
    groups = evaluation.stage_groups(gapnet.model)
    assert len(groups) == 4 and groups[0][0] == "features.0" and groups[-1][-1] == "fc"
    assert sum(groups, []) == metrics.randomizable_layers(gapnet.model)
