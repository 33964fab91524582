"""Where the model looks: attribution maps (N x H x W tensors on the CPU, raw, not normalised).

Part II of the course fills this package (saliency, guided backprop, occlusion, Grad-CAM...);
``cam`` is here from the start because the shipped model's card reports CAM's localisation.
"""
from .cam import cam
from .saliency import input_gradient, saliency, smoothgrad, smoothgrad_steps
from .guided import gradient_image, gradient_map, guided_backprop, guided_backprop_map
from .gradcam import grad_cam, grad_cam_layers, guided_grad_cam
from .occlusion import occlusion, occlusion_passes, occlusion_probs, occlusion_windows, occlude

__all__ = ["cam"]
__all__ += ["input_gradient", "saliency", "smoothgrad", "smoothgrad_steps"]
__all__ += ["guided_backprop", "guided_backprop_map", "gradient_map", "gradient_image"]
__all__ += ["grad_cam", "grad_cam_layers", "guided_grad_cam"]
__all__ += ["occlusion", "occlusion_passes", "occlusion_probs", "occlusion_windows", "occlude"]
from .cam import NotGapModelError, cam_all, gap_head
from .retrofit import GapHeadModel, retrofit_gap_head, truncate
__all__ += ["cam_all", "NotGapModelError", "gap_head", "GapHeadModel", "retrofit_gap_head", "truncate"]
