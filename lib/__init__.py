"""``lib``: the shared package of the course on visualising and understanding CNNs.

One room per idea (see DESIGN.md): ``device`` (where to compute, seeding), ``images`` (I/O,
overlays, grids), ``data`` (Fashion-MNIST canvases, sample photos), ``models`` (the registry),
``hooks`` (capture and patch, always undone), ``features``, ``plot`` and ``widgets``.
"""
from .device import best_device, seed

__all__ = ["best_device", "seed"]
__version__ = "0.1.0"
