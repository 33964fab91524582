"""The MODEL switch: every chapter with an ImageNet section sets ``MODEL = None`` at the top, and its
cell tagged ``imagenet`` runs on the torchvision network MODEL names. Online that network has its
ImageNet weights; here the same cell runs with random weights (``weights=None``) and a small input,
so a change to lib or to a chapter cannot silently break the switch."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib
import nbformat
import pytest

from lib import models
from lib.errors import ModelNotAvailableError

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SWITCHED = {   # chapter -> the networks its ImageNet cell is run with here (cheap ones; each branch once)
    "01": ["alexnet"], "02": ["squeezenet1_1"], "03": ["alexnet", "squeezenet1_1"], "04": ["squeezenet1_1"],
    "05": ["squeezenet1_1"], "06": ["resnet18"], "07": ["resnet18", "squeezenet1_1"],
    "08": ["squeezenet1_1"], "10": ["squeezenet1_1"], "11": ["squeezenet1_1"], "12": ["squeezenet1_1"],
    "13": ["googlenet"],
}
CASES = [(nn, arch) for nn, archs in SWITCHED.items() for arch in archs]
SIZE = {"googlenet": 112}   # the input side the cells get here (net.input_size); 64 px unless the net needs more
pytestmark = pytest.mark.usefixtures("one_thread")   # many small steps: one thread is much faster on 2 busy cores


def _notebook(nn: str):
    path = next((ROOT / "notebooks").glob(f"{nn}_*.ipynb"))
    return nbformat.read(path, as_version=4)


def _imagenet_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and "imagenet" in c.metadata.get("tags", [])]


@pytest.fixture
def offline_random_weights(monkeypatch):
    """models.load as offline tests can run it: random weights, a small input (the cells use net.input_size)."""
    real = models.load

    def load(name, *args, **kwargs):
        if name in models.IMAGENET_MODELS:
            kwargs["weights"] = None
            return dataclasses.replace(real(name, *args, device="cpu", **kwargs), input_size=SIZE.get(name, 64))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(models, "load", load)


def test_imagenet_none_says_how_to_switch(capsys):
    assert models.imagenet(None) is None
    out = capsys.readouterr().out
    assert "MODEL" in out and "'vgg16'" in out


def test_imagenet_refuses_course_models_and_typos():
    with pytest.raises(ModelNotAvailableError, match="resnet50"):
        models.imagenet("resnet5")
    with pytest.raises(ModelNotAvailableError, match="models.load"):
        models.imagenet("gapnet")


def test_imagenet_random_weights_are_labelled():
    b = models.imagenet("squeezenet1_1", weights=None, device="cpu")
    assert "random weights" in b.name and "RANDOM" in b.description
    assert len(b.classes) == 1000


@pytest.mark.parametrize("nn", sorted({*SWITCHED, "09", "14", "15"}))
def test_chapter_has_the_switch_at_the_top(nn):
    nb = _notebook(nn)
    imports = [c for c in nb.cells if c.cell_type == "code"][1]
    cells = _imagenet_cells(nb)
    if nn in SWITCHED:
        assert "MODEL = None" in imports.source, f"chapter {nn}: no MODEL switch in its first cell after set-up"
        assert len(cells) == 1 and "models.imagenet(MODEL)" in cells[0].source
        # offline, the stored output is the note that says how to switch
        assert "MODEL is None" in "".join(o.get("text", "") for o in cells[0].outputs)
    else:
        assert not cells


@pytest.mark.parametrize("nn,arch", CASES, ids=[f"{nn}-{a}" for nn, a in CASES])
def test_imagenet_cell_runs_on_random_weights(nn, arch, offline_random_weights, capsys):
    nb = _notebook(nn)
    imports = [c for c in nb.cells if c.cell_type == "code"][1]
    (cell,) = _imagenet_cells(nb)
    ns: dict = {}
    try:
        exec(compile(imports.source, f"{nn} imports", "exec"), ns)
        ns["MODEL"] = arch
        exec(compile(cell.source, f"{nn} imagenet", "exec"), ns)
    finally:
        plt.close("all")
    net = ns["net"]
    assert net is not None and net.name == f"{arch} (random weights)"
    assert "Traceback" not in capsys.readouterr().out
