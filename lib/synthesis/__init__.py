"""What the network wants: images made by optimisation against a frozen model (Parts III and IV).

``core`` holds the one loop (parameterisations, objectives, transforms, optimisers) that the
chapter modules build on.
"""
from .core import (FourierImage, Jitter, NormalizedStep, Objective, Optimized, PixelImage, RandomAffine,
                   activation, channel, class_score, layer_energy, optimize, photo_colour_sqrt, total_variation)

__all__ = ["FourierImage", "Jitter", "NormalizedStep", "Objective", "Optimized", "PixelImage", "RandomAffine",
           "activation", "channel", "class_score", "layer_energy", "optimize", "photo_colour_sqrt",
           "total_variation"]
