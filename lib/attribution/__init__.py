"""Where the model looks: attribution maps (N x H x W tensors on the CPU, raw, not normalised).

Part II of the course fills this package (saliency, guided backprop, occlusion, Grad-CAM...);
``cam`` is here from the start because the shipped model's card reports CAM's localisation.
"""
from .cam import cam

__all__ = ["cam"]
