"""Copy the markdown cells of a freshly generated notebook into the executed one, when the code
cells are unchanged (so a text edit needs no re-execution). Usage: sync_md.py NN"""
import subprocess
import sys
from pathlib import Path

import nbformat

nn = sys.argv[1]
root = Path(__file__).resolve().parent.parent
executed = next((root / "notebooks").glob(f"{nn}_*.ipynb"))
old = nbformat.read(executed, 4)
subprocess.run([sys.executable, str(root / "tools" / f"mk_{nn}.py")], check=True)
new = nbformat.read(executed, 4)
assert len(old.cells) == len(new.cells), "cell count changed: re-execute"
for a, b in zip(old.cells, new.cells):
    assert a.cell_type == b.cell_type
    if a.cell_type == "code":
        assert a.source == b.source, f"code changed: re-execute\n{b.source[:200]}"
    else:
        a.source = b.source
nbformat.write(old, executed)
print("markdown synced into", executed.name)
